"""The published runs of a study, as the review sees them: the latest one (whose findings a reviewer
acts on from the command line), whether a later one exists (a re-run of a past night must not write to
the ledger), and the previous run's manifest (where the ledger stood then)."""

from __future__ import annotations

import io
import json
import re
from datetime import date

import polars as pl

from storage import ObjectNotFound, Store, join_key

MANIFEST = "run_manifest.json"
_RUN = re.compile(r"\d{4}-\d{2}-\d{2}")


def run_dates(store: Store, study: str) -> list[date]:
    """As-of dates of the study's run folders, newest first (staging, locks and `_review` are not runs)."""
    dates = []
    for name in store.list_dirs(study):
        if _RUN.fullmatch(name):
            try:
                dates.append(date.fromisoformat(name))
            except ValueError:
                continue
    return sorted(dates, reverse=True)


def latest_run(store: Store, study: str) -> date | None:
    """The newest complete run (its run_manifest.json, written last, exists)."""
    for run in run_dates(store, study):
        if store.head(join_key(study, run.isoformat(), MANIFEST)) is not None:
            return run
    return None


def later_run_exists(store: Store, study: str, as_of: date) -> bool:
    """True when a run of a later night was published: `as_of` is a re-run of a past night."""
    return any(run > as_of for run in run_dates(store, study))


def previous_manifest(store: Store, study: str, as_of: date) -> dict | None:
    """The run manifest of the latest complete run before `as_of`, or None."""
    for run in run_dates(store, study):
        if run >= as_of:
            continue
        try:
            return json.loads(store.read_bytes(join_key(study, run.isoformat(), MANIFEST)))
        except (ObjectNotFound, ValueError):
            continue
    return None


def read_table(store: Store, study: str, run: date, name: str) -> pl.DataFrame | None:
    """One published Parquet table of a run, or None when it is not there."""
    key = join_key(study, run.isoformat(), f"{name}.parquet")
    try:
        return pl.read_parquet(io.BytesIO(store.read_bytes(key)))
    except ObjectNotFound:
        return None
