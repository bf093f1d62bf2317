"""Great Expectations validation of a study's delivered data, one suite per DTS domain.

The suites are generated from the sources of truth (contracts/domains.yaml, contracts/units.yaml, the
protocol) plus expectations/suites.yaml, run once per domain over all sites on a prepared polars
frame, and their failures become rows of the `validation` table. Great Expectations itself is
imported only when a suite runs or Data Docs are built (it takes seconds to import).
"""

from contracts.records import DomainValidation
from expectations.docs import publish_data_docs
from expectations.merge import merge_parts
from expectations.validate import (
    finish_validation,
    list_expectations,
    validate_domain,
    validate_domains,
)

__all__ = [
    "DomainValidation",
    "finish_validation",
    "list_expectations",
    "merge_parts",
    "publish_data_docs",
    "validate_domain",
    "validate_domains",
]
