"""The published runs of a study, as the review sees them: the latest one (whose findings a reviewer
acts on from the command line), whether a later one exists (a re-run of a past night must not write to
the ledger), and the previous run's manifest (where the ledger stood then).

A run is a published night (publication.published_nights: a date folder with a valid completion
marker): a folder a crashed run left half-written is not the latest run, not a later run and not the
previous one.
"""

from __future__ import annotations

import io
import json
from datetime import date

import polars as pl

from publication import published_nights
from storage import ObjectNotFound, Store, join_key

MANIFEST = "run_manifest.json"


def latest_run(store: Store, study: str) -> date | None:
    """The newest published run."""
    return next(published_nights(store, study), None)


def later_run_exists(store: Store, study: str, as_of: date) -> bool:
    """True when a run of a later night was published: `as_of` is a re-run of a past night."""
    latest = latest_run(store, study)
    return latest is not None and latest > as_of


def previous_manifest(store: Store, study: str, as_of: date) -> dict | None:
    """The run manifest of the latest published run before `as_of`, or None."""
    for run in published_nights(store, study, before=as_of):
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
