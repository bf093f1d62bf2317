"""`screening-audit unlock`: an operator releases a study's lease by hand, on the record.

Why a command and not "delete the object": the lease must only change by conditional writes (a run
renewing it at that moment must find out it lost it, not silently recreate it), the refusal to
release a live-looking holder must be the default, and a forced release must leave a trace. Each
unlock writes an immutable record `_audit/<STUDY>/unlocks/<UTC time>.json` (who, from which host,
whose lease, forced or not) and logs the same at WARNING.

Without `--force`, a lease is released only if it is already free by the rules a run applies (its
holder ended on this host, or it was not renewed for its expiry): the command then only spares the
operator the wait. With `--force`, a held lease is released whatever it looks like; if its run is in
fact alive, that run finds out at its next renewal or before promotion and publishes nothing.
"""

from __future__ import annotations

import getpass
import json
import logging
import socket
from dataclasses import dataclass, replace
from datetime import datetime

from publication.layout import journal_key, lease_key, staging_root, unlock_record_key, where
from publication.lease import DEFAULT_LEASE_EXPIRY, RELEASED, LeaseRecord, judge, read_lease, utc_now, utc_stamp
from publication.liveness import ProcessIdentity
from storage import Store

_log = logging.getLogger("screening_audit.unlock")


class UnlockRefused(RuntimeError):
    """The lease looks alive and `--force` was not given."""


@dataclass(frozen=True)
class UnlockResult:
    released: bool
    message: str
    pending: list[str]  # what the next run will clean up


def _operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def pending_recovery(store: Store, study: str) -> list[str]:
    """What the next run of the study will finish or remove before it audits (for the operator)."""
    notes = []
    if store.head(journal_key(study)) is not None:
        notes.append("an interrupted promotion, which it completes")
    runs = {"/".join(obj.key.split("/")[3:5]) for obj in store.list(staging_root(study))}
    if runs:
        notes.append(f"{len(runs)} staging folder(s) of runs that did not finish, which it removes")
    return notes


def unlock(store: Store, study: str, *, force: bool = False, now: datetime | None = None) -> UnlockResult:
    """Release the study's lease as an operator (see the module docstring); `UnlockRefused` if it looks alive."""
    now = now or utc_now()
    key = lease_key(study)
    pending = pending_recovery(store, study)
    found = read_lease(store, study)
    if found is None:
        return UnlockResult(False, f"no lease at {where(store.uri, key)}: nothing to release", pending)
    record, etag, last_modified = found
    if record is not None and record.state == RELEASED:
        return UnlockResult(False, f"the lease of {study} is not held (last {record.describe()}, released by "
                                   f"{record.released_by} at {record.released_at})", pending)
    verdict = judge(record, now, last_modified=last_modified, default_expiry=DEFAULT_LEASE_EXPIRY)
    who = record.describe() if record else "an unreadable lease"
    if not verdict.free and not force:
        raise UnlockRefused(f"the lease of {study} is held by {who} and looks alive ({verdict.reason}). If you "
                            "are sure that run is not running (its host is gone, its process killed), give --force.")
    operator = _operator()
    how = "unlock --force" if force and not verdict.free else "unlock"
    released = (replace(record, state=RELEASED, released_at=utc_stamp(now), released_by=f"{how} by {operator}")
                if record is not None else None)
    body = released.to_bytes() if released is not None else _unreadable_release(study, now, how, operator)
    if store.replace_if_match(key, body, etag) is None:
        return UnlockResult(False, f"the lease of {study} changed while unlocking (a run renewed or took it); "
                                   "nothing released, look again", pending)
    entry = {"study": study, "at": utc_stamp(now), "by": operator, "forced": how == "unlock --force",
             "holder": json.loads(record.to_bytes()) if record else None, "verdict": verdict.reason}
    store.create_if_absent(unlock_record_key(study, now.strftime("%Y%m%dT%H%M%S%fZ")),
                           (json.dumps(entry, indent=1) + "\n").encode())
    # a reason that names the holder itself ("its holder, run … on host …, has ended") is not preceded by it again
    held = f"({verdict.reason})" if who in verdict.reason else f"held by {who} ({verdict.reason})"
    _log.warning("%s: released the audit lease of %s %s at %s", how, study, held, where(store.uri, key))
    return UnlockResult(True, f"released the lease of {study} {held}", pending)


def _unreadable_release(study: str, now: datetime, how: str, operator: str) -> bytes:
    stamp = utc_stamp(now)
    return LeaseRecord(study=study, run_id="unknown", holder=ProcessIdentity("unknown", 0), acquired_at=stamp,
                       renewed_at=stamp, expiry_seconds=0, state=RELEASED, released_at=stamp,
                       released_by=f"{how} by {operator}").to_bytes()

