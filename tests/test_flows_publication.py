"""Audit lock and staged, all-or-nothing publication, on a local folder and on a real S3 protocol server."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from publication import (
    AuditLockedError,
    LockInfo,
    PublicationError,
    acquire_lock,
    audit_lock,
    discard,
    final_prefix,
    lock_key,
    promote,
    release_lock,
    staging_prefix,
    sweep_staging,
)
from storage import LocalStore, S3Store, Store, open_store

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "reports")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    # a unique prefix: the shared fixture truncates long parametrised test names into one bucket name
    return open_store(f"s3://{bucket}/{uuid.uuid4().hex}/reports", endpoint)


def _keys(store: Store, prefix: str = "") -> list[str]:
    return [obj.key for obj in store.list(prefix)]


# --- layout -------------------------------------------------------------------------------------


def test_layout_keeps_audit_state_apart_from_published_reports() -> None:
    assert final_prefix("SZ003", "2026-11-28") == "SZ003/2026-11-28"
    assert staging_prefix("SZ003", "2026-11-28", "run-1") == "_audit/SZ003/staging/2026-11-28/run-1"
    assert lock_key("SZ003") == "_audit/SZ003/lock.json"


# --- lock ---------------------------------------------------------------------------------------


def test_lock_records_run_host_pid_and_start_time(store: Store) -> None:
    lock = acquire_lock(store, "SZ003", run_id="run-1", now=NOW, host="worker-a")
    body = json.loads(store.read_bytes("_audit/SZ003/lock.json"))
    assert body == {"study": "SZ003", "run_id": "run-1", "host": "worker-a", "pid": lock.pid,
                    "started_at": "2026-11-28T02:00:00+00:00"}


def test_second_run_backs_off_with_a_message_naming_the_holder(store: Store) -> None:
    acquire_lock(store, "SZ003", run_id="run-1", now=NOW, host="worker-a")
    with pytest.raises(AuditLockedError) as caught:
        acquire_lock(store, "SZ003", run_id="run-2", now=NOW + timedelta(hours=1), host="worker-b")
    message = str(caught.value)
    assert "another audit of SZ003 is running: run run-1 on host worker-a" in message
    assert "since 2026-11-28T02:00:00+00:00" in message
    assert "exits without doing anything" in message
    assert message.count("_audit/SZ003/lock.json") == 1
    assert caught.value.holder is not None and caught.value.holder.run_id == "run-1"
    # the holder's lock is untouched
    assert LockInfo.from_bytes(store.read_bytes(lock_key("SZ003"))).run_id == "run-1"


def test_locks_are_per_study(store: Store) -> None:
    acquire_lock(store, "SZ003", run_id="run-1", now=NOW)
    assert acquire_lock(store, "AB001", run_id="run-2", now=NOW).study == "AB001"


@pytest.mark.parametrize(("age_hours", "broken"), [(11.9, False), (12.0, False), (12.1, True)])
def test_stale_lock_is_broken_only_past_max_age(store: Store, age_hours: float, broken: bool,
                                               caplog: pytest.LogCaptureFixture) -> None:
    acquire_lock(store, "SZ003", run_id="dead-run", now=NOW, host="gone")
    later = NOW + timedelta(hours=age_hours)
    if not broken:
        with pytest.raises(AuditLockedError):
            acquire_lock(store, "SZ003", run_id="run-2", now=later, max_age=timedelta(hours=12))
        return
    with caplog.at_level(logging.WARNING):
        lock = acquire_lock(store, "SZ003", run_id="run-2", now=later, max_age=timedelta(hours=12))
    assert lock.run_id == "run-2"
    assert LockInfo.from_bytes(store.read_bytes(lock_key("SZ003"))).run_id == "run-2"
    assert "breaking the stale audit lock of SZ003 held by run dead-run on host gone" in caplog.text


def test_unreadable_lock_ages_by_its_modification_time(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes(lock_key("SZ003"), b"not json")
    with pytest.raises(AuditLockedError, match="an unreadable lock"):
        acquire_lock(store, "SZ003", run_id="run-2", now=datetime.now(UTC))
    lock = acquire_lock(store, "SZ003", run_id="run-2", now=datetime.now(UTC) + timedelta(hours=13))
    assert lock.run_id == "run-2"


def test_release_deletes_only_our_own_lock(store: Store) -> None:
    mine = acquire_lock(store, "SZ003", run_id="run-1", now=NOW)
    # our lock was broken as stale and another run took it
    store.delete(lock_key("SZ003"))
    theirs = acquire_lock(store, "SZ003", run_id="run-2", now=NOW)
    assert release_lock(store, mine) is False
    assert LockInfo.from_bytes(store.read_bytes(lock_key("SZ003"))).run_id == "run-2"
    assert release_lock(store, theirs) is True
    assert store.head(lock_key("SZ003")) is None
    assert release_lock(store, theirs) is False  # already gone: a warning, not an error
    if isinstance(store, LocalStore):  # no empty folders left behind in a local reports folder
        assert not (store.root / "_audit").exists()


def test_audit_lock_is_released_when_the_block_fails(store: Store) -> None:
    with pytest.raises(ZeroDivisionError), audit_lock(store, "SZ003", run_id="run-1"):
        assert store.head(lock_key("SZ003")) is not None
        1 / 0  # noqa: B018
    assert store.head(lock_key("SZ003")) is None
    with audit_lock(store, "SZ003", run_id="run-2") as lock:
        assert lock.run_id == "run-2"
    assert store.head(lock_key("SZ003")) is None


def test_exactly_one_of_many_racing_runs_gets_the_lock(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def attempt(i: int) -> str:
        try:
            return acquire_lock(store, "SZ003", run_id=f"run-{i}").run_id
        except AuditLockedError:
            return "locked"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(8)))
    winners = [r for r in results if r != "locked"]
    assert len(winners) == 1
    assert LockInfo.from_bytes(store.read_bytes(lock_key("SZ003"))).run_id == winners[0]


# --- staging and promotion ------------------------------------------------------------------------


def _stage(store: Store, prefix: str, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        store.write_bytes(f"{prefix}/{name}", data)


def test_promotion_moves_everything_into_place_and_removes_staging(store: Store) -> None:
    staging = staging_prefix("SZ003", "2026-11-28", "run-1")
    files = {"subjects.csv": b"a", "site_queries/101.csv": b"q", "run_manifest.json": b"{}"}
    _stage(store, staging, files)
    published = promote(store, staging, "SZ003/2026-11-28")
    assert published == ["SZ003/2026-11-28/run_manifest.json", "SZ003/2026-11-28/site_queries/101.csv",
                         "SZ003/2026-11-28/subjects.csv"]
    assert _keys(store, "SZ003") == published
    assert {k: store.read_bytes(k) for k in published} == {f"SZ003/2026-11-28/{n}": d for n, d in files.items()}
    assert _keys(store, "_audit") == []


def test_rerun_of_the_same_night_replaces_the_folder_exactly(store: Store) -> None:
    final = "SZ003/2026-11-28"
    _stage(store, final, {"subjects.csv": b"old", "site_queries/109.csv": b"old", "run_manifest.json": b"old"})
    staging = staging_prefix("SZ003", "2026-11-28", "run-2")
    _stage(store, staging, {"subjects.csv": b"new", "run_manifest.json": b"new"})
    promote(store, staging, final)
    assert {k: store.read_bytes(k) for k in _keys(store, final)} == {
        f"{final}/run_manifest.json": b"new", f"{final}/subjects.csv": b"new"}


class _FailingCopies:
    """A store whose copies fail after `n` successes: a network failure in the middle of promotion."""

    def __init__(self, inner: Store, n: int) -> None:
        self.inner, self.left = inner, n

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def copy(self, src: str, dst: str) -> None:
        if self.left == 0:
            raise ConnectionError("network down")
        self.left -= 1
        self.inner.copy(src, dst)


def test_interrupted_promotion_never_shows_a_complete_half_report_and_can_be_repeated(store: Store) -> None:
    final = "SZ003/2026-11-28"
    _stage(store, final, {"subjects.csv": b"old", "run_manifest.json": b"old"})
    staging = staging_prefix("SZ003", "2026-11-28", "run-2")
    _stage(store, staging, {"a.csv": b"new", "subjects.csv": b"new", "run_manifest.json": b"new"})
    with pytest.raises(ConnectionError):
        promote(_FailingCopies(store, 1), staging, final)  # type: ignore[arg-type]
    # the folder is visibly incomplete: no commit marker
    assert store.head(f"{final}/run_manifest.json") is None
    published = promote(store, staging, final)  # the task's retry
    assert {k: store.read_bytes(k) for k in published} == {
        f"{final}/a.csv": b"new", f"{final}/subjects.csv": b"new", f"{final}/run_manifest.json": b"new"}


def test_marker_is_copied_last(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    order: list[str] = []

    class Recording(_FailingCopies):
        def copy(self, src: str, dst: str) -> None:
            order.append(dst.rsplit("/", 1)[-1])
            self.inner.copy(src, dst)

    _stage(store, "s", {"run_manifest.json": b"m", "z.csv": b"z", "a.csv": b"a"})
    promote(Recording(store, 0), "s", "f")  # type: ignore[arg-type]
    assert order[-1] == "run_manifest.json" and sorted(order[:-1]) == ["a.csv", "z.csv"]


def test_nothing_staged_is_an_error_and_leaves_the_published_folder_alone(store: Store) -> None:
    _stage(store, "SZ003/2026-11-28", {"subjects.csv": b"old", "run_manifest.json": b"old"})
    with pytest.raises(PublicationError, match="nothing staged"):
        promote(store, staging_prefix("SZ003", "2026-11-28", "run-9"), "SZ003/2026-11-28")
    assert store.read_bytes("SZ003/2026-11-28/run_manifest.json") == b"old"


def test_discard_removes_a_failed_runs_staging_and_empty_local_folders(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    staging = staging_prefix("SZ003", "2026-11-28", "run-1")
    _stage(store, staging, {"site_queries/101.csv": b"q", "subjects.csv": b"s"})
    store.write_bytes("SZ003/2026-11-27/run_manifest.json", b"{}")
    assert discard(store, staging) == 2
    assert not (tmp_path / "_audit").exists()
    assert (tmp_path / "SZ003/2026-11-27/run_manifest.json").exists()


def test_sweep_removes_only_abandoned_staging(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    _stage(store, staging_prefix("SZ003", "2026-11-26", "dead"), {"subjects.csv": b"s"})
    _stage(store, staging_prefix("SZ003", "2026-11-28", "recent"), {"subjects.csv": b"s"})
    old = (datetime.now(UTC) - timedelta(hours=30)).timestamp()
    dead_file = tmp_path / staging_prefix("SZ003", "2026-11-26", "dead") / "subjects.csv"
    import os

    os.utime(dead_file, (old, old))
    swept = sweep_staging(store, "SZ003", max_age=timedelta(hours=12))
    assert swept == ["_audit/SZ003/staging/2026-11-26/dead"]
    assert _keys(store) == ["_audit/SZ003/staging/2026-11-28/recent/subjects.csv"]


def test_s3_store_type_is_exercised(store: Store) -> None:
    # guard: the parametrised fixture really covers both implementations
    assert isinstance(store, LocalStore | S3Store)


# --- the whole run inside one lock ----------------------------------------------------------------


def test_locked_publication_success_publishes_and_leaves_no_audit_state(store: Store) -> None:
    from datetime import date

    from publication import locked_publication

    with locked_publication(store, "SZ003", date(2026, 11, 28), run_id="run-1") as pub:
        assert (pub.staging, pub.final) == ("_audit/SZ003/staging/2026-11-28/run-1", "SZ003/2026-11-28")
        with pytest.raises(AuditLockedError):
            acquire_lock(store, "SZ003", run_id="run-2")
        _stage(store, pub.staging, {"subjects.csv": b"s", "run_manifest.json": b"m"})
        promote(store, pub.staging, pub.final)
    assert _keys(store) == ["SZ003/2026-11-28/run_manifest.json", "SZ003/2026-11-28/subjects.csv"]


def test_locked_publication_failure_keeps_last_nights_report_and_releases_the_lock(
    store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    from datetime import date

    from publication import locked_publication

    _stage(store, "SZ003/2026-11-28", {"subjects.csv": b"earlier run", "run_manifest.json": b"m"})
    with caplog.at_level(logging.WARNING), pytest.raises(RuntimeError, match="evaluation failed"), \
            locked_publication(store, "SZ003", date(2026, 11, 28), run_id="run-2") as pub:
        _stage(store, pub.staging, {"subjects.csv": b"half"})
        raise RuntimeError("evaluation failed")
    assert _keys(store) == ["SZ003/2026-11-28/run_manifest.json", "SZ003/2026-11-28/subjects.csv"]
    assert store.read_bytes("SZ003/2026-11-28/subjects.csv") == b"earlier run"
    assert "removed 1 staged objects; the published reports are unchanged" in caplog.text


def test_locked_publication_refuses_a_second_run_without_touching_anything(store: Store) -> None:
    from datetime import date

    from publication import locked_publication

    acquire_lock(store, "SZ003", run_id="run-1")
    _stage(store, staging_prefix("SZ003", "2026-11-28", "run-1"), {"subjects.csv": b"in progress"})
    with pytest.raises(AuditLockedError), locked_publication(store, "SZ003", date(2026, 11, 28), run_id="run-2"):
        pytest.fail("the block must not run")
    # the first run's lock and staging are intact
    assert LockInfo.from_bytes(store.read_bytes(lock_key("SZ003"))).run_id == "run-1"
    assert _keys(store, "_audit/SZ003/staging") == ["_audit/SZ003/staging/2026-11-28/run-1/subjects.csv"]


def test_current_run_id_outside_a_flow_is_random() -> None:
    from flows.nightly import current_run_id

    assert current_run_id() != current_run_id()
