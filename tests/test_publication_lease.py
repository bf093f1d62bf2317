"""The study's lease: taken and replaced only by conditional writes, renewed by a heartbeat, free when
released, expired or when its holder ended on this host; `unlock` for operators; the start-up check of
conditional writes. On a local folder and on a real S3 protocol server (moto over HTTP)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from publication import (
    AuditLockedError,
    LeaseLostError,
    LeaseRecord,
    UnlockRefused,
    acquire_lease,
    check_conditional_writes,
    lease_key,
    unlock,
)
from publication.liveness import ProcessIdentity, has_ended, this_process
from storage import ConditionalWritesUnsupported, LocalStore, Store, open_store

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
EXPIRY = timedelta(minutes=5)
ELSEWHERE = ProcessIdentity(host="worker-a", pid=4242, scope="other-boot/pid:[1]", start="77")


def _at(moment: datetime):
    return lambda: moment


def _lease(store: Store) -> LeaseRecord:
    record = LeaseRecord.from_bytes(store.read_bytes(lease_key("SZ003")))
    assert record is not None
    return record


def _ended_process() -> ProcessIdentity:
    """The identity of a process of this host that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    alive = ProcessIdentity(socket.gethostname(), child.pid, this_process().scope, _start_of(child.pid))
    child.communicate(b"")
    return alive


def _start_of(pid: int) -> str | None:
    from publication.liveness import _start

    return _start(pid)


# --- taking it ---------------------------------------------------------------------------------


def test_the_lease_records_run_holder_and_times(store: Store) -> None:
    lease = acquire_lease(store, "SZ003", run_id="run-1", clock=_at(NOW), me=ELSEWHERE)
    body = json.loads(store.read_bytes("_audit/SZ003/lease.json"))
    assert body == {"study": "SZ003", "run_id": "run-1", "state": "held", "expiry_seconds": 300.0,
                    "holder": {"host": "worker-a", "pid": 4242, "scope": "other-boot/pid:[1]", "start": "77"},
                    "acquired_at": "2026-11-28T02:00:00.000000+00:00",
                    "renewed_at": "2026-11-28T02:00:00.000000+00:00", "released_at": None, "released_by": None}
    assert lease.took_over is None


def test_a_second_run_backs_off_naming_the_holder_and_how_to_release_it(store: Store) -> None:
    acquire_lease(store, "SZ003", run_id="run-1", clock=_at(NOW), me=ELSEWHERE)
    before = store.head(lease_key("SZ003")).etag
    with pytest.raises(AuditLockedError) as caught:
        acquire_lease(store, "SZ003", run_id="run-2", clock=_at(NOW + timedelta(minutes=2)))
    message = str(caught.value)
    assert "another audit of SZ003 is running: run run-1 on host worker-a (pid 4242)" in message
    assert "renewed 120 s ago, expires after 300 s" in message
    assert f"screening-audit unlock --reports {store.uri} --study SZ003" in message
    assert caught.value.holder is not None and caught.value.holder.run_id == "run-1"
    assert store.head(lease_key("SZ003")).etag == before  # untouched


def test_leases_are_per_study(store: Store) -> None:
    acquire_lease(store, "SZ003", run_id="run-1", clock=_at(NOW))
    assert acquire_lease(store, "AB001", run_id="run-2", clock=_at(NOW)).record.study == "AB001"


@pytest.mark.parametrize(("seconds", "free"), [(299, False), (300, False), (301, True)])
def test_a_lease_not_renewed_for_its_expiry_is_taken_over(store: Store, seconds: int, free: bool,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    acquire_lease(store, "SZ003", run_id="dead-run", clock=_at(NOW), me=ELSEWHERE)
    later = NOW + timedelta(seconds=seconds)
    if not free:
        with pytest.raises(AuditLockedError):
            acquire_lease(store, "SZ003", run_id="run-2", clock=_at(later))
        return
    with caplog.at_level(logging.WARNING):
        lease = acquire_lease(store, "SZ003", run_id="run-2", clock=_at(later))
    assert _lease(store).run_id == "run-2"
    assert "it expired: run dead-run on host worker-a (pid 4242)" in lease.took_over
    assert "has not renewed it for 301 s" in caplog.text


def test_on_this_host_a_holder_that_ended_is_taken_over_at_once(store: Store) -> None:
    ended = _ended_process()
    acquire_lease(store, "SZ003", run_id="killed-run", clock=_at(NOW), me=ended)
    lease = acquire_lease(store, "SZ003", run_id="rerun", clock=_at(NOW + timedelta(seconds=1)))
    assert lease.took_over == f"its holder, run killed-run on host {socket.gethostname()} (pid {ended.pid}) " \
                              f"since 2026-11-28T02:00:00.000000+00:00, has ended"


def test_on_this_host_a_live_holder_keeps_its_lease(store: Store) -> None:
    acquire_lease(store, "SZ003", run_id="live-run", clock=_at(NOW))  # this very process
    with pytest.raises(AuditLockedError, match="live-run"):
        acquire_lease(store, "SZ003", run_id="run-2", clock=_at(NOW + timedelta(seconds=1)))


def test_liveness_of_recorded_processes() -> None:
    me = this_process()
    assert not has_ended(me)
    assert has_ended(_ended_process())
    assert has_ended(ProcessIdentity(me.host, me.pid, me.scope, start="1"))  # our pid, someone else's start
    assert not has_ended(ProcessIdentity("another-host", _ended_process().pid, me.scope, None))
    assert not has_ended(ProcessIdentity(me.host, _ended_process().pid, "another-boot/pid:[9]", None))


def test_a_killed_child_not_yet_reaped_has_ended() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    identity = ProcessIdentity(socket.gethostname(), child.pid, this_process().scope, _start_of(child.pid))
    assert not has_ended(identity)
    child.kill()
    deadline = time.monotonic() + 60
    while not has_ended(identity) and time.monotonic() < deadline:  # a zombie until we wait for it
        time.sleep(0.05)
    assert has_ended(identity)
    child.wait()


def test_exactly_one_of_many_runs_taking_over_an_expired_lease_wins(store: Store) -> None:
    acquire_lease(store, "SZ003", run_id="dead-run", clock=_at(NOW), me=ELSEWHERE)
    later = NOW + timedelta(hours=1)

    def attempt(i: int) -> str:
        try:
            return acquire_lease(store, "SZ003", run_id=f"run-{i}", clock=_at(later)).record.run_id
        except AuditLockedError:
            return "locked"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(8)))
    winners = [r for r in results if r != "locked"]
    assert len(winners) == 1
    assert _lease(store).run_id == winners[0]


def test_an_unreadable_lease_ages_by_its_modification_time(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes(lease_key("SZ003"), b"not json")
    with pytest.raises(AuditLockedError, match="an unreadable lease object"):
        acquire_lease(store, "SZ003", run_id="run-2")
    lease = acquire_lease(store, "SZ003", run_id="run-2", clock=_at(datetime.now(UTC) + timedelta(minutes=6)))
    assert lease.record.run_id == "run-2" and "unreadable lease" in lease.took_over


# --- holding and releasing it ---------------------------------------------------------------------


def test_renewal_moves_renewed_at_and_the_etag(store: Store) -> None:
    times = iter([NOW, NOW + timedelta(seconds=60)])
    lease = acquire_lease(store, "SZ003", run_id="run-1", clock=lambda: next(times))
    first = lease.etag
    lease.renew()
    assert lease.etag != first
    assert _lease(store).renewed_at == "2026-11-28T02:01:00.000000+00:00"
    assert _lease(store).acquired_at == "2026-11-28T02:00:00.000000+00:00"


def test_a_run_whose_lease_was_taken_over_finds_out_and_leaves_the_new_holder_alone(store: Store) -> None:
    mine = acquire_lease(store, "SZ003", run_id="slow-run", clock=_at(NOW), me=ELSEWHERE)
    theirs = acquire_lease(store, "SZ003", run_id="run-2", clock=_at(NOW + timedelta(minutes=10)))
    with pytest.raises(LeaseLostError, match="now held by run run-2"):
        mine.renew()
    with pytest.raises(LeaseLostError):
        mine.ensure_held()
    assert mine.release() is False
    assert _lease(store).run_id == "run-2" and _lease(store).state == "held"
    assert theirs.release() is True
    assert _lease(store).state == "released" and _lease(store).released_by == "run run-2"


def test_the_heartbeat_renews_the_lease_while_the_run_lives(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    lease = acquire_lease(store, "SZ003", run_id="run-1", expiry=timedelta(seconds=0.5))
    first = _lease(store).renewed_at
    with lease.heartbeat():
        deadline = time.monotonic() + 60
        while _lease(store).renewed_at == first and time.monotonic() < deadline:
            time.sleep(0.05)
    assert _lease(store).renewed_at != first
    lease.ensure_held()


def test_a_conditional_write_whose_answer_was_lost_is_recognised_as_our_own(s3_endpoint: str, s3_bucket: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The PUT reached S3 and took effect, the answer was lost, boto3 sent it again and S3 refused the
    repeat (the ETag had changed: by our own write). That is neither a lost lease nor a held one."""
    from faults import Action, FaultProxy, Rule

    monkeypatch.setenv("SCREENING_AUDIT_S3_ATTEMPTS", "3")
    with FaultProxy(s3_endpoint) as proxy:
        store = open_store(f"s3://{s3_bucket}/{uuid.uuid4().hex}", proxy.url)
        proxy.add(Rule(Action.LOSE_ANSWER, operation="put", key=r"lease\.json$", count=1))
        lease = acquire_lease(store, "SZ003", run_id="run-1")
        assert lease.record.run_id == "run-1"
        proxy.add(Rule(Action.LOSE_ANSWER, operation="put", key=r"lease\.json$", count=1))
        lease.renew()
        assert len(proxy.seen("put", outcome="lose_answer")) == 2
        lease.renew()  # the version it adopted is the current one
        assert lease.release() is True


def test_a_released_lease_is_taken_without_a_warning(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    acquire_lease(store, "SZ003", run_id="run-1", clock=_at(NOW)).release()
    with caplog.at_level(logging.WARNING):
        lease = acquire_lease(store, "SZ003", run_id="run-2", clock=_at(NOW))
    assert lease.took_over is None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- unlock ---------------------------------------------------------------------------------------


def test_unlock_refuses_a_live_holder_without_force(store: Store) -> None:
    acquire_lease(store, "SZ003", run_id="live-run", clock=_at(datetime.now(UTC)))
    with pytest.raises(UnlockRefused, match=r"held by run live-run .* looks alive .* --force"):
        unlock(store, "SZ003")
    assert _lease(store).state == "held"


def test_unlock_force_releases_on_the_record_and_the_holder_finds_out(store: Store,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    holder = acquire_lease(store, "SZ003", run_id="stuck-run", clock=_at(datetime.now(UTC)))
    with caplog.at_level(logging.WARNING, logger="screening_audit.unlock"):
        result = unlock(store, "SZ003", force=True)
    assert result.released
    record = _lease(store)
    assert record.state == "released" and record.released_by.startswith("unlock --force by ")
    assert "unlock --force: released the audit lease of SZ003 held by run stuck-run" in caplog.text
    entries = [json.loads(store.read_bytes(obj.key)) for obj in store.list("_audit/SZ003/unlocks")]
    assert [(e["forced"], e["holder"]["run_id"]) for e in entries] == [(True, "stuck-run")]
    with pytest.raises(LeaseLostError):
        holder.renew()
    assert acquire_lease(store, "SZ003", run_id="next-run").took_over is None


def test_unlock_releases_an_ended_holder_without_force_and_says_what_the_next_run_cleans_up(store: Store) -> None:
    acquire_lease(store, "SZ003", run_id="killed-run", clock=_at(datetime.now(UTC)), me=_ended_process())
    store.write_bytes("_audit/SZ003/staging/2026-11-28/killed-run/subjects.csv", b"half")
    result = unlock(store, "SZ003")
    assert result.released and "has ended" in result.message
    assert result.message.count("run killed-run") == 1, result.message  # helper-44: the holder was named twice
    assert result.pending == ["1 staging folder(s) of runs that did not finish, which it removes"]
    assert unlock(store, "SZ003").released is False  # already released: nothing to do


def test_unlock_without_a_lease_does_nothing(store: Store) -> None:
    result = unlock(store, "SZ003")
    assert not result.released and "nothing to release" in result.message
    assert list(store.list()) == []


# --- the conditional-writes check ------------------------------------------------------------------


def test_an_endpoint_that_honours_conditional_writes_passes_the_check(store: Store) -> None:
    check_conditional_writes(store, "SZ003")
    check_conditional_writes(store, "SZ003")  # the probe object exists now: still passes
    assert [obj.key for obj in store.list()] == ["_audit/SZ003/conditional-writes-probe"]


class _IgnoresConditions:
    """A store whose endpoint accepts If-None-Match / If-Match and ignores them."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.uri = inner, inner.uri

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def create_if_absent(self, key: str, data: bytes) -> str | None:
        self.inner.write_bytes(key, data)
        return self.inner.head(key).etag or "etag"

    def replace_if_match(self, key: str, data: bytes, etag: str) -> str | None:
        self.inner.write_bytes(key, data)
        return self.inner.head(key).etag or "etag"


def test_an_endpoint_that_ignores_conditional_writes_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(ConditionalWritesUnsupported, match=r"ignores conditional writes \(If-None-Match and If-Match"):
        check_conditional_writes(_IgnoresConditions(LocalStore(tmp_path)), "SZ003")  # type: ignore[arg-type]


def test_the_holder_identity_is_this_process() -> None:
    me = this_process()
    assert (me.host, me.pid) == (socket.gethostname(), os.getpid())
    if Path("/proc/self/stat").exists():
        assert me.scope and me.start


def test_a_run_whose_lease_was_forced_away_does_not_publish_even_between_two_heartbeats(tmp_path: Path) -> None:
    """helper-44: `unlock --force` and a second run 17 s before the first run's promotion: the first published
    without noticing, since its checks re-read the lease only when the last renewal was half an expiry old."""
    from publication import nightly_publication
    from publication.marker import is_published

    store = LocalStore(tmp_path)
    with nightly_publication(store, "SZ003", datetime(2026, 12, 1).date(), run_id="first-run") as publication:
        writer = publication.writer()
        writer.write_bytes(f"{publication.staging}/report.html", b"<html></html>", "text/html")
        writer.seal(study="SZ003", as_of="2026-12-01", run_id="first-run")
        assert unlock(store, "SZ003", force=True).released  # the first run's heartbeat has not beaten since
        with pytest.raises(LeaseLostError, match="This run publishes nothing"):
            publication.promote()
    assert not is_published(store, "SZ003/2026-12-01")
