"""The nightly flow's operational guarantees, on the real flow: a held lease stops a run before it reads
anything, and a failed night leaves the published reports exactly as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.nightly import NothingToAuditError, ingest_batches, nightly_audit
from publication import AuditLockedError, acquire_lease, lease_key, read_lease
from publication.liveness import ProcessIdentity
from storage import LocalStore
from tests.support.published import seal

AS_OF = "2026-11-28"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_second_run_stops_at_once_while_another_holds_the_lease(prefect_harness: None, tmp_path: Path) -> None:
    reports = LocalStore(tmp_path / "reports")
    acquire_lease(reports, "SZ003", run_id="night-run", me=ProcessIdentity("worker-a", 4242))
    # a landing area that does not even exist: the run must stop before looking at it
    with pytest.raises(AuditLockedError, match="another audit of SZ003 is running: run night-run on host worker-a"):
        nightly_audit(landing=str(tmp_path / "no-landing"), reports=str(tmp_path / "reports"), as_of=AS_OF)
    assert read_lease(reports, "SZ003")[0].run_id == "night-run"
    assert sorted(_files(tmp_path / "reports")) == ["_audit/SZ003/conditional-writes-probe", "_audit/SZ003/lease.json"]


def test_a_failed_night_keeps_the_published_reports_and_releases_the_lease(
    prefect_harness: None, tmp_path: Path,
) -> None:
    reports = tmp_path / "reports"
    for key, data in {"subjects.csv": b"from the first run\n", "run_manifest.json": b"{}"}.items():
        LocalStore(reports).write_bytes(f"SZ003/{AS_OF}/{key}", data)
    seal(LocalStore(reports), f"SZ003/{AS_OF}")
    published = _files(reports)
    (tmp_path / "landing" / "SZ003").mkdir(parents=True)  # no site delivered anything
    with pytest.raises(NothingToAuditError, match="nothing to audit for SZ003"):
        nightly_audit(landing=str(tmp_path / "landing"), reports=str(reports), as_of=AS_OF,
                      expected_sites=["101"])
    assert {k: v for k, v in _files(reports).items() if not k.startswith("_audit/")} == published
    assert sorted(k for k in _files(reports) if k.startswith("_audit/")) == [
        "_audit/SZ003/conditional-writes-probe", "_audit/SZ003/lease.json"]  # no staging left
    assert read_lease(LocalStore(reports), "SZ003")[0].state == "released"
    assert lease_key("SZ003") == "_audit/SZ003/lease.json"


def test_an_expected_site_without_a_folder_is_named_in_the_failure(prefect_harness: None, tmp_path: Path) -> None:
    (tmp_path / "landing" / "SZ003").mkdir(parents=True)
    with pytest.raises(NothingToAuditError, match="101: expected site has no delivery folder"):
        nightly_audit(landing=str(tmp_path / "landing"), reports=str(tmp_path / "reports"), as_of=AS_OF,
                      expected_sites=["101"])


@pytest.mark.parametrize(("n", "tasks", "sizes"), [
    (1000, 4, [250, 250, 250, 250]), (10, 4, [3, 3, 2, 2]), (2, 4, [1, 1]), (0, 4, []), (5, 1, [5]),
])
def test_sites_are_ingested_in_a_fixed_number_of_consecutive_batches(n: int, tasks: int, sizes: list[int]) -> None:
    sites = [str(101 + i) for i in range(n)]
    batches = ingest_batches(sites, tasks)
    assert [len(batch) for batch in batches] == sizes
    assert [site for batch in batches for site in batch] == sites  # every site once, in order


def test_per_site_results_are_released_once_combined(prefect_harness: None, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import gc
    import weakref
    from datetime import date

    from prefect import task

    import flows.nightly
    from generator import generate

    generate(LocalStore(tmp_path / "landing"), study="SZ003", sites=3, subjects=12, seed=3,
             as_of=date.fromisoformat(AS_OF), formats="csv", plant_problems=False)
    sites: list[weakref.ref] = []
    frames: list[weakref.ref] = []
    alive_at_history: list[int] = []
    alive_at_publish: list[int] = []
    ingest, history, publish = flows.nightly.ingest_sites_task, flows.nightly.apply_history_task, \
        flows.nightly.publish_task

    @task(name="ingest-sites")
    def recording_ingest(*args: object, **kwargs: object) -> object:
        results = ingest.fn(*args, **kwargs)
        sites.extend(weakref.ref(r) for r in results)
        frames.extend(weakref.ref(frame) for r in results for frame in r.frames.values())
        return results

    @task(name="apply-history")
    def counting_history(*args: object, **kwargs: object) -> object:
        gc.collect()
        alive_at_history.append(sum(ref() is not None for ref in sites))
        return history.fn(*args, **kwargs)

    @task(name="publish")
    def counting_publish(*args: object, **kwargs: object) -> object:
        gc.collect()
        alive_at_publish.append(sum(ref() is not None for ref in frames))
        return publish.fn(*args, **kwargs)

    monkeypatch.setattr(flows.nightly, "ingest_sites_task", recording_ingest)
    monkeypatch.setattr(flows.nightly, "apply_history_task", counting_history)
    monkeypatch.setattr(flows.nightly, "publish_task", counting_publish)
    summary = nightly_audit(landing=str(tmp_path / "landing"), reports=str(tmp_path / "reports"), as_of=AS_OF)
    assert summary.sites_audited == 3 and len(sites) == 3
    assert alive_at_history == [0]  # no per-site record held once the partition returned
    assert len(frames) >= 30 and alive_at_publish == [0]  # nor any delivered rows during publication


def test_a_delivery_made_after_the_as_of_date_in_the_study_time_zone_is_not_audited(
    prefect_harness: None, tmp_path: Path,
) -> None:
    """20:00 UTC on 27 November is already 28 November in Shanghai: not part of the night of the 27th."""
    from test_ingestion_support import deliver, sample

    deliver(LocalStore(tmp_path / "landing"), "101", "20261127T200000Z", {"dm": sample("dm", n=2)})
    with pytest.raises(NothingToAuditError, match="101: no delivery made by the audit's as-of date"):
        nightly_audit(landing=str(tmp_path / "landing"), reports=str(tmp_path / "reports"), as_of="2026-11-27",
                      timezone="Asia/Shanghai")


def test_local_landings_are_ingested_one_batch_at_a_time_s3_and_dask_concurrently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.nightly import _ingest_one_batch_at_a_time

    monkeypatch.setattr(FlowRunContext, "get", classmethod(lambda cls: SimpleNamespace(
        task_runner=ThreadPoolTaskRunner())))
    assert _ingest_one_batch_at_a_time("/data/landing") is True
    assert _ingest_one_batch_at_a_time("s3://landing/prefix") is False
    monkeypatch.setattr(FlowRunContext, "get", classmethod(lambda cls: SimpleNamespace(task_runner=object())))
    assert _ingest_one_batch_at_a_time("/data/landing") is False  # e.g. Dask: one process per batch


def test_the_data_docs_are_built_in_a_task_of_their_own_between_validation_and_history(
    prefect_harness: None, tmp_path: Path,
) -> None:
    """The second or so of Great Expectations rendering shows in the run's records (it was in none)."""
    from datetime import date

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from generator import generate

    generate(LocalStore(tmp_path / "landing"), study="SZ003", sites=2, subjects=6, seed=3,
             as_of=date.fromisoformat(AS_OF), formats="csv", plant_problems=False)
    state = nightly_audit(landing=str(tmp_path / "landing"), reports=str(tmp_path / "reports"), as_of=AS_OF,
                          return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    spans = {run.name: (run.start_time, run.end_time) for run in runs}
    assert spans["finish-validation"][1] <= spans["build-data-docs"][0]
    assert spans["build-data-docs"][1] <= spans["apply-history"][0]
    assert (tmp_path / "reports" / "SZ003" / AS_OF / "data_docs" / "index.html").is_file()
