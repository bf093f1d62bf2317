"""One audit at a time per study, and all-or-nothing publication of a night's reports.

Layout under the reports root (an S3 prefix or a local folder):

    <STUDYID>/<AS_OF>/...                              the published reports (docs/audit-outputs.md)
    _audit/<STUDYID>/lock.json                          held while an audit of the study runs
    _audit/<STUDYID>/staging/<AS_OF>/<RUN_ID>/...       where a run writes before promotion

Why a lock object and not only Prefect's deployment concurrency limit: audits also start from the
command line and from `run-all`, on other machines; the reports location is the one thing they all
share. The lock is created with an S3 conditional write (`If-None-Match: *`; `O_EXCL` locally), so
exactly one of two racing runs gets it. It records run id, host, pid and start time so that the
message of the run that backs off says who holds it. A lock older than `max_age` (default 12 h, far
longer than a night's run) is taken to belong to a run that was killed without its `finally`; it is
broken with a warning. Breaking is delete-then-create, so two runs that find the same stale lock at
the same instant could both proceed; with a nightly schedule and a 12 h threshold this is accepted
and documented (docs/operations.md).

Why staging: S3 has no atomic rename of a folder. A run publishes into its own staging prefix; only
when the whole run succeeded is it promoted: the old `run_manifest.json` is removed first, every
staged object is copied into place, objects of an earlier run of the same night that this run did
not produce are removed, and `run_manifest.json` is copied last. A report folder is complete exactly
when its `run_manifest.json` exists. A failed night deletes its staging prefix and leaves the
published folder as it was.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from storage import LocalStore, Store, join_key

#: Everything the audit keeps for itself under the reports root, apart from the reports.
AUDIT_FOLDER = "_audit"
#: The object whose presence marks a report folder as complete; promoted last.
COMMIT_MARKER = "run_manifest.json"
DEFAULT_LOCK_MAX_AGE = timedelta(hours=12)

_log = logging.getLogger(__name__)


class AuditLockedError(RuntimeError):
    """Another audit of the same study holds the lock: this run does nothing and exits."""

    def __init__(self, message: str, holder: LockInfo | None) -> None:
        super().__init__(message)
        self.holder = holder


class PublicationError(RuntimeError):
    """Staged outputs that cannot be promoted (for example, nothing was staged)."""


@dataclass(frozen=True)
class LockInfo:
    """Who holds the audit lock of a study; stored as the lock object's JSON body."""

    study: str
    run_id: str
    host: str
    pid: int
    started_at: str  # ISO 8601, UTC

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LockInfo | None:
        """The lock's owner, or None when the body is not a lock written by this module."""
        try:
            raw = json.loads(data)
            return cls(study=str(raw["study"]), run_id=str(raw["run_id"]), host=str(raw["host"]),
                       pid=int(raw["pid"]), started_at=str(raw["started_at"]))
        except (ValueError, KeyError, TypeError):
            return None

    def started(self) -> datetime | None:
        try:
            moment = datetime.fromisoformat(self.started_at)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def describe(self) -> str:
        return f"run {self.run_id} on host {self.host} (pid {self.pid}) since {self.started_at}"


def lock_key(study: str) -> str:
    return join_key(AUDIT_FOLDER, study, "lock.json")


def final_prefix(study: str, as_of: date | str) -> str:
    """Where a night's reports are published: `<STUDYID>/<AS_OF>`."""
    return join_key(study, as_of.isoformat() if isinstance(as_of, date) else as_of)


def staging_prefix(study: str, as_of: date | str, run_id: str) -> str:
    """Where one run writes its outputs before promotion; unique per run."""
    return join_key(AUDIT_FOLDER, study, "staging", as_of.isoformat() if isinstance(as_of, date) else as_of,
                    run_id)


def _where(store: Store, key: str) -> str:
    return f"{store.uri.rstrip('/')}/{key}"


def _lock_age(store: Store, key: str, holder: LockInfo | None, now: datetime) -> timedelta | None:
    """How old the lock is: its recorded start time, else the object's own modification time."""
    started = holder.started() if holder else None
    if started is None:
        info = store.head(key)
        started = info.last_modified if info else None
    return now - started if started else None


def acquire_lock(store: Store, study: str, *, run_id: str, max_age: timedelta = DEFAULT_LOCK_MAX_AGE,
                 now: datetime | None = None, host: str | None = None,
                 logger: logging.Logger | logging.LoggerAdapter | None = None) -> LockInfo:
    """Take the study's audit lock or raise `AuditLockedError` naming who holds it.

    A lock older than `max_age` is broken with a warning and taken (see the module docstring).
    """
    log = logger or _log
    now = now or datetime.now(UTC)
    mine = LockInfo(study=study, run_id=run_id, host=host or socket.gethostname(), pid=os.getpid(),
                    started_at=now.isoformat(timespec="seconds"))
    key = lock_key(study)
    for _attempt in range(2):
        if store.create_exclusive(key, mine.to_bytes()):
            log.info("audit lock of %s taken by run %s", study, run_id)
            return mine
        try:
            holder = LockInfo.from_bytes(store.read_bytes(key))
        except Exception as error:
            if _is_missing(error):
                continue  # released between our attempt and our read: try once more
            raise
        age = _lock_age(store, key, holder, now)
        who = holder.describe() if holder else "an unreadable lock"
        if age is not None and age > max_age:
            log.warning("breaking the stale audit lock of %s held by %s (%.1f h old, limit %.1f h) at %s",
                        study, who, age.total_seconds() / 3600, max_age.total_seconds() / 3600, _where(store, key))
            store.delete(key)
            continue
        raise AuditLockedError(
            f"another audit of {study} is running: {who}. This run exits without doing anything. "
            f"The lock is {_where(store, key)}; it is released when that run ends, and broken "
            f"automatically once it is older than {max_age.total_seconds() / 3600:g} h.",
            holder,
        )
    raise AuditLockedError(f"could not take the audit lock of {study} at {_where(store, key)}: another run "
                           "took it at the same moment; this run exits without doing anything.", None)


def _is_missing(error: Exception) -> bool:
    if isinstance(error, FileNotFoundError):
        return True
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in ("404", "NoSuchKey", "NotFound")


def release_lock(store: Store, lock: LockInfo,
                 logger: logging.Logger | logging.LoggerAdapter | None = None) -> bool:
    """Delete the lock if it is still ours; True when released.

    A lock that now belongs to another run (ours was broken as stale) is left alone.
    """
    log = logger or _log
    key = lock_key(lock.study)
    try:
        current = LockInfo.from_bytes(store.read_bytes(key))
    except Exception as error:
        if _is_missing(error):
            log.warning("audit lock of %s was already gone when run %s ended", lock.study, lock.run_id)
            return False
        raise
    if current is None or current.run_id != lock.run_id:
        log.warning("audit lock of %s now belongs to %s; not releasing it", lock.study,
                    current.describe() if current else "an unreadable lock")
        return False
    store.delete(key)
    if isinstance(store, LocalStore):
        _prune_empty_dirs(store.root / AUDIT_FOLDER / lock.study, stop=store.root)
    log.info("audit lock of %s released by run %s", lock.study, lock.run_id)
    return True


@contextmanager
def audit_lock(store: Store, study: str, *, run_id: str, max_age: timedelta = DEFAULT_LOCK_MAX_AGE,
               logger: logging.Logger | logging.LoggerAdapter | None = None) -> Iterator[LockInfo]:
    """Hold the study's audit lock for the duration of the block; always released in `finally`."""
    lock = acquire_lock(store, study, run_id=run_id, max_age=max_age, logger=logger)
    try:
        yield lock
    finally:
        try:
            release_lock(store, lock, logger=logger)
        except Exception as error:  # never mask the run's own outcome; the lock expires by age
            (logger or _log).error("could not release the audit lock of %s: %s", study, type(error).__name__)


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
        raise PublicationError(f"nothing staged under {_where(store, staging)}; nothing published")
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
             _where(store, final), len(leftovers))
    return sorted(join_key(final, name) for name in staged)


def discard(store: Store, prefix: str) -> int:
    """Delete everything under `prefix` (a failed or finished run's staging); returns the count."""
    keys = [obj.key for obj in store.list(prefix)]
    for key in keys:
        store.delete(key)
    if isinstance(store, LocalStore):
        _prune_empty_dirs(store.root / prefix, stop=store.root)
    return len(keys)


def _prune_empty_dirs(path: Path, stop: Path) -> None:
    """Remove empty folders left by deletes in a local store, from `path` up to (not including) `stop`."""
    if path.is_dir():
        for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if child.is_dir() and not any(child.iterdir()):
                child.rmdir()
    while path != stop and path.is_relative_to(stop):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        elif path.exists():
            break
        path = path.parent


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
        log.warning("removing abandoned staging %s", _where(store, run))
        discard(store, run)
    return swept


@dataclass(frozen=True)
class NightlyPublication:
    """Where one locked run publishes: it writes under `staging`, then promotes to `final`."""

    lock: LockInfo
    staging: str
    final: str


def current_run_id() -> str:
    """The Prefect flow run id, or a random id outside a flow run (a plain function call in tests)."""
    import uuid

    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else uuid.uuid4().hex


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
