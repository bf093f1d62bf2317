"""Eligibility re-evaluation: every component of every criterion for every subject, from the protocol
file (contracts.protocol) and the delivered data, as polars expressions. See docs/criteria.md.

    result = evaluate(domains, load_protocol(), as_of, exclusions=..., rejected=...)
"""

from checks.evaluation.engine import CRITERIA_COLUMNS, evaluate
from checks.evaluation.reference import REFERENCE_COLUMNS
from checks.evaluation.rules import RULE_BUILDERS
from contracts.records import EligibilityResult

__all__ = ["CRITERIA_COLUMNS", "REFERENCE_COLUMNS", "RULE_BUILDERS", "EligibilityResult", "evaluate"]
