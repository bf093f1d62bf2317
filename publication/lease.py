"""One audit at a time per study: a lease on the reports location, renewed while the run lives.

    _audit/<STUDYID>/lease.json

Why a lease object and not only Prefect's deployment concurrency limit: audits also start from the
command line and from `run-all`, on other machines; the reports location is the one thing they all
share. Why a lease and not a lock: a run killed without its `finally` (SIGKILL, the out-of-memory
killer, a lost machine) must not block the next one for long.

- **Taking it.** A missing lease object is created with `If-None-Match: *`; an existing one is
  replaced only with `If-Match: <the ETag just read>`. Every change is a conditional write on the
  version that was looked at, so of two runs deciding at the same moment exactly one succeeds; there
  is never a delete-then-create window.
- **Holding it.** The holder renews the lease (a conditional write of a new `renewed_at`) every fifth of
  its expiry, from a daemon thread (`Lease.heartbeat`). A renewal that finds another version means the
  lease was taken over: the run is told (`LeaseLostError`) before it publishes anything.
- **Free.** A lease is free when it was released, when it has not been renewed for its expiry (default
  five minutes; clocks of the hosts are assumed to agree within seconds, as NTP keeps them), or at
  once when its holder ran on this host and has ended (`publication.liveness`).
- **Releasing it.** The holder writes the lease back as released (conditionally, so a lease that was
  taken over is left alone). The object stays, saying who held it last.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

from publication.layout import lease_key, where
from publication.liveness import ProcessIdentity, has_ended, this_process
from storage import ObjectNotFound, StorageError, Store

DEFAULT_LEASE_EXPIRY = timedelta(minutes=5)
#: renewals per expiry period: a holder misses four in a row before its lease can be taken
RENEWALS_PER_EXPIRY = 5
HELD, RELEASED = "held", "released"

_log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class AuditLockedError(RuntimeError):
    """Another audit of the same study holds a live lease: this run does nothing and exits."""

    def __init__(self, message: str, holder: LeaseRecord | None) -> None:
        super().__init__(message)
        self.holder = holder


class LeaseLostError(RuntimeError):
    """This run's lease was taken over (it was not renewed in time, or an operator forced `unlock`):
    the run must not publish."""


@dataclass(frozen=True)
class LeaseRecord:
    """The lease object's JSON body."""

    study: str
    run_id: str
    holder: ProcessIdentity
    acquired_at: str
    renewed_at: str
    expiry_seconds: float
    state: str = HELD
    released_at: str | None = None
    released_by: str | None = None

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), sort_keys=True, indent=1) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseRecord | None:
        """The record, or None when the body is not a lease written by this module."""
        try:
            raw = json.loads(data)
            holder = ProcessIdentity(host=str(raw["holder"]["host"]), pid=int(raw["holder"]["pid"]),
                                     scope=raw["holder"].get("scope"), start=raw["holder"].get("start"))
            record = cls(study=str(raw["study"]), run_id=str(raw["run_id"]), holder=holder,
                         acquired_at=str(raw["acquired_at"]), renewed_at=str(raw["renewed_at"]),
                         expiry_seconds=float(raw["expiry_seconds"]), state=str(raw.get("state", HELD)),
                         released_at=raw.get("released_at"), released_by=raw.get("released_by"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return record if record.state in (HELD, RELEASED) else None

    def describe(self) -> str:
        return f"run {self.run_id} on host {self.holder.host} (pid {self.holder.pid}) since {self.acquired_at}"


@dataclass(frozen=True)
class Verdict:
    """Whether a lease found in storage may be taken, and why (for the log and the run manifest)."""

    free: bool
    reason: str


def judge(record: LeaseRecord | None, now: datetime, *, last_modified: datetime | None,
          default_expiry: timedelta) -> Verdict:
    """May a run take this lease now? Released, holder ended on this host, or not renewed in time."""
    if record is None:
        age = now - last_modified if last_modified else None
        if age is not None and age > default_expiry:
            return Verdict(True, f"an unreadable lease not written for {age.total_seconds():.0f} s")
        return Verdict(False, "an unreadable lease object")
    if record.state == RELEASED:
        return Verdict(True, f"released by {record.released_by or 'its run'} at {record.released_at}")
    if has_ended(record.holder):
        return Verdict(True, f"its holder, {record.describe()}, has ended")
    renewed = _parse(record.renewed_at)
    age = now - renewed if renewed else None
    expiry = record.expiry_seconds if record.expiry_seconds > 0 else default_expiry.total_seconds()
    if age is None or age.total_seconds() > expiry:
        silent = f"{age.total_seconds():.0f} s" if age is not None else "an unknown time"
        return Verdict(True, f"it expired: {record.describe()} has not renewed it for {silent} "
                             f"(it expires after {expiry:g} s)")
    return Verdict(False, f"renewed {max(age.total_seconds(), 0):.0f} s ago, expires after {expiry:g} s")


class Lease:
    """A lease this run holds: renew it, check it is still ours, release it."""

    def __init__(self, store: Store, record: LeaseRecord, etag: str, *, took_over: str | None = None,
                 clock: Callable[[], datetime] = utc_now, logger: Logger | None = None) -> None:
        self.store = store
        self.key = lease_key(record.study)
        self.record = record
        self.etag = etag
        self.took_over = took_over  # why an earlier holder's lease could be taken, if there was one
        self.clock = clock
        self.log = logger or _log
        self.lost: str | None = None
        self._confirmed = time.monotonic()
        self._mutex = threading.Lock()  # one conditional write at a time: heartbeat vs. release

    @property
    def expiry(self) -> float:
        return self.record.expiry_seconds

    def renew(self) -> None:
        """Write a new `renewed_at` on the version we hold; `LeaseLostError` if someone else wrote since."""
        with self._mutex:
            if self.lost:
                raise LeaseLostError(self.lost)
            renewed = replace(self.record, renewed_at=utc_stamp(self.clock()))
            etag = self.store.replace_if_match(self.key, renewed.to_bytes(), self.etag)
            if etag is None and not self._still_ours():
                self._lose("it was taken over")
                raise LeaseLostError(self.lost or "")
            if etag is not None:
                self.record, self.etag = renewed, etag
            self._confirmed = time.monotonic()

    def _still_ours(self) -> bool:
        """After a refused conditional write: is the lease nevertheless this run's, still held?

        It is when our own write went through but its answer was lost and the client's retry of the
        same request was refused (the ETag had changed: by that very write). Then adopt that version.
        """
        with suppress(ObjectNotFound):
            data, etag = self.store.read_versioned(self.key)
            current = LeaseRecord.from_bytes(data)
            if (current is not None and current.state == HELD and current.run_id == self.record.run_id
                    and current.holder == self.record.holder):
                self.record, self.etag = current, etag
                return True
        return False

    def _lose(self, how: str) -> None:
        current = None
        with suppress(StorageError):
            current = LeaseRecord.from_bytes(self.store.read_bytes(self.key))
        now_held = f"; it is now held by {current.describe()}" if current and current.state == HELD else ""
        self.lost = (f"the audit lease of {self.record.study} held by run {self.record.run_id} was lost: {how}"
                     f"{now_held}. This run publishes nothing.")
        self.log.error("%s", self.lost)

    def ensure_held(self) -> None:
        """Raise `LeaseLostError` unless the lease is still ours; renews first when the last confirmed
        renewal is older than half the expiry (a paused process, a stalled heartbeat)."""
        if self.lost:
            raise LeaseLostError(self.lost)
        if time.monotonic() - self._confirmed > self.expiry / 2:
            self.renew()

    def confirm(self) -> None:
        """Raise `LeaseLostError` unless the lease is this run's right now: a renewal (a conditional write) whatever
        the time since the last one. For the moments that decide a publication (its start, its marker), where the
        heartbeat's minute is too long: helper-44 forced an unlock and started a second run 17 s before the first
        promoted, and the first published without noticing."""
        self.renew()

    def _beat(self, stop: threading.Event) -> None:
        interval = max(self.expiry / RENEWALS_PER_EXPIRY, 0.05)
        while not stop.wait(interval):
            try:
                self.renew()
            except LeaseLostError:
                return
            except Exception as error:  # storage down: try again next beat; lost once expired
                self.log.warning("could not renew the audit lease of %s: %s", self.record.study,
                                 type(error).__name__)
                if time.monotonic() - self._confirmed > self.expiry:
                    with self._mutex:
                        self.lost = self.lost or (
                            f"the audit lease of {self.record.study} could not be renewed for {self.expiry:g} s "
                            "and may have been taken over. This run publishes nothing.")
                    self.log.error("%s", self.lost)
                    return

    @contextmanager
    def heartbeat(self) -> Iterator[Lease]:
        """Renew the lease from a daemon thread for the duration of the block."""
        stop = threading.Event()
        thread = threading.Thread(target=self._beat, args=(stop,), name=f"lease-{self.record.study}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def release(self) -> bool:
        """Write the lease back as released if it is still ours; True when released."""
        with self._mutex:
            if self.lost:
                self.log.warning("not releasing the audit lease of %s: it is no longer ours", self.record.study)
                return False
            released = replace(self.record, state=RELEASED, released_at=utc_stamp(self.clock()),
                               released_by=f"run {self.record.run_id}")
            etag = self.store.replace_if_match(self.key, released.to_bytes(), self.etag)
            if etag is None and not self._released_by_us():
                self.log.warning("the audit lease of %s was taken over before run %s ended; left alone",
                                 self.record.study, self.record.run_id)
                return False
            self.record, self.etag = released, etag or self.etag
        self.log.info("audit lease of %s released by run %s", self.record.study, self.record.run_id)
        return True

    def _released_by_us(self) -> bool:
        """After a refused release: did our own release go through (its answer lost, the retry refused)?"""
        with suppress(ObjectNotFound):
            current = LeaseRecord.from_bytes(self.store.read_bytes(self.key))
            return (current is not None and current.state == RELEASED and current.holder == self.record.holder
                    and current.released_by == f"run {self.record.run_id}")
        return False


def read_lease(store: Store, study: str) -> tuple[LeaseRecord | None, str, datetime | None] | None:
    """(record or None if unreadable, its ETag, last modified) of the study's lease; None when absent."""
    key = lease_key(study)
    try:
        data, etag = store.read_versioned(key)
    except ObjectNotFound:
        return None
    record = LeaseRecord.from_bytes(data)
    last_modified = None
    if record is None:
        info = store.head(key)
        last_modified = info.last_modified if info else None
    return record, etag, last_modified


def acquire_lease(store: Store, study: str, *, run_id: str, expiry: timedelta = DEFAULT_LEASE_EXPIRY,
                  clock: Callable[[], datetime] = utc_now, me: ProcessIdentity | None = None,
                  logger: Logger | None = None) -> Lease:
    """Take the study's lease or raise `AuditLockedError` naming who holds it (see the module docstring)."""
    log = logger or _log
    key = lease_key(study)
    for _attempt in range(5):
        now = clock()
        mine = LeaseRecord(study=study, run_id=run_id, holder=me or this_process(), acquired_at=utc_stamp(now),
                           renewed_at=utc_stamp(now), expiry_seconds=expiry.total_seconds())
        found = read_lease(store, study)
        if found is None:
            etag = store.create_if_absent(key, mine.to_bytes())
            if etag is not None:
                log.info("audit lease of %s taken by run %s", study, run_id)
                return Lease(store, mine, etag, clock=clock, logger=log)
            continue  # another run created it first: look at theirs
        record, etag, last_modified = found
        if record is not None and record.state == HELD and record.run_id == run_id and record.holder == mine.holder:
            # our own create went through but its answer was lost (the client's retry was refused)
            log.info("audit lease of %s taken by run %s", study, run_id)
            return Lease(store, record, etag, clock=clock, logger=log)
        verdict = judge(record, now, last_modified=last_modified, default_expiry=expiry)
        if not verdict.free:
            who = record.describe() if record else "an unreadable lease object"
            raise AuditLockedError(
                f"another audit of {study} is running: {who} ({verdict.reason}). This run exits without "
                f"doing anything. The lease is {where(store.uri, key)}; if that run is dead, the lease expires "
                "by itself, and an operator can release it now with "
                f"`screening-audit unlock --reports {store.uri} --study {study}`.",
                record,
            )
        new_etag = store.replace_if_match(key, mine.to_bytes(), etag)
        if new_etag is not None:
            if record is not None and record.state == RELEASED:
                log.info("audit lease of %s taken by run %s", study, run_id)
                return Lease(store, mine, new_etag, clock=clock, logger=log)
            log.warning("took over the audit lease of %s: %s", study, verdict.reason)
            return Lease(store, mine, new_etag, took_over=verdict.reason, clock=clock, logger=log)
        # another run changed it between our read and our write: look again
    raise AuditLockedError(f"could not take the audit lease of {study} at {where(store.uri, key)}: other runs "
                           "kept changing it; this run exits without doing anything.", None)
