"""Proposed actions checked against the state machine, the catalogue and the current states, all at once.

Every way in (a command, the rows of a review workbook, a site's answers, the nightly run's reopening)
hands over a table of proposals; each row is accepted with the transition it makes, or refused with
one sentence saying why. A refused row writes nothing. The checks are polars expressions over all
rows; the first that fails gives the reason:

1. one action per finding in one batch (a workbook with two rows for one finding: both refused);
2. the finding is known (in the catalogue, or already in the ledger);
3. the row's site (a workbook row says it) is the finding's;
4. the action exists; BY names someone; BY and TEXT hold no control character and are not too long;
5. the action's text is there when the machine requires one;
6. the action accepts the finding's severity (CONFIRM_DEVIATION: IMPORTANT findings only);
7. the machine allows the action in the finding's current state.
"""

from __future__ import annotations

import polars as pl

from contracts.tables import EVIDENCE_HASH, FINDING_ID
from review.entries import CONTROL_CHARACTERS, MAX_BY, MAX_TEXT
from review.machine import StateMachine

PROPOSALS: dict[str, type[pl.DataType] | pl.DataType] = {
    "ROW": pl.Int64,  # the workbook row (as Excel numbers it), null for a command
    FINDING_ID: pl.String,
    "ACTION": pl.String,
    "BY": pl.String,
    "TEXT": pl.String,
    EVIDENCE_HASH: pl.String,  # the evidence the reviewer saw; null: the catalogue's current one
    "VIA": pl.String,  # how the action came in (command, workbook and row, nightly run)
    "SITEID": pl.String,  # the site a workbook row says the finding is at (null: not said)
    "REFUSED": pl.String,  # a reason already known (a formula in a cell), else null
}


def proposals(rows: list[dict] | pl.DataFrame) -> pl.DataFrame:
    """A proposals frame from rows or a frame (columns PROPOSALS; missing ones null); texts trimmed, a
    blank text is no text."""
    frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows, schema=PROPOSALS)
    frame = frame.select([pl.col(c).cast(t) if c in frame.columns else pl.lit(None, t).alias(c)
                          for c, t in PROPOSALS.items()])
    trimmed = [pl.col(c).str.strip_chars() for c in (FINDING_ID, "ACTION", "BY", "TEXT", EVIDENCE_HASH, "SITEID")]
    return frame.with_columns(trimmed).with_columns(
        [pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c)
         for c in (FINDING_ID, "ACTION", "BY", "TEXT", EVIDENCE_HASH, "SITEID")])


def _duplicates() -> pl.Expr:
    rows = pl.col("ROW").cast(pl.String).sort().str.join(", ").over(FINDING_ID)
    return (pl.when(pl.col("ROW").is_not_null() & pl.col(FINDING_ID).is_not_null() & (pl.len().over(FINDING_ID) > 1))
            .then(pl.format("rows {} all act on {}: one action per finding in one workbook", rows, pl.col(FINDING_ID))))


def _allowed(frame: pl.DataFrame, machine: StateMachine) -> pl.DataFrame:
    """FROM_STATE, _SEVERITY -> _ALLOWED: the actions a refusal offers for each state and severity in `frame`
    (a few pairs), never one the finding's severity would refuse."""
    pairs = frame.select("FROM_STATE", "_SEVERITY").unique().rows()
    return pl.DataFrame(
        {"FROM_STATE": [state for state, _ in pairs], "_SEVERITY": [severity for _, severity in pairs],
         "_ALLOWED": [", ".join(machine.allowed_on(state, severity)) or "none" for state, severity in pairs]},
        schema={"FROM_STATE": pl.String, "_SEVERITY": pl.String, "_ALLOWED": pl.String})


def check(proposed: pl.DataFrame, states: pl.DataFrame, catalogue: pl.DataFrame, entries: pl.DataFrame,
          machine: StateMachine, where: str) -> pl.DataFrame:
    """`proposed` with FROM_STATE, TO_STATE and REFUSED (the first reason, null when accepted).

    `states`: the current fold (review.fold.current_states); `catalogue`: the findings acted on;
    `entries`: the ledger's entries (which findings it holds, and each one's last entry); `where`: how
    the catalogue is named in a refusal ("the latest run (2026-11-28)").

    A row that repeats a finding's last entry (the same action, person, text and evidence) is refused:
    a workbook saved again, which its sha256 no longer recognises, must not record its comments and
    re-sent queries a second time.
    """
    actions = machine.action_table()
    known = (entries.sort("SEQ").group_by(FINDING_ID, maintain_order=True).last()
             .select(FINDING_ID, pl.lit(True).alias("_IN_LEDGER"), pl.col("SEQ").alias("_LAST_SEQ"),
                     *(pl.col(c).alias(f"_LAST_{c}") for c in ("ACTION", "BY", "TEXT", EVIDENCE_HASH))))
    frame = (
        proposed.with_columns(_duplicates().alias("_DUPLICATE"))
        .join(catalogue.select(FINDING_ID, pl.col("SITEID").alias("_SITE"), pl.col("SEVERITY").alias("_SEVERITY"),
                               pl.col(EVIDENCE_HASH).alias("_CURRENT"), pl.lit(True).alias("_IN_CATALOGUE")),
              on=FINDING_ID, how="left", maintain_order="left")
        .join(known, on=FINDING_ID, how="left", maintain_order="left")
        .join(states.select(FINDING_ID, pl.col("REVIEW_STATE").alias("FROM_STATE")), on=FINDING_ID, how="left",
              maintain_order="left")
        .with_columns(pl.col("FROM_STATE").fill_null(machine.initial))
        .join(actions, on="ACTION", how="left", maintain_order="left")
        .join(machine.transition_table(), on=["FROM_STATE", "ACTION"], how="left", maintain_order="left")
    )
    frame = frame.join(_allowed(frame, machine), on=["FROM_STATE", "_SEVERITY"], how="left", nulls_equal=True,
                       maintain_order="left")
    action, by, text = pl.col("ACTION"), pl.col("BY"), pl.col("TEXT")
    reasons = [
        (pl.col("REFUSED").is_not_null(), pl.col("REFUSED")),
        (pl.col("_DUPLICATE").is_not_null(), pl.col("_DUPLICATE")),
        (pl.col(FINDING_ID).is_null(), pl.lit("FINDING_ID is missing")),
        (pl.col("_IN_CATALOGUE").is_null() & pl.col("_IN_LEDGER").is_null(),
         pl.format("unknown finding {}: not in {} nor in the review ledger", pl.col(FINDING_ID), pl.lit(where))),
        (pl.col("SITEID").is_not_null() & pl.col("_SITE").is_not_null() & (pl.col("SITEID") != pl.col("_SITE")),
         pl.format("the row says site {}, but finding {} is site {}'s", pl.col("SITEID"), pl.col(FINDING_ID),
                   pl.col("_SITE"))),
        (action.is_null(), pl.lit(f"no action given (one of {', '.join(machine.actions)})")),
        (pl.col("TEXT_REQUIRED").is_null(),
         pl.format("unknown action {} (one of {})", action, pl.lit(", ".join(machine.actions)))),
        (by.is_null(), pl.lit("BY is missing: name the person or site taking the action")),
        (by.str.len_chars() > MAX_BY, pl.lit(f"BY is longer than {MAX_BY} characters")),
        (by.str.contains(CONTROL_CHARACTERS) | text.str.contains(CONTROL_CHARACTERS).fill_null(False),
         pl.lit("BY or TEXT contains a control character")),
        (text.str.len_chars().fill_null(0) > MAX_TEXT, pl.lit(f"TEXT is longer than {MAX_TEXT} characters")),
        (pl.col("TEXT_REQUIRED") & text.is_null(),
         pl.format("{} needs a text (a reason or an answer)", action)),
        (pl.col("SEVERITIES").is_not_null()
         & ~pl.col("SEVERITIES").list.contains(pl.col("_SEVERITY").fill_null("")),
         pl.format("{} applies only to {} findings; {} is {}", action, pl.col("SEVERITIES").list.join(" or "),
                   pl.col(FINDING_ID), pl.col("_SEVERITY").fill_null("of unknown severity"))),
        (action.eq(pl.col("_LAST_ACTION")) & by.eq(pl.col("_LAST_BY")) & text.eq_missing(pl.col("_LAST_TEXT"))
         & pl.coalesce(pl.col(EVIDENCE_HASH), pl.col("_CURRENT")).eq_missing(pl.col(f"_LAST_{EVIDENCE_HASH}")),
         pl.format("the same {} by {} as the last entry of {} (entry {}): not recorded twice (give a text if it "
                   "is a new one)", action, by, pl.col(FINDING_ID), pl.col("_LAST_SEQ"))),
        (pl.col("TO_STATE").is_null(),
         pl.format("{} is not allowed on {} in state {} (allowed: {})", action, pl.col(FINDING_ID),
                   pl.col("FROM_STATE"), pl.col("_ALLOWED"))),
    ]
    chain = pl.when(reasons[0][0].fill_null(False)).then(reasons[0][1])
    for condition, reason in reasons[1:]:
        chain = chain.when(condition.fill_null(False)).then(reason)
    return frame.with_columns(
        chain.otherwise(pl.lit(None, pl.String)).alias("REFUSED"),
        pl.coalesce(pl.col(EVIDENCE_HASH), pl.col("_CURRENT")).alias(EVIDENCE_HASH),
    ).select(*PROPOSALS, "FROM_STATE", "TO_STATE")
