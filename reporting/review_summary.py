"""Where the sponsor's review stands, as plain tables: the backlog (by state, age and site), what was
reopened tonight, and the findings judged not a deviation.

The report's first screen shows them; they take a run's outputs and return polars frames, so that a
morning digest can send the same numbers. Age buckets and the states listed apart are data
(`data/review_backlog.yaml`).
"""

from __future__ import annotations

import polars as pl

from contracts import is_open
from contracts.records import RunOutputs
from contracts.tables import FINDING_ID
from reporting.datafiles import DataFileError, check_keys, load
from review.catalogue import catalogue_of
from review.machine import load_machine

_REVIEW = ("REVIEW_STATE", "REVIEWED_BY", "REVIEWED_AT", "LAST_TEXT")
LISTED = [FINDING_ID, "ORIGIN", "SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "DAYS_OPEN", *_REVIEW]


def _settings() -> tuple[list[tuple[str, int | None]], list[str]]:
    data = load("review_backlog.yaml")
    check_keys("review_backlog.yaml", data, {"age_buckets", "listed_apart"}, {"age_buckets", "listed_apart"})
    buckets = []
    for i, bucket in enumerate(data["age_buckets"]):
        check_keys(f"review_backlog.yaml age bucket {i + 1}", bucket, {"label", "max_days"}, {"label"})
        buckets.append((str(bucket["label"]), bucket.get("max_days")))
    if not buckets or buckets[-1][1] is not None or any(b is None for _, b in buckets[:-1]):
        raise DataFileError("review_backlog.yaml: every age bucket but the last needs max_days, the last none")
    return buckets, [str(state) for state in data["listed_apart"]]


def age_bucket(days: str = "DAYS_OPEN") -> pl.Expr:
    """The label of the age bucket of `days` (null days: the youngest bucket)."""
    buckets, _ = _settings()
    chain = None
    for label, bound in buckets[:-1]:
        condition = pl.col(days).fill_null(0) <= bound
        chain = pl.when(condition).then(pl.lit(label)) if chain is None else chain.when(condition).then(pl.lit(label))
    last = pl.lit(buckets[-1][0])
    return (chain.otherwise(last) if chain is not None else last).alias("AGE_BUCKET")


def reviewed_findings(outputs: RunOutputs) -> pl.DataFrame:
    """Every finding present tonight with its review columns (LISTED + the age bucket)."""
    live = outputs.discrepancies.filter(is_open()) if "STATUS" in outputs.discrepancies.columns \
        else outputs.discrepancies
    return catalogue_of(live, outputs.validation, carry=_REVIEW).select(LISTED).with_columns(age_bucket())


def review_backlog(outputs: RunOutputs, reviewed: pl.DataFrame | None = None) -> pl.DataFrame:
    """The open review work: REVIEW_STATE, AGE_BUCKET, SITEID, N for findings present tonight that the
    review has not settled (review/states.yaml `settled`); the buckets in their order, states in the
    machine's order. `reviewed`: `reviewed_findings(outputs)` when the caller has it already."""
    machine = load_machine()
    buckets = [label for label, _ in _settings()[0]]
    open_ = (reviewed_findings(outputs) if reviewed is None else reviewed).filter(
        pl.col("REVIEW_STATE").is_not_null() & ~pl.col("REVIEW_STATE").is_in(list(machine.settled)))
    counts = open_.group_by("REVIEW_STATE", "AGE_BUCKET", "SITEID").agg(pl.len().cast(pl.Int64).alias("N"))
    state_rank = {state: i for i, state in enumerate(machine.states)}
    bucket_rank = {label: i for i, label in enumerate(buckets)}
    return (counts.with_columns(pl.col("REVIEW_STATE").replace_strict(state_rank, default=99).alias("_S"),
                                pl.col("AGE_BUCKET").replace_strict(bucket_rank, default=99).alias("_A"))
            .sort("_S", "_A", "SITEID", nulls_last=True).drop("_S", "_A"))


def backlog_by_state_and_age(backlog: pl.DataFrame) -> pl.DataFrame:
    """REVIEW_STATE, one column per age bucket, TOTAL: the backlog summed over sites."""
    buckets = [label for label, _ in _settings()[0]]
    machine = load_machine()
    states = [s for s in machine.states if s not in machine.settled]
    base = pl.DataFrame({"REVIEW_STATE": states})
    if backlog.height == 0:
        wide = base.with_columns(*(pl.lit(0, pl.Int64).alias(b) for b in buckets))
    else:
        summed = backlog.group_by("REVIEW_STATE", "AGE_BUCKET").agg(pl.col("N").sum())
        wide = base.join(summed.pivot(on="AGE_BUCKET", index="REVIEW_STATE", values="N", on_columns=buckets),
                         on="REVIEW_STATE", how="left")
    wide = wide.with_columns([pl.col(b).fill_null(0).cast(pl.Int64) for b in buckets])
    return wide.with_columns(pl.sum_horizontal(buckets).alias("TOTAL")).select("REVIEW_STATE", *buckets, "TOTAL")


def backlog_by_site(backlog: pl.DataFrame) -> pl.DataFrame:
    """SITEID, one column per open state, TOTAL: the backlog summed over ages, most first."""
    machine = load_machine()
    states = [s for s in machine.states if s not in machine.settled]
    if backlog.height == 0:
        return pl.DataFrame(schema={"SITEID": pl.String, **dict.fromkeys(states, pl.Int64), "TOTAL": pl.Int64})
    summed = backlog.group_by("SITEID", "REVIEW_STATE").agg(pl.col("N").sum())
    wide = summed.pivot(on="REVIEW_STATE", index="SITEID", values="N", on_columns=states)
    wide = wide.with_columns([pl.col(s).fill_null(0).cast(pl.Int64) for s in states])
    return (wide.with_columns(pl.sum_horizontal(states).alias("TOTAL")).select("SITEID", *states, "TOTAL")
            .sort(["TOTAL", "SITEID"], descending=[True, False], nulls_last=True))


def reopened_tonight(outputs: RunOutputs) -> pl.DataFrame:
    """The findings reopened since the previous run (by a reviewer or because their evidence changed):
    FINDING_ID, SITEID, USUBJID, CHECK_ID, CLASS, SEVERITY, BY, AT, TEXT, in ledger order."""
    columns = [FINDING_ID, "SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "BY", "AT", "TEXT"]
    if outputs.review is None or outputs.review.reopened.height == 0:
        return pl.DataFrame(schema=dict.fromkeys(columns, pl.String))
    catalogue = catalogue_of(outputs.discrepancies, outputs.validation)
    return (outputs.review.reopened.join(catalogue, on=FINDING_ID, how="left", maintain_order="left")
            .sort("SEQ").select(columns))


def listed_apart(outputs: RunOutputs, reviewed: pl.DataFrame | None = None) -> pl.DataFrame:
    """Findings present tonight in the states listed apart (NOT_A_DEVIATION): LISTED, oldest first.
    `reviewed`: `reviewed_findings(outputs)` when the caller has it already."""
    states = _settings()[1]
    findings = reviewed_findings(outputs) if reviewed is None else reviewed
    return (findings.filter(pl.col("REVIEW_STATE").is_in(states)).drop("AGE_BUCKET")
            .sort(["DAYS_OPEN", "SITEID", "USUBJID"], descending=[True, False, False], nulls_last=True))
