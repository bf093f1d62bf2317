"""The `Review` sheet of report.xlsx: one row per open finding, to decide on in Excel and send back.

A reviewer picks a DECISION from a drop-down (an Excel data validation listing only the actions the
state machine allows in the row's state: CONFIRM_DEVIATION only on findings that can be deviations),
writes TEXT and REVIEWER, and drops the workbook into `<STUDYID>/_review/inbox/` (or runs
`screening-audit review import`). FINDING_ID and EVIDENCE_HASH say which finding and which evidence
the decision is about; they must come back unchanged. Rows are grouped by state so that each group
gets one drop-down (a handful of data validations, whatever the number of rows).
"""

from __future__ import annotations

import polars as pl

from contracts import is_open
from contracts.enums import Severity
from contracts.tables import EVIDENCE_HASH, FINDING_ID
from ingestion.codes import without_notes
from reporting.xlsx import DropDown
from review.catalogue import catalogue_of
from review.machine import StateMachine

SHEET = "Review"
COLUMNS = [FINDING_ID, "ORIGIN", "STUDYID", "SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "STATUS",
           "DAYS_OPEN", "EVIDENCE", "CARRIED", EVIDENCE_HASH, "REVIEW_STATE", "REVIEWED_BY", "REVIEWED_AT", "LAST_TEXT",
           "SITE_QUERY", "COVERED_BY", "DECISION", "TEXT", "REVIEWER"]
#: where the site was asked about a finding (reporting.queries.site_query_of)
_ASKED = ["SITE_QUERY", "COVERED_BY"]
_REVIEW = ["REVIEW_STATE", "REVIEWED_BY", "REVIEWED_AT", "LAST_TEXT"]


def _states(discrepancies: pl.DataFrame, validation: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The findings present tonight (discrepancies still open) and each one's review columns."""
    live = discrepancies.filter(is_open()) if "STATUS" in discrepancies.columns else discrepancies
    review = pl.concat([frame.select(FINDING_ID, *(pl.col(c).cast(pl.String) if c in frame.columns
                                                   else pl.lit(None, pl.String).alias(c) for c in _REVIEW))
                        for frame in (live, without_notes(validation)) if FINDING_ID in frame.columns],
                       how="vertical")
    return live, review


def _unsettled(machine: StateMachine) -> pl.Expr:
    return ~pl.col("REVIEW_STATE").is_in(list(machine.settled)).fill_null(False)


def review_row_count(discrepancies: pl.DataFrame, validation: pl.DataFrame, machine: StateMachine,
                     unreviewed_when_missing: bool = True) -> int:
    """How many rows `review_rows` gives, from the findings' identities and states alone: a night with
    more than a sheet holds writes a pointer instead, and need not build the rows (130,000 on the dirty
    benchmark)."""
    _, review = _states(discrepancies, validation)
    # the catalogue has one row per identity; its state is that of the identity's first row, as in review_rows
    states = review.filter(pl.col(FINDING_ID).is_not_null()).unique(FINDING_ID, keep="first")
    if unreviewed_when_missing:
        states = states.with_columns(pl.col("REVIEW_STATE").fill_null(machine.initial))
    return states.filter(_unsettled(machine)).height


def review_rows(discrepancies: pl.DataFrame, validation: pl.DataFrame, machine: StateMachine,
                unreviewed_when_missing: bool = True, asked: pl.DataFrame | None = None) -> pl.DataFrame:
    """The open findings (present tonight, not settled), grouped by state, then site, subject and check.

    `unreviewed_when_missing`: a finding without a review state (no review stage ran) is in the initial
    state; False when the ledger failed verification (the state is unknown and no drop-down is offered).
    `asked`: FINDING_ID -> SITE_QUERY, COVERED_BY (reporting.queries.site_query_of): the site query that asks
    about each finding and, for one left out of the site's list, the finding that query lists instead; a
    finding in no site's queries (settled, or a run without them) has neither.
    """
    live, review = _states(discrepancies, validation)
    # CARRIED: the evidence is an earlier night's (reporting.history), which a reviewer deciding on it should know
    catalogue = catalogue_of(live, validation, carry=("CARRIED",))
    rows = catalogue.join(review.unique(FINDING_ID, keep="first"), on=FINDING_ID, how="left", maintain_order="left")
    if asked is not None:
        rows = rows.join(asked.select(FINDING_ID, *_ASKED).unique(FINDING_ID, keep="first"), on=FINDING_ID,
                         how="left", maintain_order="left")
    else:
        rows = rows.with_columns(pl.lit(None, pl.String).alias(c) for c in _ASKED)
    if unreviewed_when_missing:
        rows = rows.with_columns(pl.col("REVIEW_STATE").fill_null(machine.initial))
    order = {state: i for i, state in enumerate(machine.states)}
    rows = rows.filter(_unsettled(machine)).with_columns(
        pl.col("REVIEW_STATE").replace_strict(order, default=len(order), return_dtype=pl.Int64).alias("_STATE"),
        (pl.col("SEVERITY") != Severity.IMPORTANT).fill_null(True).alias("_MINOR"),
        *(pl.lit(None, pl.String).alias(c) for c in ("DECISION", "TEXT", "REVIEWER")),
    )
    return rows.sort("_STATE", "_MINOR", "SITEID", "USUBJID", "CHECK_ID", FINDING_ID, nulls_last=True).select(COLUMNS)


def drop_downs(rows: pl.DataFrame, machine: StateMachine) -> list[tuple[int, int, list[str]]]:
    """(first row, last row, actions) per run of rows with the same state and severity (0-based data rows)."""
    if rows.height == 0:
        return []
    runs = (rows.with_row_index("_I")
            .with_columns(pl.struct("REVIEW_STATE", "SEVERITY").rle_id().alias("_RUN"))
            .group_by("_RUN", maintain_order=True)
            .agg(pl.col("_I").min().alias("_FIRST"), pl.col("_I").max().alias("_LAST"),
                 pl.col("REVIEW_STATE").first(), pl.col("SEVERITY").first()))
    return [(int(first), int(last), machine.allowed_on(state, severity))
            for first, last, state, severity in runs.select("_FIRST", "_LAST", "REVIEW_STATE", "SEVERITY").iter_rows()
            if state is not None]


def decision_drop_downs(rows: pl.DataFrame, machine: StateMachine) -> list[DropDown]:
    """The DECISION drop-downs of the written Review sheet: per run of rows, the actions allowed there."""
    column = COLUMNS.index("DECISION")
    return [DropDown(first, last, column, tuple(actions), prompt_title="Decision",
                     prompt="Choose an action, then write TEXT and REVIEWER.",
                     error_title="Not an action here",
                     error="Choose one of the listed actions: the others are not allowed in this state.")
            for first, last, actions in drop_downs(rows, machine)]
