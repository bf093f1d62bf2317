"""Completion markers, journaled promotion and the recovery after a crashed run, on a local folder and
on a real S3 protocol server: whatever point a promotion stops at, the night's folder is the previous
complete set or (after the next run's recovery) the new complete set, never a mix taken for a night."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from contracts.records import RunRecovery
from publication import (
    MARKER,
    AuditLockedError,
    LeaseLostError,
    PublicationError,
    StagingWriter,
    acquire_lease,
    check_complete,
    final_prefix,
    is_complete,
    is_published,
    journal_key,
    lease_key,
    nightly_publication,
    promote,
    read_marker,
    recover,
    staging_prefix,
    sweep_staging,
)
from publication.liveness import ProcessIdentity
from storage import LocalStore, Store

AS_OF = date(2026, 11, 28)
FINAL = "SZ003/2026-11-28"
OLD = {"subjects.csv": b"old subjects\n", "site_queries/109.csv": b"old query\n", "report.html": b"<old>"}
NEW = {"subjects.csv": b"new subjects, longer\n", "site_queries/101.csv": b"new query\n", "report.html": b"<new>",
       "data_docs/index.html": b"<docs>"}


def _keys(store: Store, prefix: str = "") -> list[str]:
    return [obj.key for obj in store.list(prefix)]


def _folder(store: Store, prefix: str) -> dict[str, bytes]:
    start = prefix + "/"
    return {key[len(start):]: store.read_bytes(key) for key in _keys(store, prefix) if not key.endswith(MARKER)}


def _stage(store: Store, run_id: str, files: dict[str, bytes]) -> str:
    staging = staging_prefix("SZ003", AS_OF, run_id)
    writer = StagingWriter(store, staging)
    for name, data in files.items():
        writer.write_bytes(f"{staging}/{name}", data)
    writer.seal(study="SZ003", as_of=AS_OF.isoformat(), run_id=run_id)
    return staging


def _publish(store: Store, run_id: str, files: dict[str, bytes]) -> None:
    promote(store, _stage(store, run_id, files), FINAL, study="SZ003")


# --- layout and markers ---------------------------------------------------------------------------


def test_layout_keeps_audit_state_apart_from_published_reports() -> None:
    assert final_prefix("SZ003", "2026-11-28") == "SZ003/2026-11-28"
    assert staging_prefix("SZ003", "2026-11-28", "run-1") == "_audit/SZ003/staging/2026-11-28/run-1"
    assert lease_key("SZ003") == "_audit/SZ003/lease.json"
    assert journal_key("SZ003") == "_audit/SZ003/promotion.json"


def test_the_marker_lists_every_object_with_its_sha256_and_size(store: Store) -> None:
    staging = _stage(store, "run-1", {"b.csv": b"bb", "a/x.html": b"x"})
    body = json.loads(store.read_bytes(f"{staging}/{MARKER}"))
    assert (body["study"], body["as_of"], body["run_id"]) == ("SZ003", "2026-11-28", "run-1")
    assert body["objects"] == [
        {"key": "a/x.html", "sha256": hashlib.sha256(b"x").hexdigest(), "size": 1},
        {"key": "b.csv", "sha256": hashlib.sha256(b"bb").hexdigest(), "size": 2}]
    assert is_complete(store, staging)


def test_sealing_a_staging_without_outputs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing was written"):
        StagingWriter(LocalStore(tmp_path), "s").seal(study="SZ003", as_of="2026-11-28", run_id="r")


def test_a_folder_is_complete_exactly_when_it_matches_its_marker(store: Store) -> None:
    _publish(store, "run-1", NEW)
    assert check_complete(store, FINAL) == [] and check_complete(store, FINAL, deep=True) == []
    store.write_bytes(f"{FINAL}/extra.csv", b"?")
    assert check_complete(store, FINAL) == [f"extra.csv: not listed in {MARKER}"]
    store.delete(f"{FINAL}/extra.csv")
    store.write_bytes(f"{FINAL}/report.html", b"<ne")  # half a file
    assert check_complete(store, FINAL) == [f"report.html: 3 bytes, {MARKER} says 5"]
    store.write_bytes(f"{FINAL}/report.html", b"<bad>")  # same size, other content
    assert check_complete(store, FINAL) == []
    assert check_complete(store, FINAL, deep=True) == [f"report.html: content differs from its sha256 in {MARKER}"]
    store.delete(f"{FINAL}/report.html")
    assert check_complete(store, FINAL) == ["report.html: missing"]
    store.delete(f"{FINAL}/{MARKER}")
    assert check_complete(store, FINAL) == [f"no valid {MARKER}"]
    store.write_bytes(f"{FINAL}/{MARKER}", b"{not json")
    assert not is_complete(store, FINAL)


def test_a_published_night_stays_published_when_a_file_is_added_to_its_folder(store: Store, caplog) -> None:
    """Excel writes `~$report.xlsx` beside report.xlsx opened in place: a user trial saw it silently unpublish the
    night (the next run restarted every finding as NEW, `review list` said there was no run). Readers of nights
    ignore what the marker does not list, name it once in the log, and still refuse a night missing a listed file
    or holding one at another size."""
    from publication import published_nights

    _publish(store, "run-1", NEW)
    store.write_bytes(f"{FINAL}/~$report.xlsx", b"lock")
    with caplog.at_level(logging.WARNING, logger="publication.marker"):
        assert is_published(store, FINAL) and list(published_nights(store, "SZ003")) == [AS_OF]
        assert is_published(store, FINAL)
    named = [r.getMessage() for r in caplog.records if r.name == "publication.marker"]
    assert len(named) == 1 and "added after it was published (ignored): ~$report.xlsx" in named[0]
    assert not is_complete(store, FINAL)  # a staging folder must still hold exactly what it lists
    store.write_bytes(f"{FINAL}/report.html", b"<ne")
    assert not is_published(store, FINAL) and list(published_nights(store, "SZ003")) == []
    store.delete(f"{FINAL}/report.html")
    assert not is_published(store, FINAL)
    store.delete(f"{FINAL}/{MARKER}")
    assert not is_published(store, FINAL)


# --- promotion ------------------------------------------------------------------------------------


def test_promotion_publishes_the_sealed_set_and_leaves_no_audit_state(store: Store) -> None:
    published = promote(store, _stage(store, "run-1", NEW), FINAL, study="SZ003")
    assert published == sorted(f"{FINAL}/{name}" for name in [*NEW, MARKER])
    assert _folder(store, FINAL) == NEW
    assert check_complete(store, FINAL, deep=True) == []
    assert read_marker(store, FINAL).run_id == "run-1"
    assert _keys(store, "_audit") == []


def test_a_rerun_of_the_same_night_replaces_the_folder_exactly(store: Store) -> None:
    _publish(store, "run-1", OLD)
    _publish(store, "run-2", NEW)
    assert _folder(store, FINAL) == NEW  # site_queries/109.csv of the earlier run is gone
    assert read_marker(store, FINAL).run_id == "run-2"


def test_what_a_killed_promotion_was_still_copying_does_not_outlive_the_next_one(tmp_path: Path) -> None:
    """helper-44: a kill during promotion left `.3kfbbh4o.tmp`, a whole copy of report.xlsx, hidden in the published
    folder of a local reports store, where no re-run removed or named it (a sync job would copy it)."""
    store = LocalStore(tmp_path)
    _publish(store, "run-1", OLD)
    abandoned = tmp_path / FINAL / ".3kfbbh4o.tmp"
    abandoned.write_bytes(b"half a workbook")
    (tmp_path / FINAL / "site_queries" / ".93ulwob1.tmp").write_bytes(b"")
    _publish(store, "run-2", NEW)
    assert sorted(p.name for p in (tmp_path / FINAL).rglob("*.tmp")) == []
    assert _folder(store, FINAL) == NEW and read_marker(store, FINAL).run_id == "run-2"


def test_only_a_sealed_and_complete_staging_is_promoted(store: Store) -> None:
    _publish(store, "run-1", OLD)
    staging = staging_prefix("SZ003", AS_OF, "run-2")
    store.write_bytes(f"{staging}/subjects.csv", b"unsealed")
    with pytest.raises(PublicationError, match="nothing sealed"):
        promote(store, staging, FINAL, study="SZ003")
    staging = _stage(store, "run-3", NEW)
    store.delete(f"{staging}/report.html")
    with pytest.raises(PublicationError, match=r"report\.html: missing"):
        promote(store, staging, FINAL, study="SZ003")
    assert _folder(store, FINAL) == OLD and is_complete(store, FINAL)


def test_a_repeated_promotion_after_success_is_harmless(store: Store) -> None:
    staging = _stage(store, "run-1", NEW)
    first = promote(store, staging, FINAL, study="SZ003")
    assert promote(store, staging, FINAL, study="SZ003") == first
    assert _folder(store, FINAL) == NEW


def test_the_marker_is_written_last(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    order: list[str] = []

    class Recording(LocalStore):
        def copy(self, src: str, dst: str) -> None:
            order.append(dst.rsplit("/", 1)[-1])
            super().copy(src, dst)

    recording = Recording(tmp_path)
    promote(recording, _stage(store, "run-1", NEW), FINAL, study="SZ003")
    assert order[-1] == MARKER and sorted(order[:-1]) == sorted(n.rsplit("/", 1)[-1] for n in NEW)


class Crash(Exception):
    """The process died here (SIGKILL): nothing after this line of the promotion runs."""


class _DiesAfter:
    """A store whose process dies after `n` changes (writes, copies, deletes; promotion makes several at
    once: the count is kept under a lock, and once dead nothing more is changed)."""

    def __init__(self, inner: Store, n: int) -> None:
        self.inner, self.uri, self.left = inner, inner.uri, n
        self._mutex = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def _change(self) -> None:
        with self._mutex:
            if self.left == 0:
                raise Crash
            self.left -= 1

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._change()
        self.inner.write_bytes(key, data, content_type)

    def copy(self, src: str, dst: str) -> None:
        self._change()
        self.inner.copy(src, dst)

    def delete(self, key: str) -> None:
        self._change()
        self.inner.delete(key)


def _changes_of_one_promotion() -> int:
    """How many storage changes a rerun's promotion of NEW over OLD makes (journal ... staging removed)."""
    return 1 + 1 + len(NEW) + 1 + 1 + 1 + (len(NEW) + 1)  # journal, marker, copies, leftover, marker, journal, staging


@pytest.mark.parametrize("point", range(_changes_of_one_promotion() + 1))
def test_a_crash_at_any_point_of_promotion_leaves_the_old_or_the_new_complete_set(store: Store, point: int) -> None:
    _publish(store, "run-1", OLD)
    staging = _stage(store, "run-2", NEW)
    try:
        promote(_DiesAfter(store, point), staging, FINAL, study="SZ003")  # type: ignore[arg-type]
        crashed = False
    except Crash:
        crashed = True
    assert crashed == (point < _changes_of_one_promotion())
    # right after the crash: never a complete-looking mix, for the strict check nor for the readers of nights (who
    # ignore objects the marker does not list: added to a published folder after publication)
    if is_complete(store, FINAL) or is_published(store, FINAL):
        assert _folder(store, FINAL) in (OLD, NEW)
        assert check_complete(store, FINAL, deep=True) == []
    # the next run's recovery: the night is the old set (crash before the journal) or the new one
    recovery = recover(store, "SZ003")
    assert is_complete(store, FINAL) and check_complete(store, FINAL, deep=True) == []
    assert _folder(store, FINAL) == (OLD if point == 0 else NEW)
    assert _keys(store, "_audit") == []
    if point == 0:
        assert [r.run_id for r in recovery.staging_removed] == ["run-2"] and recovery.staging_removed[0].sealed
    elif point <= _changes_of_one_promotion() - (len(NEW) + 2):  # the journal was still there
        assert recovery.promotion_completed == f"{FINAL} from run run-2"


def test_a_run_that_lost_its_lease_stops_promoting_and_the_next_run_finishes_the_journaled_promotion(
    store: Store,
) -> None:
    _publish(store, "run-1", OLD)
    staging = _stage(store, "run-2", NEW)
    calls = {"n": 0}

    def lease_lost_after_three_checks() -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            raise LeaseLostError("taken over")

    with pytest.raises(LeaseLostError):
        promote(store, staging, FINAL, study="SZ003", guard=lease_lost_after_three_checks)
    assert not is_complete(store, FINAL)
    assert recover(store, "SZ003").promotion_completed == f"{FINAL} from run run-2"
    assert _folder(store, FINAL) == NEW


def test_a_journal_whose_staging_is_gone_is_reported_and_removed(store: Store, caplog) -> None:
    _publish(store, "run-1", OLD)
    staging = _stage(store, "run-2", NEW)
    with pytest.raises(Crash):
        promote(_DiesAfter(store, 3), staging, FINAL, study="SZ003")  # type: ignore[arg-type]
    for key in _keys(store, staging):  # an operator removed the staging by hand
        store.delete(key)
    with caplog.at_level(logging.ERROR):
        recovery = recover(store, "SZ003")
    assert recovery.promotion_abandoned == f"{FINAL} from run run-2"
    assert "stays unpublished until a run of that night publishes it" in caplog.text
    assert not is_complete(store, FINAL)  # not published, and never taken for a night
    assert store.head(journal_key("SZ003")) is None


# --- recovery -------------------------------------------------------------------------------------


def test_sweep_removes_every_staging_but_the_one_kept_and_lists_them(store: Store) -> None:
    _stage(store, "sealed-run", {"a.csv": b"a"})
    store.write_bytes(staging_prefix("SZ003", "2026-11-27", "killed-run") + "/subjects.csv", b"half")
    keep = _stage(store, "live-run", {"b.csv": b"b"})
    removed = sweep_staging(store, "SZ003", keep=keep)
    assert [(r.as_of, r.run_id, r.objects, r.sealed) for r in removed] == [
        ("2026-11-27", "killed-run", 1, False), ("2026-11-28", "sealed-run", 2, True)]
    assert _keys(store, "_audit") == [f"{keep}/{MARKER}", f"{keep}/b.csv"]


def test_sweep_removes_what_a_run_killed_while_rendering_left_in_its_scratch_folder(tmp_path: Path) -> None:
    """A run killed while polars wrote its tables leaves a scratch folder in its staging (a folder store's,
    never listed), with or without staged objects beside it: the next run's sweep removes it all."""
    store = LocalStore(tmp_path / "reports")
    staged = staging_prefix("SZ003", AS_OF, "killed-after-staging")
    store.write_bytes(f"{staged}/report.html", b"<html>")
    bare = staging_prefix("SZ003", AS_OF, "killed-before-staging")
    for prefix in (staged, bare):
        with store.scratch_folder(prefix) as folder:
            (folder / "eligibility.csv").write_bytes(b"half a table")
            kept = folder.with_name(folder.name.replace("scratch-", "scratch-killed-"))
            folder.rename(kept)  # as a killed run leaves it: its `finally` never ran
    removed = sweep_staging(store, "SZ003")
    assert sorted((r.run_id, r.objects) for r in removed) == [("killed-after-staging", 1), ("killed-before-staging", 0)]
    assert not (store.root / "_audit").exists()  # nothing left, hidden or not


def test_promotion_and_recovery_never_touch_the_review_ledger_or_the_pending_digests(store: Store) -> None:
    """The study's own state beside the nights (issue 12's ledger under <STUDY>/_review/, issue 18's missed
    digests under _audit/<STUDY>/digest/pending/) is neither part of a night nor staging: a crash in the
    middle of a promotion, the next run's recovery and its sweep leave it exactly as it was."""
    kept = {"SZ003/_review/ledger/0000000001.json": b'{"entries": []}',
            "SZ003/_review/inbox/returned.xlsx": b"workbook",
            "_audit/SZ003/digest/pending/2026-11-27.json": b'{"channels": ["email"]}'}
    for key, data in kept.items():
        store.write_bytes(key, data)
    _publish(store, "run-1", OLD)
    with pytest.raises(Crash):  # killed half way through the copies of a rerun's promotion
        promote(_DiesAfter(store, 4), _stage(store, "run-2", NEW), FINAL, study="SZ003")  # type: ignore[arg-type]
    store.write_bytes(staging_prefix("SZ003", "2026-11-27", "killed-run") + "/subjects.csv", b"half")
    recovery = recover(store, "SZ003")
    assert recovery.promotion_completed and [r.run_id for r in recovery.staging_removed] == ["killed-run"]
    assert _folder(store, FINAL) == NEW
    assert {key: store.read_bytes(key) for key in kept} == kept
    assert sorted(_keys(store, "_audit")) == ["_audit/SZ003/digest/pending/2026-11-27.json"]


def test_recovery_with_nothing_to_recover_is_empty(store: Store) -> None:
    assert recover(store, "SZ003") == RunRecovery()
    assert RunRecovery().is_empty()


# --- a whole run's publication ----------------------------------------------------------------------


def test_nightly_publication_success_publishes_and_releases_the_lease(store: Store) -> None:
    with nightly_publication(store, "SZ003", AS_OF, run_id="run-1") as pub:
        assert (pub.staging, pub.final) == ("_audit/SZ003/staging/2026-11-28/run-1", FINAL)
        with pytest.raises(AuditLockedError):
            acquire_lease(store, "SZ003", run_id="run-2")
        writer = pub.writer()
        for name, data in NEW.items():
            writer.write_bytes(f"{pub.staging}/{name}", data)
        writer.seal(study="SZ003", as_of=AS_OF.isoformat(), run_id=pub.run_id)
        pub.promote()
    assert _folder(store, FINAL) == NEW and is_complete(store, FINAL)
    assert sorted(_keys(store, "_audit")) == ["_audit/SZ003/conditional-writes-probe", "_audit/SZ003/lease.json"]
    assert json.loads(store.read_bytes(lease_key("SZ003")))["state"] == "released"


def test_nightly_publication_failure_keeps_last_nights_report_and_releases_the_lease(
    store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    _publish(store, "run-1", OLD)
    with caplog.at_level(logging.WARNING), pytest.raises(RuntimeError, match="evaluation failed"), \
            nightly_publication(store, "SZ003", AS_OF, run_id="run-2") as pub:
        pub.writer().write_bytes(f"{pub.staging}/subjects.csv", b"half")
        raise RuntimeError("evaluation failed")
    assert _folder(store, FINAL) == OLD and is_complete(store, FINAL)
    assert "removed 1 staged objects; the published reports are unchanged" in caplog.text
    assert _keys(store, "_audit/SZ003/staging") == []
    assert acquire_lease(store, "SZ003", run_id="run-3").took_over is None


def test_nightly_publication_refuses_a_second_run_without_touching_anything(store: Store) -> None:
    acquire_lease(store, "SZ003", run_id="run-1")
    staging = staging_prefix("SZ003", AS_OF, "run-1")
    store.write_bytes(f"{staging}/subjects.csv", b"in progress")
    with pytest.raises(AuditLockedError), nightly_publication(store, "SZ003", AS_OF, run_id="run-2"):
        pytest.fail("the block must not run")
    assert json.loads(store.read_bytes(lease_key("SZ003")))["run_id"] == "run-1"
    assert _keys(store, "_audit/SZ003/staging") == [f"{staging}/subjects.csv"]


def test_the_run_after_a_killed_one_takes_over_finishes_and_cleans_up(store: Store) -> None:
    _publish(store, "run-0", OLD)
    dead = ProcessIdentity("a-host-that-is-gone", 99, None, None)
    acquire_lease(store, "SZ003", run_id="killed-run", clock=lambda: datetime(2026, 11, 27, tzinfo=UTC), me=dead)
    staging = _stage(store, "killed-run", NEW)
    with pytest.raises(Crash):
        promote(_DiesAfter(store, 4), staging, FINAL, study="SZ003")  # type: ignore[arg-type]
    store.write_bytes(staging_prefix("SZ003", "2026-11-29", "other-killed-run") + "/a.csv", b"a")
    with nightly_publication(store, "SZ003", AS_OF, run_id="rerun") as pub:
        assert _folder(store, FINAL) == NEW and is_complete(store, FINAL)  # before the rerun does anything
        recovery = pub.recovery
    assert "it expired: run killed-run on host a-host-that-is-gone" in recovery.lease_taken_over
    assert recovery.promotion_completed == f"{FINAL} from run killed-run"
    assert [r.run_id for r in recovery.staging_removed] == ["other-killed-run"]
    assert recovery.as_manifest()["staging_removed"][0]["prefix"] == \
        "_audit/SZ003/staging/2026-11-29/other-killed-run"
