"""History across nights: NEW / OPEN / RESOLVED, FIRST_SEEN and DAYS_OPEN.

The previous run's published `discrepancies.parquet` is the memory: no database. A finding is the
same finding on another night when its stable key (STUDYID, SITEID, USUBJID, CHECK_ID, CLASS) is the
same; its FINDING_ID (checks.comparison.identity), made of the same parts but the site, is carried
beside it, so that a RESOLVED finding keeps its review thread. A finding present tonight is NEW when
the previous run did not have it open, else OPEN with the FIRST_SEEN the previous run recorded. A
finding open in the previous run and gone tonight is published once more as RESOLVED (RESOLVED_ON =
tonight's as-of date); the next run skips RESOLVED rows, so a resolved finding is not repeated
forever. A finding that comes back after being resolved is NEW again.

Validation findings carry FIRST_SEEN and DAYS_OPEN too (`apply_validation_history`, by FINDING_ID), so
that the review backlog can age them like the discrepancies."""

from __future__ import annotations

import io
import re
from datetime import date

import polars as pl

from checks.comparison.identity import discrepancy_id
from contracts import DISCREPANCIES, check_table, is_open
from contracts.enums import FindingStatus, Severity
from contracts.tables import FINDING_ID, REVIEW
from reporting.tables import PUBLISHED_DISCREPANCIES
from storage import Store
from storage.keys import join_key

KEY = ["STUDYID", "SITEID", "USUBJID", "CHECK_ID", "CLASS"]
_REVIEW_COLUMNS = (*REVIEW, "DV_REVIEW")
DISCREPANCIES_FILE = "discrepancies.parquet"
_RUN_DIR = re.compile(r"\d{4}-\d{2}-\d{2}")


def earlier_runs(store: Store, *, study: str, as_of: date) -> list[date]:
    """As-of dates of the runs of `study` strictly before `as_of`, newest first.

    Only folders named like a date count, so staging folders and lock objects are ignored.
    """
    runs: list[date] = []
    for name in store.list_dirs(study):
        if not _RUN_DIR.fullmatch(name):
            continue
        try:
            run = date.fromisoformat(name)
        except ValueError:
            continue
        if run < as_of:
            runs.append(run)
    return sorted(runs, reverse=True)


def _discrepancies_key(study: str, run: date) -> str:
    return join_key(study, run.isoformat(), DISCREPANCIES_FILE)


def previous_run(store: Store, *, study: str, as_of: date) -> tuple[date, str] | None:
    """The latest run of `study` strictly before `as_of` that published discrepancies: (date, key).

    A run folder without `discrepancies.parquet` (an interrupted publication) is skipped.
    """
    for run in earlier_runs(store, study=study, as_of=as_of):
        key = _discrepancies_key(study, run)
        if store.head(key) is not None:
            return run, key
    return None


TREND_COLUMNS = {"AS_OF": pl.String, "IMPORTANT": pl.Int64, "QUERY": pl.Int64, "NEW": pl.Int64,
                 "RESOLVED": pl.Int64}


def finding_counts(discrepancies: pl.DataFrame, as_of: str) -> pl.DataFrame:
    """One trend row: findings present (by severity), new and resolved in one run's table."""
    if "STATUS" not in discrepancies.columns:
        discrepancies = discrepancies.with_columns(pl.lit(None, pl.String).alias("STATUS"))
    status, live = pl.col("STATUS").cast(pl.String), is_open()
    return discrepancies.select(
        pl.lit(as_of).alias("AS_OF"),
        ((pl.col("SEVERITY") == Severity.IMPORTANT) & live).sum().cast(pl.Int64).alias("IMPORTANT"),
        ((pl.col("SEVERITY") == Severity.QUERY) & live).sum().cast(pl.Int64).alias("QUERY"),
        (status == FindingStatus.NEW).sum().cast(pl.Int64).alias("NEW"),
        (status == FindingStatus.RESOLVED).sum().cast(pl.Int64).alias("RESOLVED"),
    )


def run_trend(store: Store, *, study: str, as_of: date, limit: int = 30) -> pl.DataFrame:
    """Finding counts of up to `limit` earlier runs (columns TREND_COLUMNS), oldest first."""
    rows = []
    for run in earlier_runs(store, study=study, as_of=as_of):
        if len(rows) == limit:
            break
        key = _discrepancies_key(study, run)
        if store.head(key) is None:
            continue
        frame = _read_run(store, key)
        rows.append(finding_counts(frame, run.isoformat()))
    if not rows:
        return pl.DataFrame(schema=TREND_COLUMNS)
    return pl.concat(rows).sort("AS_OF")


class HistoryError(RuntimeError):
    """An earlier run's discrepancies cannot be read: FIRST_SEEN would be lost, so the run stops."""


def _read_run(store: Store, key: str) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(io.BytesIO(store.read_bytes(key)))
    except (pl.exceptions.PolarsError, OSError) as error:
        raise HistoryError(f"cannot read the earlier run's findings {key!r} in {store.uri}: "
                           f"{type(error).__name__}; repair or remove that run folder") from error
    missing = [column for column in KEY if column not in frame.columns]
    if missing:
        raise HistoryError(f"the earlier run's findings {key!r} in {store.uri} lack the key columns {missing}")
    return frame


def _days(since: pl.Expr, until: date) -> pl.Expr:
    return (pl.lit(until) - since.str.to_date("%Y-%m-%d", strict=False)).dt.total_days().cast(pl.Int64)


def _previous_open(store: Store, study: str, as_of: date) -> pl.DataFrame | None:
    found = previous_run(store, study=study, as_of=as_of)
    if found is None:
        return None
    run, key = found
    frame = _read_run(store, key)
    first = pl.col("FIRST_SEEN").cast(pl.String) if "FIRST_SEEN" in frame.columns else pl.lit(None, pl.String)
    return (
        frame.filter(is_open() if "STATUS" in frame.columns else pl.lit(True))
        .with_columns(first.fill_null(run.isoformat()).alias("FIRST_SEEN"))
        .sort([*KEY, "FIRST_SEEN"], nulls_last=True, maintain_order=True)
        .unique(KEY, keep="first", maintain_order=True)
    )


def apply_history(discrepancies: pl.DataFrame, store: Store, *, study: str, as_of: date) -> pl.DataFrame:
    """Tonight's discrepancies with STATUS / FIRST_SEEN / DAYS_OPEN / RESOLVED_ON set from the
    latest earlier run in the reports `store`, plus RESOLVED rows for findings that are gone."""
    check_table(discrepancies, DISCREPANCIES, "discrepancies")
    today = as_of.isoformat()
    current = discrepancies.drop([c for c in ("STATUS", "FIRST_SEEN", "DAYS_OPEN", "RESOLVED_ON")
                                  if c in discrepancies.columns])
    previous = _previous_open(store, study, as_of)
    if previous is None:
        previous = pl.DataFrame(schema={**PUBLISHED_DISCREPANCIES})
    keys = previous.select([pl.col(k).cast(pl.String) for k in KEY] + [pl.col("FIRST_SEEN").alias("_FIRST")])
    tonight = (
        current.join(keys, on=KEY, how="left", nulls_equal=True)
        .with_columns(
            pl.when(pl.col("_FIRST").is_null()).then(pl.lit(FindingStatus.NEW)).otherwise(pl.lit(FindingStatus.OPEN)).alias("STATUS"),
            pl.col("_FIRST").fill_null(today).alias("FIRST_SEEN"),
            pl.lit(None, pl.String).alias("RESOLVED_ON"),
        )
        .with_columns(_days(pl.col("FIRST_SEEN"), as_of).alias("DAYS_OPEN"))
        .drop("_FIRST")
    )
    gone = (
        previous.join(current.select([pl.col(k).cast(pl.String) for k in KEY]).unique(), on=KEY,
                      how="anti", nulls_equal=True)
        .with_columns(
            pl.lit(FindingStatus.RESOLVED).alias("STATUS"),
            pl.lit(today).alias("RESOLVED_ON"),
            _days(pl.col("FIRST_SEEN"), as_of).alias("DAYS_OPEN"),
        )
    )
    # the review columns are tonight's to set (reporting.assemble), never carried from an earlier night
    gone = gone.select([c for c in gone.columns if (c in tonight.columns or c in PUBLISHED_DISCREPANCIES)
                        and c not in _REVIEW_COLUMNS])
    merged = pl.concat([tonight, gone], how="diagonal_relaxed")
    # a finding published before FINDING_ID existed (or a table built by hand) gets its id from its key,
    # so that a RESOLVED finding keeps its review thread
    merged = merged.with_columns(pl.coalesce(pl.col(FINDING_ID), discrepancy_id()).alias(FINDING_ID))
    columns = [c for c in PUBLISHED_DISCREPANCIES if c in merged.columns] + [
        c for c in merged.columns if c not in PUBLISHED_DISCREPANCIES]
    return merged.select(columns).sort(KEY, nulls_last=True, maintain_order=True)


VALIDATION_FILE = "validation.parquet"


def apply_validation_history(validation: pl.DataFrame, store: Store, *, study: str, as_of: date) -> pl.DataFrame:
    """Tonight's validation findings with FIRST_SEEN (the as-of date of the first run that reported the
    finding, carried by FINDING_ID from the latest earlier run's validation.parquet) and DAYS_OPEN.

    Validation findings have no RESOLVED rows: a data problem that is gone is simply not listed. A
    previous table without FINDING_ID (published before findings had one) starts every finding tonight.
    """
    today = as_of.isoformat()
    current = validation.drop([c for c in ("FIRST_SEEN", "DAYS_OPEN") if c in validation.columns])
    first = pl.DataFrame(schema={FINDING_ID: pl.String, "_FIRST": pl.String})
    for run in earlier_runs(store, study=study, as_of=as_of):
        key = join_key(study, run.isoformat(), VALIDATION_FILE)
        if store.head(key) is None:
            continue
        try:
            previous = pl.read_parquet(io.BytesIO(store.read_bytes(key)))
        except (pl.exceptions.PolarsError, OSError) as error:
            raise HistoryError(f"cannot read the earlier run's validation findings {key!r} in {store.uri}: "
                               f"{type(error).__name__}; repair or remove that run folder") from error
        if FINDING_ID in previous.columns:
            seen = pl.col("FIRST_SEEN").cast(pl.String) if "FIRST_SEEN" in previous.columns else pl.lit(None, pl.String)
            first = (previous.select(pl.col(FINDING_ID), seen.fill_null(run.isoformat()).alias("_FIRST"))
                     .filter(pl.col(FINDING_ID).is_not_null()).sort("_FIRST").unique(FINDING_ID, keep="first"))
        break
    if FINDING_ID not in current.columns:
        current = current.with_columns(pl.lit(None, pl.String).alias(FINDING_ID))
    return (current.join(first, on=FINDING_ID, how="left", maintain_order="left")
            .with_columns(pl.col("_FIRST").fill_null(today).alias("FIRST_SEEN"))
            .with_columns(_days(pl.col("FIRST_SEEN"), as_of).alias("DAYS_OPEN"))
            .drop("_FIRST"))
