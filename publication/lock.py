"""One audit at a time per study: the audit lock under the reports root.

    _audit/<STUDYID>/lock.json                          held while an audit of the study runs

Why a lock object and not only Prefect's deployment concurrency limit: audits also start from the
command line and from `run-all`, on other machines; the reports location is the one thing they all
share. The lock is created with a conditional write (`If-None-Match: *` on S3, `O_EXCL` locally), so
exactly one of two racing runs gets it. It records run id, host, pid and start time so that the
message of the run that backs off says who holds it. A lock older than `max_age` (default 12 h, far
longer than a night's run) is taken to belong to a run that was killed without its `finally`; it is
broken with a warning. Breaking is delete-then-create, so two runs that find the same stale lock at
the same instant could both proceed; with a nightly schedule and a 12 h threshold this is accepted
and documented (docs/operations.md).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from storage import ObjectNotFound, Store, join_key

#: Everything the audit keeps for itself under the reports root, apart from the reports.
AUDIT_FOLDER = "_audit"
DEFAULT_LOCK_MAX_AGE = timedelta(hours=12)

_log = logging.getLogger(__name__)


class AuditLockedError(RuntimeError):
    """Another audit of the same study holds the lock: this run does nothing and exits."""

    def __init__(self, message: str, holder: LockInfo | None) -> None:
        super().__init__(message)
        self.holder = holder


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


def where(store: Store, key: str) -> str:
    """The full URI of a key, for messages."""
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
        except ObjectNotFound:
            continue  # released between our attempt and our read: try once more
        age = _lock_age(store, key, holder, now)
        who = holder.describe() if holder else "an unreadable lock"
        if age is not None and age > max_age:
            log.warning("breaking the stale audit lock of %s held by %s (%.1f h old, limit %.1f h) at %s",
                        study, who, age.total_seconds() / 3600, max_age.total_seconds() / 3600, where(store, key))
            store.delete(key)
            continue
        raise AuditLockedError(
            f"another audit of {study} is running: {who}. This run exits without doing anything. "
            f"The lock is {where(store, key)}; it is released when that run ends, and broken "
            f"automatically once it is older than {max_age.total_seconds() / 3600:g} h.",
            holder,
        )
    raise AuditLockedError(f"could not take the audit lock of {study} at {where(store, key)}: another run "
                           "took it at the same moment; this run exits without doing anything.", None)


def release_lock(store: Store, lock: LockInfo,
                 logger: logging.Logger | logging.LoggerAdapter | None = None) -> bool:
    """Delete the lock if it is still ours; True when released.

    A lock that now belongs to another run (ours was broken as stale) is left alone.
    """
    log = logger or _log
    key = lock_key(lock.study)
    try:
        current = LockInfo.from_bytes(store.read_bytes(key))
    except ObjectNotFound:
        log.warning("audit lock of %s was already gone when run %s ended", lock.study, lock.run_id)
        return False
    if current is None or current.run_id != lock.run_id:
        log.warning("audit lock of %s now belongs to %s; not releasing it", lock.study,
                    current.describe() if current else "an unreadable lock")
        return False
    store.delete(key)
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


