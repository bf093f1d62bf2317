"""The fixed tables and records that the stages hand to each other.

ingest -> validate -> evaluate -> compare -> publish. Every stage takes and returns the tables
declared here, and `check_table` is called at each boundary so that a stage that drifts from the
contract fails loudly in tests instead of silently in a sponsor's report. See docs/contracts.md.
"""

from contracts.domains import DOMAINS, DomainSpec, Requirement, domain_spec
from contracts.enums import DiscrepancyClass, Outcome, Recomputed, Severity, SiteDecision
from contracts.records import (
    DeliveryDecision,
    Evaluation,
    IngestResult,
    InputObject,
    SiteIngest,
    ValidationResult,
)
from contracts.tables import (
    DISCREPANCIES,
    ELIGIBILITY,
    EXCLUSIONS,
    FINDINGS,
    SUBJECTS,
    ContractError,
    check_table,
    empty_table,
    is_open,
)

__all__ = [
    "DISCREPANCIES",
    "DOMAINS",
    "ELIGIBILITY",
    "EXCLUSIONS",
    "FINDINGS",
    "SUBJECTS",
    "ContractError",
    "DeliveryDecision",
    "DiscrepancyClass",
    "DomainSpec",
    "Evaluation",
    "IngestResult",
    "InputObject",
    "Outcome",
    "Recomputed",
    "Requirement",
    "Severity",
    "SiteDecision",
    "SiteIngest",
    "ValidationResult",
    "check_table",
    "domain_spec",
    "empty_table",
    "is_open",
]
