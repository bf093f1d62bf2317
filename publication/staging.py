"""All-or-nothing publication of a night's reports: each run writes into its own staging prefix,
promoted into place only when the whole run succeeded.

    <STUDYID>/<AS_OF>/...                              the published reports (docs/audit-outputs.md)
    _audit/<STUDYID>/staging/<AS_OF>/<RUN_ID>/...       where a run writes before promotion

Why staging: S3 has no atomic rename of a folder. Promotion removes the old `run_manifest.json`
first, copies every staged object into place, removes objects of an earlier run of the same night
that this run did not produce, and copies `run_manifest.json` last. A report folder is complete
exactly when its `run_manifest.json` exists. A failed night deletes its staging prefix and leaves the
published folder as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from publication.lock import AUDIT_FOLDER, DEFAULT_LOCK_MAX_AGE, LockInfo, audit_lock, where
from storage import Store, join_key

#: The object whose presence marks a report folder as complete; promoted last.
COMMIT_MARKER = "run_manifest.json"

_log = logging.getLogger(__name__)


class PublicationError(RuntimeError):
    """Staged outputs that cannot be promoted (for example, nothing was staged)."""


def final_prefix(study: str, as_of: date | str) -> str:
    """Where a night's reports are published: `<STUDYID>/<AS_OF>`."""
    return join_key(study, as_of.isoformat() if isinstance(as_of, date) else as_of)


def staging_prefix(study: str, as_of: date | str, run_id: str) -> str:
    """Where one run writes its outputs before promotion; unique per run."""
    return join_key(AUDIT_FOLDER, study, "staging", as_of.isoformat() if isinstance(as_of, date) else as_of,
                    run_id)


def _relative(keys: list[str], prefix: str) -> list[str]:
    start = prefix.rstrip("/") + "/"
    return [key[len(start):] for key in keys if key.startswith(start)]


def promote(store: Store, staging: str, final: str, *, marker: str = COMMIT_MARKER,
            logger: logging.Logger | logging.LoggerAdapter | None = None) -> list[str]:
    """Move a run's staged outputs into `final`, marker last, then delete the staging prefix.

    Safe to repeat after a failure part-way (the staging prefix is deleted only at the end).
    Returns the published keys, sorted.
    """
    log = logger or _log
    staged = _relative([obj.key for obj in store.list(staging)], staging)
    if not staged:
        raise PublicationError(f"nothing staged under {where(store, staging)}; nothing published")
    existing = _relative([obj.key for obj in store.list(final)], final)
    if marker in existing:
        store.delete(join_key(final, marker))  # from here on readers see the folder as incomplete
    body = [name for name in staged if name != marker]
    for name in body:
        store.copy(join_key(staging, name), join_key(final, name))
    leftovers = sorted(set(existing) - set(staged) - {marker})
    for name in leftovers:
        store.delete(join_key(final, name))
    if marker in staged:
        store.copy(join_key(staging, marker), join_key(final, marker))
    discard(store, staging)
    log.info("promoted %d objects to %s (%d left over from an earlier run removed)", len(staged),
             where(store, final), len(leftovers))
    return sorted(join_key(final, name) for name in staged)


def discard(store: Store, prefix: str) -> int:
    """Delete everything under `prefix` (a failed or finished run's staging); returns the count."""
    keys = [obj.key for obj in store.list(prefix)]
    for key in keys:
        store.delete(key)
    return len(keys)


def sweep_staging(store: Store, study: str, *, max_age: timedelta = DEFAULT_LOCK_MAX_AGE,
                  now: datetime | None = None,
                  logger: logging.Logger | logging.LoggerAdapter | None = None) -> list[str]:
    """Delete staging folders of runs that died without cleaning up (older than `max_age`).

    Called by the run that holds the lock, so no live run's staging can be swept: a live run of the
    same study would hold the lock. Returns the swept run prefixes.
    """
    log = logger or _log
    now = now or datetime.now(UTC)
    root = join_key(AUDIT_FOLDER, study, "staging")
    newest: dict[str, datetime] = {}
    for obj in store.list(root):
        parts = obj.key[len(root) + 1:].split("/")
        if len(parts) < 3:
            continue
        run = join_key(root, parts[0], parts[1])
        newest[run] = max(newest.get(run, obj.last_modified), obj.last_modified)
    swept = sorted(run for run, moment in newest.items() if now - moment > max_age)
    for run in swept:
        log.warning("removing abandoned staging %s", where(store, run))
        discard(store, run)
    return swept


@dataclass(frozen=True)
class NightlyPublication:
    """Where one locked run publishes: it writes under `staging`, then promotes to `final`."""

    lock: LockInfo
    staging: str
    final: str


@contextmanager
def locked_publication(store: Store, study: str, as_of: date, *, run_id: str,
                       max_age: timedelta = DEFAULT_LOCK_MAX_AGE,
                       logger: logging.Logger | logging.LoggerAdapter | None = None) -> Iterator[NightlyPublication]:
    """The whole nightly run inside this block: lock held, own staging prefix, cleaned up whatever happens.

    On entry: take the study's lock (or raise `AuditLockedError`) and sweep staging left by runs that
    died. On exit: delete this run's staging (already gone after a successful `promote`), then
    release the lock. A failure inside the block therefore leaves the published folder untouched.
    """
    with audit_lock(store, study, run_id=run_id, max_age=max_age, logger=logger) as lock:
        sweep_staging(store, study, max_age=max_age, logger=logger)
        publication = NightlyPublication(lock, staging_prefix(study, as_of, run_id), final_prefix(study, as_of))
        try:
            yield publication
        finally:
            try:
                left = discard(store, publication.staging)
            except Exception as error:  # the sweep of a later run removes it
                (logger or _log).error("could not remove staging %s: %s", publication.staging, type(error).__name__)
            else:
                if left:
                    (logger or _log).warning("run did not complete: removed %d staged objects; "
                                             "the published reports are unchanged", left)
