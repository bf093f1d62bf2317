"""Where every finding stands: a fold over the ledger's entries, one polars group-by over all of them.

A finding's state is the TO_STATE of its last entry (the entries record the transition the machine
allowed when they were written). Beside it: who acted last and when, the latest text of the thread,
the evidence of the last decision (the last entry that changed the state: what a closed finding was
closed on, compared with tonight's evidence to reopen it), whether a confirmed deviation still stands,
and the site's last answer (shown in its next query workbook). A finding without entries is in the
machine's initial state.
"""

from __future__ import annotations

import polars as pl

from contracts.tables import FINDING_ID, REVIEW
from ingestion.codes import is_note
from review.machine import StateMachine

STATES: dict[str, type[pl.DataType] | pl.DataType] = {
    FINDING_ID: pl.String,
    "REVIEW_STATE": pl.String,
    "REVIEWED_BY": pl.String,
    "REVIEWED_AT": pl.String,
    "LAST_TEXT": pl.String,
    "DECISION": pl.String,  # the last action that changed the state
    "DECIDED_BY": pl.String,
    "DECIDED_AT": pl.String,
    "DECISION_HASH": pl.String,  # the EVIDENCE_HASH that decision was taken on
    "DV_CONFIRMED": pl.Boolean,  # a confirmation of the deviation stands
    # the site's last answer since the finding was last reopened (the machine's `site_response` action): shown
    # in the site's next query workbook
    "SITE_ANSWER": pl.String,
    "SITE_ANSWERED_BY": pl.String,
    "SITE_ANSWERED_AT": pl.String,
    "ENTRIES": pl.Int64,
}
#: the column published beside the review state of a finding that can be a deviation
DV_REVIEW = "DV_REVIEW"
DV_CONFIRMED_MARK = "CONFIRMED"
#: DVREVIEW of a confirmed deviation that tonight's data no longer show, kept as the night before published it
#: (reporting.dv.confirmed_not_in_data)
DV_NOT_IN_DATA_MARK = "CONFIRMED, NOT IN TONIGHT'S DATA"
#: DVREVIEW of an important finding on a night whose review ledger fails verification (reporting.assemble.with_review)
DV_UNKNOWN_MARK = "REVIEW UNKNOWN"
DV_PENDING_MARK = "NOT YET REVIEWED"


def current_states(entries: pl.DataFrame, machine: StateMachine) -> pl.DataFrame:
    """One row per finding with entries (STATES)."""
    if entries.height == 0:
        return pl.DataFrame(schema=STATES)
    changed = pl.col("TO_STATE") != pl.col("FROM_STATE")
    deviation = pl.col("ACTION").is_in([machine.confirmed_by, *machine.withdrawn_by])
    # the site's answers since the finding was last reopened (an answer about earlier evidence is not one)
    reopened_at = pl.col("SEQ").filter(pl.col("ACTION") == machine.reopen_action).max().fill_null(-1)
    answer = (pl.col("ACTION") == machine.site_response_action) & (pl.col("SEQ") > reopened_at)
    return (
        entries.sort("SEQ")
        .group_by(FINDING_ID, maintain_order=True)
        .agg(
            pl.col("TO_STATE").last().alias("REVIEW_STATE"),
            pl.col("BY").last().alias("REVIEWED_BY"),
            pl.col("AT").last().alias("REVIEWED_AT"),
            pl.col("TEXT").drop_nulls().last().alias("LAST_TEXT"),
            pl.col("ACTION").filter(changed).last().alias("DECISION"),
            pl.col("BY").filter(changed).last().alias("DECIDED_BY"),
            pl.col("AT").filter(changed).last().alias("DECIDED_AT"),
            pl.col("EVIDENCE_HASH").filter(changed).last().alias("DECISION_HASH"),
            (pl.col("ACTION").filter(deviation).last() == machine.confirmed_by).fill_null(False).alias("DV_CONFIRMED"),
            pl.col("TEXT").filter(answer).last().alias("SITE_ANSWER"),
            pl.col("BY").filter(answer).last().alias("SITE_ANSWERED_BY"),
            pl.col("AT").filter(answer).last().alias("SITE_ANSWERED_AT"),
            pl.len().cast(pl.Int64).alias("ENTRIES"),
        )
        .select(list(STATES))
    )


def annotate(frame: pl.DataFrame, states: pl.DataFrame, machine: StateMachine,
             severity: str | None = None) -> pl.DataFrame:
    """`frame` (one row per finding, with FINDING_ID) with REVIEW_STATE, REVIEWED_BY, REVIEWED_AT, LAST_TEXT.

    With `severity` (the column holding it), also DV_REVIEW for the findings that can be confirmed as a
    deviation (the machine's `confirmed_by` action accepts their severity): CONFIRMED while a
    confirmation stands, NOT YET REVIEWED while nobody has decided (a pending state), empty otherwise.
    Earlier review columns of `frame` (an earlier night's, on a RESOLVED row) are replaced.
    """
    stale = [c for c in (*REVIEW, DV_REVIEW) if c in frame.columns]
    joined = frame.drop(stale).join(states.select(FINDING_ID, *REVIEW, "DV_CONFIRMED"), on=FINDING_ID, how="left",
                                    maintain_order="left")
    # a note (ingestion.codes.without_notes) asks nothing, and has no review state
    state = (pl.when(pl.col(FINDING_ID).is_not_null() & ~is_note(joined))
             .then(pl.col("REVIEW_STATE").fill_null(machine.initial)))
    joined = joined.with_columns(state.alias("REVIEW_STATE"))
    if severity is not None:
        accepted = machine.actions[machine.confirmed_by].severities
        can_be = pl.lit(True) if accepted is None else pl.col(severity).is_in(list(accepted))
        joined = joined.with_columns(
            pl.when(can_be & pl.col("DV_CONFIRMED").fill_null(False)).then(pl.lit(DV_CONFIRMED_MARK))
            .when(can_be & pl.col("REVIEW_STATE").is_in(list(machine.pending))).then(pl.lit(DV_PENDING_MARK))
            .otherwise(pl.lit(None, pl.String)).alias(DV_REVIEW))
    return joined.drop("DV_CONFIRMED")
