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
