"""Ingestion findings in the shared FINDINGS table, with sentences that name site, file, row, problem.

Messages never quote record contents: only the offending value itself (a foreign STUDYID, a field
count, a length, a checksum) goes to OBSERVED.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from contracts import FINDINGS, empty_table
from contracts.tables import EVIDENCE_HASH, FINDING_ID
from core.identity import fingerprint, repeat_number, stable_id
from core.source import rows_words
from ingestion.codes import Code
from ingestion.shape import FILE


@dataclass(frozen=True)
class Finding:
    study: str
    site: str
    code: Code
    message: str
    source: str | None = None  # object key, or key:row
    domain: str | None = None  # upper-case SDTM code
    variable: str | None = None
    observed: str | None = None
    usubjid: str | None = None


def about_file(site: str, key: str, detail: str) -> str:
    return f"Site {site}, file {key}: {detail}."


def about_delivery(site: str, delivery: str, detail: str) -> str:
    return f"Site {site}, delivery {delivery}: {detail}."


def findings_frame(findings: list[Finding]) -> pl.DataFrame:
    """The FINDINGS table of a list of findings (in list order)."""
    if not findings:
        return empty_table(FINDINGS)
    return pl.DataFrame(
        {
            "STUDYID": [f.study for f in findings],
            "SITEID": [f.site for f in findings],
            "USUBJID": [f.usubjid for f in findings],
            "DOMAIN": [f.domain for f in findings],
            "VARIABLE": [f.variable for f in findings],
            "EXPECTATION": [str(f.code) for f in findings],
            "OBSERVED": [f.observed for f in findings],
            "MESSAGE": [f.message for f in findings],
            "SOURCE": [f.source for f in findings],
        },
        schema=FINDINGS,
    )


def row_findings(rows: pl.DataFrame, *, study: str, sites: list[str], keys: list[str],
                 domains: list[str]) -> pl.DataFrame:
    """FINDINGS rows for row-level problems, one per row, built with one polars expression.

    `rows` has FILE (the position of the row's file in `sites`, `keys` and `domains`), ROW (Int64),
    USUBJID, CODE, VARIABLE, OBSERVED and DETAIL (the sentence after the row's name); the files of a whole
    batch of sites go through at once.
    """
    if rows.height == 0:
        return empty_table(FINDINGS)

    def of_file(values: list[str]) -> pl.Expr:
        return pl.lit(pl.Series(values, dtype=pl.String)).gather(pl.col(FILE))

    site, key, row = of_file(sites), of_file(keys), pl.col("ROW").cast(pl.String)
    return rows.select(
        pl.lit(study, pl.String).alias("STUDYID"),
        site.alias("SITEID"),
        pl.col("USUBJID").cast(pl.String),
        of_file([d.upper() for d in domains]).alias("DOMAIN"),
        pl.col("VARIABLE").cast(pl.String),
        pl.col("CODE").cast(pl.String).alias("EXPECTATION"),
        pl.col("OBSERVED").cast(pl.String),
        # the row as the site finds it, as the queries' RECORD names it (`record 45 after the header` in a CSV,
        # `row 45 below the header` in a workbook): "row 45" beside "record 45 after the header" read as two rows
        pl.format("Site {}, file {}, {}: {}.", site, key, rows_words(key, row), pl.col("DETAIL")).alias("MESSAGE"),
        pl.format("{}:{}", key, row).alias("SOURCE"),
    )


def with_identity(findings: pl.DataFrame) -> pl.DataFrame:
    """Ingestion's findings with FINDING_ID and EVIDENCE_HASH (docs/review.md), in their order.

    A file- or delivery-level finding is the same finding on another night when it has the same study,
    site, domain, variable and code (`ingest.delivery_rejected.checksum` for site 104's LB file): the
    delivery folder and the file name change with every delivery and are not part of it. A row-level
    one (a row of another study, a ragged CSV record) adds the row's subject, the part of its key that
    ingestion can trust in a row it could not read; rows that still cannot be told apart are numbered
    in delivery order. The evidence is the OBSERVED value (a checksum, a field count, a foreign study).
    """
    parts = ["STUDYID", "SITEID", "DOMAIN", "VARIABLE", "EXPECTATION", "USUBJID"]
    order = pl.int_range(pl.len(), dtype=pl.Int64)
    return findings.with_columns(
        stable_id("V", *parts, repeat_number(*parts, order_by=[order])).alias(FINDING_ID),
        fingerprint("OBSERVED").alias(EVIDENCE_HASH),
    )
