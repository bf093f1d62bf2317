"""Closed vocabularies shared by the stages and the outputs (values as in audit-outputs.md)."""

from enum import StrEnum


class Outcome(StrEnum):
    """Outcome of one criterion component (and of a criterion)."""

    MET = "MET"
    NOT_MET = "NOT_MET"
    APPLIES = "APPLIES"
    NOT_APPLICABLE = "NOT_APPLICABLE"
    UNVERIFIABLE = "UNVERIFIABLE"


class SiteDecision(StrEnum):
    ENROLLED = "ENROLLED"
    SCREEN_FAILURE = "SCREEN FAILURE"
    IN_SCREENING = "IN SCREENING"


class Recomputed(StrEnum):
    ELIGIBLE = "ELIGIBLE"
    INELIGIBLE = "INELIGIBLE"
    UNVERIFIABLE = "UNVERIFIABLE"


class Severity(StrEnum):
    IMPORTANT = "IMPORTANT"
    QUERY = "QUERY"


class DiscrepancyClass(StrEnum):
    INELIGIBLE_ENROLLED = "INELIGIBLE_ENROLLED"
    IE_MISMATCH = "IE_MISMATCH"
    UNVERIFIABLE = "UNVERIFIABLE"
    SCREEN_FAIL_UNSUPPORTED = "SCREEN_FAIL_UNSUPPORTED"
    PROCESS = "PROCESS"


class Category(StrEnum):
    """Whether a protocol criterion includes (MET / NOT_MET) or excludes (APPLIES / NOT_APPLICABLE)."""

    INCLUSION = "INCLUSION"
    EXCLUSION = "EXCLUSION"


class FindingStatus(StrEnum):
    """Where a finding stands across nights (reporting's history)."""

    NEW = "NEW"
    OPEN = "OPEN"
    RESOLVED = "RESOLVED"


class ChecklistStyle(StrEnum):
    """How a subject's IE checklist was delivered (see checks.comparison.site_checklist)."""

    FULL = "FULL"
    NOT_MET_ONLY = "NOT_MET_ONLY"
    MISSING = "MISSING"


class SiteSource(StrEnum):
    """Where the site's answer for one criterion comes from."""

    RECORDED = "RECORDED"  # an IE row
    IMPLIED = "IMPLIED"  # absent from a not-met-only checklist: met / not applying
    ABSENT = "ABSENT"  # absent from a full (or missing) checklist


class ReasonCode(StrEnum):
    """Why a component is UNVERIFIABLE (or how a value was read): a closed vocabulary.

    The comparison uses these codes (e.g. ONLY_BEFORE_WINDOW for process check PC03) and reports
    group by them, so they are an Enum and never free text. REASON carries the readable sentence.
    """

    MISSING = "MISSING"  # no result at all for the subject
    NOT_DONE = "NOT_DONE"  # only LBSTAT = NOT DONE rows
    ONLY_BEFORE_WINDOW = "ONLY_BEFORE_WINDOW"  # results exist but all predate the screening window
    ONLY_AFTER_START = "ONLY_AFTER_START"  # results exist but all are after treatment start
    NOT_NUMERIC = "NOT_NUMERIC"  # a numeric test whose result text is not a number
    INVALID_CODE = "INVALID_CODE"  # a coded result outside the expected values
    MISSING_UNIT = "MISSING_UNIT"
    UNKNOWN_UNIT = "UNKNOWN_UNIT"  # a unit text the catalog does not know
    UNIT_NOT_CONVERTIBLE = "UNIT_NOT_CONVERTIBLE"  # known unit, no fixed factor (HBV DNA copies/mL)
    CENSORED_UNDECIDABLE = "CENSORED_UNDECIDABLE"  # `<x` / `>x` whose bound cannot decide
    NO_ULN = "NO_ULN"  # ULN-based component without a usable LBORNRHI
    PARTIAL_DATE_UNDECIDABLE = "PARTIAL_DATE_UNDECIDABLE"  # possible dates disagree
    INVALID_DATE = "INVALID_DATE"  # a date that is not ISO 8601
    MISSING_DATE = "MISSING_DATE"  # a date the rule needs is absent
    NO_TREATMENT_START = "NO_TREATMENT_START"  # no reference date to anchor the window
    EXCLUDED_BY_VALIDATION = "EXCLUDED_BY_VALIDATION"  # the value was excluded by validation
    DERIVED_INPUT_MISSING = "DERIVED_INPUT_MISSING"  # an input of a derived value is unusable
    UNDECIDED_CONDITION = "UNDECIDED_CONDITION"  # a condition (e.g. IN09 applicability) undecidable
    VERSION_UNDECIDABLE = "VERSION_UNDECIDABLE"  # the consent date spans protocol versions that decide differently
    #: the protocol uses the mean of same-day measurements, and one of them is censored, not a number or
    #: in another unit: no mean can be formed without guessing
    REPLICATES_NOT_AVERAGED = "REPLICATES_NOT_AVERAGED"
    #: the site's file of a domain the component reads was rejected as a whole: what it holds was not read, so
    #: its absence is no "no such record" (a rejected cm.csv is no evidence that nobody took a medication)
    FILE_NOT_READ = "FILE_NOT_READ"


class WhatIfChange(StrEnum):
    """How a subject's recomputed eligibility would change under a draft amendment (screening-audit whatif)."""

    WOULD_BE_ELIGIBLE = "WOULD_BE_ELIGIBLE"  # a screen failure, not eligible now, eligible under the draft
    WOULD_BE_INELIGIBLE = "WOULD_BE_INELIGIBLE"  # an enrolled subject, not ineligible now, ineligible under it
    NO_LONGER_INELIGIBLE = "NO_LONGER_INELIGIBLE"  # an enrolled subject ineligible now, not under the draft
    NEWLY_UNVERIFIABLE = "NEWLY_UNVERIFIABLE"  # decided now, undecidable under the draft (data it needs)
    OTHER = "OTHER"  # any other change (subjects still in screening, ...)
