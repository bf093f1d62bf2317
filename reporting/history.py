"""History across nights: NEW / OPEN / RESOLVED, FIRST_SEEN and DAYS_OPEN.

The previous run's published `discrepancies.parquet` is the memory: no database. A finding is the
same finding on another night when its stable key (STUDYID, SITEID, USUBJID, CHECK_ID, CLASS) is the
same; its FINDING_ID (checks.comparison.identity), made of the same parts but the site, is carried
beside it, so that a RESOLVED finding keeps its review thread. A finding present tonight is NEW when
the previous run did not have it open, else OPEN with the FIRST_SEEN the previous run recorded. A
finding open in the previous run and gone tonight is published once more as RESOLVED (RESOLVED_ON =
tonight's as-of date); the next run skips RESOLVED rows, so a resolved finding is not repeated
forever. A finding that comes back after being resolved is NEW again.

Validation findings carry FIRST_SEEN and DAYS_OPEN too (`validation_history`, by FINDING_ID), so
that the review backlog can age them like the discrepancies; the previous run's findings that are gone
tonight, at the sites audited tonight, are handed over apart (`ValidationHistory.resolved`), for the
report and the digest to say which data problems the sites fixed."""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import date
from itertools import islice
from typing import NamedTuple

import polars as pl

from checks.comparison.identity import discrepancy_id
from contracts import DISCREPANCIES, check_table, is_open
from contracts.enums import FindingStatus, Severity
from contracts.tables import FINDING_ID, REVIEW
from ingestion.codes import NOTE_PREFIX
from publication import published_nights
from reporting.tables import PUBLISHED_DISCREPANCIES
from storage import Store
from storage.keys import join_key

KEY = ["STUDYID", "SITEID", "USUBJID", "CHECK_ID", "CLASS"]
_REVIEW_COLUMNS = (*REVIEW, "DV_REVIEW")
DISCREPANCIES_FILE = "discrepancies.parquet"


def earlier_runs(store: Store, *, study: str, as_of: date, limit: int | None = None) -> list[date]:
    """As-of dates of the published runs of `study` strictly before `as_of`, newest first (at most `limit`).

    Only folders named like a date with a valid completion marker count (publication.published_nights):
    a folder a crashed run left half-written, or one whose promotion has not been finished yet, is not a
    published night. Staging folders and the lease live elsewhere (`_audit/`).
    """
    return list(islice(published_nights(store, study, before=as_of), limit))


def _discrepancies_key(study: str, run: date) -> str:
    return join_key(study, run.isoformat(), DISCREPANCIES_FILE)


def previous_run(store: Store, *, study: str, as_of: date) -> tuple[date, str] | None:
    """The latest published run of `study` strictly before `as_of`: (date, key of its discrepancies).

    Folders without a valid completion marker are not runs (see `earlier_runs`).
    """
    for run in published_nights(store, study, before=as_of):
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
    for run in earlier_runs(store, study=study, as_of=as_of, limit=limit):
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
#: what a data-quality finding resolved tonight is listed with (validation_history)
RESOLVED_VALIDATION_COLUMNS = {"STUDYID": pl.String, "SITEID": pl.String, "USUBJID": pl.String, "DOMAIN": pl.String,
                               "VARIABLE": pl.String, "CHECK": pl.String, "MESSAGE": pl.String, "SOURCE": pl.String,
                               FINDING_ID: pl.String, "FIRST_SEEN": pl.String, "RESOLVED_ON": pl.String,
                               "REVIEW_STATE": pl.String}


class ValidationHistory(NamedTuple):
    """Tonight's data-quality findings with their history, and the earlier ones gone tonight."""

    findings: pl.DataFrame
    #: the latest earlier run's findings that tonight's audit no longer finds, at sites audited tonight (columns
    #: RESOLVED_VALIDATION_COLUMNS, one row per finding); listed once, on the night they go
    resolved: pl.DataFrame


def _previous_validation(store: Store, study: str, as_of: date) -> tuple[date, pl.DataFrame] | None:
    """(as-of date, validation table) of the latest earlier published run that has one."""
    for run in published_nights(store, study, before=as_of):
        key = join_key(study, run.isoformat(), VALIDATION_FILE)
        if store.head(key) is None:
            continue
        try:
            return run, pl.read_parquet(io.BytesIO(store.read_bytes(key)))
        except (pl.exceptions.PolarsError, OSError) as error:
            raise HistoryError(f"cannot read the earlier run's validation findings {key!r} in {store.uri}: "
                               f"{type(error).__name__}; repair or remove that run folder") from error
    return None


def _resolved_validation(previous: pl.DataFrame, first_seen: pl.Expr, current: pl.DataFrame,
                         audited_sites: Iterable[str], as_of: date) -> pl.DataFrame:
    """The findings of `previous` that `current` does not have, at a site of `audited_sites`.

    Only where tonight looked again: a site not audited tonight (every delivery rejected, or no folder) keeps
    its problems unknown, not resolved. Notes (a manifest setting ignored) were never problems. A finding
    without an identity (a table published before findings had one) cannot be followed and is left out.
    """
    columns = [name for name in RESOLVED_VALIDATION_COLUMNS if name in previous.columns and name != "FIRST_SEEN"]
    expectation = pl.col("EXPECTATION") if "EXPECTATION" in previous.columns else pl.lit(None, pl.String)
    gone = (previous
            .filter(pl.col(FINDING_ID).is_not_null()
                    & pl.col("SITEID").is_in(pl.Series(list(audited_sites), dtype=pl.String).implode())
                    & ~expectation.str.starts_with(NOTE_PREFIX).fill_null(False)
                    & ~pl.col(FINDING_ID).is_in(current[FINDING_ID].drop_nulls().implode()))
            .select(*columns, first_seen.alias("FIRST_SEEN"), pl.lit(as_of.isoformat()).alias("RESOLVED_ON"))
            .unique(FINDING_ID, keep="first", maintain_order=True))
    missing = [pl.lit(None, dtype).alias(name) for name, dtype in RESOLVED_VALIDATION_COLUMNS.items()
               if name not in gone.columns]
    return (gone.with_columns(missing).select([pl.col(name).cast(dtype)
                                               for name, dtype in RESOLVED_VALIDATION_COLUMNS.items()])
            .sort(["SITEID", "CHECK", "USUBJID", FINDING_ID], nulls_last=True))


def validation_history(validation: pl.DataFrame, store: Store, *, study: str, as_of: date,
                       audited_sites: Iterable[str]) -> ValidationHistory:
    """Tonight's validation findings with FIRST_SEEN (the as-of date of the first run that reported the
    finding, carried by FINDING_ID from the latest earlier run's validation.parquet) and DAYS_OPEN, and the
    findings of that run that are gone tonight at `audited_sites` (the sites audited tonight).

    Validation findings have no RESOLVED rows of their own (the `validation` table lists failed expectations,
    as the specification says): the ones gone are handed over apart, for the report to say what the sites
    fixed. A previous table without FINDING_ID (published before findings had one) starts every finding
    tonight and resolves none.
    """
    today = as_of.isoformat()
    current = validation.drop([c for c in ("FIRST_SEEN", "DAYS_OPEN") if c in validation.columns])
    if FINDING_ID not in current.columns:
        current = current.with_columns(pl.lit(None, pl.String).alias(FINDING_ID))
    first = pl.DataFrame(schema={FINDING_ID: pl.String, "_FIRST": pl.String})
    resolved = pl.DataFrame(schema=RESOLVED_VALIDATION_COLUMNS)
    found = _previous_validation(store, study, as_of)
    if found is not None and FINDING_ID in found[1].columns:
        run, previous = found
        seen = pl.col("FIRST_SEEN").cast(pl.String) if "FIRST_SEEN" in previous.columns else pl.lit(None, pl.String)
        seen = seen.fill_null(run.isoformat())
        first = (previous.select(pl.col(FINDING_ID), seen.alias("_FIRST"))
                 .filter(pl.col(FINDING_ID).is_not_null()).sort("_FIRST").unique(FINDING_ID, keep="first"))
        resolved = _resolved_validation(previous, seen, current, audited_sites, as_of)
    findings = (current.join(first, on=FINDING_ID, how="left", maintain_order="left")
                .with_columns(pl.col("_FIRST").fill_null(today).alias("FIRST_SEEN"))
                .with_columns(_days(pl.col("FIRST_SEEN"), as_of).alias("DAYS_OPEN"))
                .drop("_FIRST"))
    return ValidationHistory(findings, resolved)


def apply_validation_history(validation: pl.DataFrame, store: Store, *, study: str, as_of: date) -> pl.DataFrame:
    """Tonight's validation findings with FIRST_SEEN and DAYS_OPEN (`validation_history`'s findings)."""
    return validation_history(validation, store, study=study, as_of=as_of, audited_sites=()).findings
