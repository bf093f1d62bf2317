"""Why a component is UNVERIFIABLE (or how a value was read): a closed vocabulary.

The comparison uses these codes (e.g. ONLY_BEFORE_WINDOW for process check PC03) and reports
group by them, so they are an Enum and never free text. REASON carries the readable sentence.
"""

from enum import StrEnum


class ReasonCode(StrEnum):
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
