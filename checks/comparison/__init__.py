"""Comparison of the recomputed eligibility with the site's checklist (IE) and decision (DS): every
difference classified (docs/discrepancies.md).

    comparison = compare(result, domains, protocol, exclusions=..., rejected=...)
"""

from checks.comparison.compare import compare
from contracts.records import Comparison

__all__ = ["Comparison", "compare"]
