"""The findings a reviewer can act on, one row per FINDING_ID: discrepancies and validation findings
together, with what the checks of an action need (site, severity, the current evidence) and what a
listing shows.

At night the catalogue is tonight's tables; from the command line it is the latest published run's
(`published_catalogue`), so that a reviewer acts on what the report in front of them shows.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from contracts.enums import Severity
from contracts.tables import EVIDENCE_HASH, FINDING_ID
from ingestion.codes import without_notes
from review.runs import latest_run, read_table
from storage import Store

CATALOGUE: dict[str, type[pl.DataType] | pl.DataType] = {
    FINDING_ID: pl.String,
    "ORIGIN": pl.String,  # DISCREPANCY or VALIDATION
    "STUDYID": pl.String,
    "SITEID": pl.String,
    "USUBJID": pl.String,
    "CHECK_ID": pl.String,  # the check, or a validation finding's check (its CHECK, else its expectation)
    "CLASS": pl.String,
    "SEVERITY": pl.String,
    "STATUS": pl.String,  # NEW / OPEN / RESOLVED (discrepancies), null for validation findings
    "FIRST_SEEN": pl.String,
    "DAYS_OPEN": pl.Int64,
    "DOMAIN": pl.String,
    "VARIABLE": pl.String,
    "EVIDENCE": pl.String,  # the sentence, or a validation finding's message
    EVIDENCE_HASH: pl.String,
}


def validation_status(days_open: pl.Expr) -> pl.Expr:
    """A data-quality finding's STATUS from its DAYS_OPEN: NEW when first reported tonight, else OPEN (one that is
    gone is not in `validation` but in `validation_resolved`, RESOLVED: with_resolved); null where its history is not
    known. The review, the site queries and the report say the same (a user trial: a site could not tell new
    data-quality queries from old)."""
    return pl.when(days_open == 0).then(pl.lit("NEW")).when(days_open > 0).then(pl.lit("OPEN"))


def _column(frame: pl.DataFrame, name: str, dtype: type[pl.DataType] | pl.DataType) -> pl.Expr:
    return pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype)


def _shaped(frame: pl.DataFrame, fixed: dict[str, pl.Expr], columns: dict[str, Any]) -> pl.DataFrame:
    return frame.select([fixed[name].alias(name) if name in fixed else _column(frame, name, dtype).alias(name)
                         for name, dtype in columns.items()])


def catalogue_of(discrepancies: pl.DataFrame | None, validation: pl.DataFrame | None,
                 carry: tuple[str, ...] = ()) -> pl.DataFrame:
    """The catalogue of a run's discrepancies and validation findings (either may be None); `carry`: text
    columns of the two tables to keep beside it (null where a table has none), from the same row as the rest
    (the review columns, for the report's backlog: joined afterwards, they cost a second pass over 130,000
    findings)."""
    columns = {**CATALOGUE, **dict.fromkeys((c for c in carry if c not in CATALOGUE), pl.String)}
    parts = []
    if discrepancies is not None and FINDING_ID in discrepancies.columns:
        parts.append(_shaped(discrepancies, {"ORIGIN": pl.lit("DISCREPANCY"),
                                             "DOMAIN": pl.lit(None, pl.String), "VARIABLE": pl.lit(None, pl.String)},
                             columns))
    if validation is not None and FINDING_ID in validation.columns:
        validation = without_notes(validation)  # a note asks nothing: there is nothing to decide on
        parts.append(_shaped(validation, {
            "ORIGIN": pl.lit("VALIDATION"),
            # the check's stable name (LB.unit_known.LBORRESU), as the validation table's CHECK gives it; the
            # generic expectation (expect_column_values_to_be_in_set) only where a finding has none
            "CHECK_ID": pl.coalesce(_column(validation, "CHECK", pl.String),
                                    _column(validation, "EXPECTATION", pl.String)),
            "CLASS": pl.lit("VALIDATION"),
            "SEVERITY": pl.lit(Severity.QUERY.value),
            "STATUS": validation_status(_column(validation, "DAYS_OPEN", pl.Int64)),
            "EVIDENCE": _column(validation, "MESSAGE", pl.String),
        }, columns))
    if not parts:
        return pl.DataFrame(schema=columns)
    # a finding listed twice (a RESOLVED row beside a present one cannot happen, but never count twice)
    return (pl.concat(parts, how="vertical").filter(pl.col(FINDING_ID).is_not_null())
            .unique(FINDING_ID, keep="first", maintain_order=True))


def with_resolved(catalogue: pl.DataFrame, resolved: pl.DataFrame | None) -> pl.DataFrame:
    """`catalogue` and the data-quality findings gone that night (`resolved`: the validation_resolved table, or
    reporting.history.validation_history's), as RESOLVED: a site corrects a value and answers its query in the same
    cycle, and a reviewer acts on what the report's "Resolved data quality" sheet lists; both were refused as
    "unknown finding" (a user trial, helper-45)."""
    if resolved is None or resolved.height == 0:
        return catalogue
    gone = catalogue_of(None, resolved).with_columns(pl.lit("RESOLVED").alias("STATUS"))
    return pl.concat([catalogue, gone], how="vertical").unique(FINDING_ID, keep="first", maintain_order=True)


def published_catalogue(store: Store, study: str) -> tuple[date | None, pl.DataFrame]:
    """The latest complete run's as-of date and catalogue (None and an empty catalogue before any run): its
    discrepancies (RESOLVED ones included), validation findings, and the data-quality findings it resolved."""
    run = latest_run(store, study)
    if run is None:
        return None, pl.DataFrame(schema=CATALOGUE)
    tonight = catalogue_of(read_table(store, study, run, "discrepancies"), read_table(store, study, run, "validation"))
    return run, with_resolved(tonight, read_table(store, study, run, "validation_resolved"))
