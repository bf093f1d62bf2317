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

from publication import final_prefix, is_published, published_nights
from storage import ObjectNotFound, Store, join_key

MANIFEST = "run_manifest.json"


def latest_run(store: Store, study: str) -> date | None:
    """The newest published run."""
    return next(published_nights(store, study), None)


def later_run_exists(store: Store, study: str, as_of: date) -> bool:
    """True when a run of a later night was published: `as_of` is a re-run of a past night."""
    latest = latest_run(store, study)
    return latest is not None and latest > as_of


def read_manifest(store: Store, study: str, night: date) -> dict | None:
    """A published night's run manifest, or None when it cannot be read or is no JSON object."""
    try:
        manifest = json.loads(store.read_bytes(join_key(study, night.isoformat(), MANIFEST)))
    except (ObjectNotFound, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def night_manifest(store: Store, study: str, as_of: date) -> dict | None:
    """The run manifest of the night `as_of` as published (None when it is not, or cannot be read)."""
    return read_manifest(store, study, as_of) if is_published(store, final_prefix(study, as_of)) else None


def previous_manifest(store: Store, study: str, as_of: date) -> dict | None:
    """The run manifest of the latest published run before `as_of` that can be read, or None."""
    for run in published_nights(store, study, before=as_of):
        manifest = read_manifest(store, study, run)
        if manifest is not None:
            return manifest
    return None


def seen_by_past_night(store: Store, study: str, as_of: date) -> dict[str, dict[str, str]] | None:
    """For a re-run of a past night (a later night is published): each site its published run manifest names
    (audited, not audited, or with a delivery it considered) with the delivery folders it lists for that site and
    the night's status of each (ingestion.window). None for tonight's night, a night never published, or one whose
    manifest cannot be read or lists no delivery (then the cut-off alone decides, as before)."""
    if not later_run_exists(store, study, as_of):
        return None
    return _seen_in(night_manifest(store, study, as_of))


def _seen_in(manifest: object) -> dict[str, dict[str, str]] | None:
    """The sites and folders a run manifest lists (seen_by_past_night); None for any shape it does not expect, a
    manifest written by hand or by another tool (the cut-off alone then decides)."""
    if not isinstance(manifest, dict):
        return None
    deliveries, audited = manifest.get("deliveries"), manifest.get("sites_audited") or []
    not_audited = manifest.get("sites_not_audited") or []
    if (not isinstance(deliveries, list) or not deliveries or not isinstance(audited, list)
            or not isinstance(not_audited, list)):
        return None
    entries = [*not_audited, *deliveries]
    if not all(isinstance(site, str) for site in audited) or not all(
            isinstance(item, dict) and isinstance(item.get("site"), str) for item in entries):
        return None
    if not all(isinstance(item.get("delivery"), str) for item in deliveries):
        return None
    seen: dict[str, dict[str, str]] = {site: {} for site in audited}
    for item in not_audited:
        seen.setdefault(item["site"], {})
    for item in deliveries:  # not those it left to a later night (a re-run lists them too: never audit them later)
        folders = seen.setdefault(item["site"], {})
        if item.get("status") != "AFTER_AS_OF":
            folders[item["delivery"]] = str(item.get("status"))
    return seen


def read_table(store: Store, study: str, run: date, name: str) -> pl.DataFrame | None:
    """One published Parquet table of a run, or None when it is not there."""
    key = join_key(study, run.isoformat(), f"{name}.parquet")
    try:
        return pl.read_parquet(io.BytesIO(store.read_bytes(key)))
    except ObjectNotFound:
        return None
