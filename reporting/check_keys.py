"""Keys that name data-quality checks and ingestion codes in the query wording (reporting/data/queries.yaml).

A key is a check id or ingestion code, or its start: `DM.needed_results` stands for
`DM.needed_results.MISSING_LB`, `ingest.file_rejected` for `ingest.file_rejected.empty`, and `*` for any one
part (a domain: `*.unique_key`). Shared by the wording (reporting.queries) and the findings one query
already covers (reporting.covered).
"""

from __future__ import annotations

import re

import polars as pl

from ingestion.codes import Code


def key_pattern(key: str) -> str:
    """The regular expression of a key: its parts, `*` standing for any one part (a domain), then nothing or
    more parts (`DM.needed_results` matches `DM.needed_results.MISSING_LB`, `ingest.file_rejected` matches
    `ingest.file_rejected.empty`, neither matches a longer part)."""
    parts = ["[^.]+" if part == "*" else re.escape(part) for part in key.split(".")]
    return "^" + r"\.".join(parts) + r"(\..*)?$"


def matching(column: str, key: str) -> pl.Expr:
    """A data-quality finding whose `column` matches the key: CHECK_ID (its ingestion code) for a code,
    CAUSE (its check id) for a data check. A key without `*` is compared as text (the key itself, or its
    start followed by a dot), a tenth of the cost of the regular expression over a night's findings."""
    value = pl.col(column)
    matched = (value.str.contains(key_pattern(key)) if "*" in key
               else (value == key) | value.str.starts_with(f"{key}."))
    return (pl.col("ORIGIN") == "VALIDATION") & matched.fill_null(False)


def names_a_code(key: str) -> bool:
    """Whether `key` is an ingestion code or the start of one (`ingest.file_rejected`): a key that names none
    would match no finding and silently do nothing."""
    return any(str(code) == key or str(code).startswith(f"{key}.") for code in Code)
