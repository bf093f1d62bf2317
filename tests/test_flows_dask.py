"""The same audit on a 2-worker Dask cluster: byte-identical tables; run-all spreads studies over one cluster.

Landing and reports are on a real S3 protocol server (moto over HTTP), so worker processes open their
own S3 clients exactly as they would on a cluster.

And a cluster that cannot run the night: a real `dask scheduler` with no worker, and an address nothing
listens on, each given to the installed `screening-audit` command: it fails with exit status 1 and one
line saying what to do, before the study's lease is taken (nothing is written to the reports location).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from flows.cluster_checks import WORKER_WAIT_ENV, DaskClusterError
from flows.runners import RunnerChoice, RunnerKind
from publication import is_complete, read_lease
from storage import LocalStore, open_store
from tests.support.dask_processes import Processes, not_imported_on_workers, scheduler_address, unused_port
from tests.support.protocols import write_protocol

AS_OF = "2026-11-28"
#: every table the run publishes; reports (html, xlsx) and run_manifest.json carry a timestamp
TABLE_SUFFIXES = (".csv", ".parquet", ".xpt")
CLI = str(Path(sys.executable).with_name("screening-audit"))
DASK = str(Path(sys.executable).with_name("dask"))
#: how long the command waits for a worker in these tests (the default is 60 s)
WORKER_WAIT = "3"

pytestmark = pytest.mark.slow


def _generate(uri: str, endpoint: str, study: str = "SZ003") -> None:
    from generator import generate

    generate(open_store(uri, endpoint), study=study, sites=3, subjects=36, seed=5, as_of=date.fromisoformat(AS_OF))


def _tables(uri: str, endpoint: str, prefix: str) -> dict[str, bytes]:
    store = open_store(uri, endpoint)
    return {obj.key[len(prefix) + 1:]: store.read_bytes(obj.key) for obj in store.list(prefix)
            if obj.key.endswith(TABLE_SUFFIXES)}


def test_dask_runner_publishes_byte_identical_tables(prefect_harness: None, s3_endpoint: str, s3_bucket: str) -> None:
    from flows.nightly import nightly_audit

    landing = f"s3://{s3_bucket}/landing"
    _generate(landing, s3_endpoint)
    results = {}
    for choice in (RunnerChoice(), RunnerChoice(RunnerKind.DASK, dask_workers=2)):
        reports = f"s3://{s3_bucket}/reports-{choice.kind.value}"
        summary = nightly_audit.with_options(task_runner=choice.task_runner())(
            landing=landing, reports=reports, study="SZ003", as_of=AS_OF, endpoint_url=s3_endpoint)
        results[choice.kind] = (summary, _tables(reports, s3_endpoint, f"SZ003/{AS_OF}"))

    (thread_summary, thread_tables), (dask_summary, dask_tables) = results[RunnerKind.THREAD], results[RunnerKind.DASK]
    assert {"subjects.csv", "subjects.parquet", "eligibility.parquet", "discrepancies.csv", "dv.xpt"} <= set(
        thread_tables)
    assert sorted(dask_tables) == sorted(thread_tables)
    different = [name for name in thread_tables if thread_tables[name] != dask_tables[name]]
    assert different == []
    # 36 generated; planted problems (e.g. a subject without DM) may drop some, identically for both
    assert thread_summary.subjects == dask_summary.subjects >= 30
    assert (thread_summary.important, thread_summary.queries) == (dask_summary.important, dask_summary.queries)


def test_run_all_audits_several_studies_on_one_dask_cluster(
    prefect_harness: None, s3_endpoint: str, s3_bucket: str, tmp_path: Path,
) -> None:
    from flows.multi import StudyStatus, run_all_audits

    config_dir = tmp_path / "studies"
    config_dir.mkdir()
    for study in ("SZ003", "SZ903"):
        landing = f"s3://{s3_bucket}/{study.lower()}-landing"
        _generate(landing, s3_endpoint, study=study)
        # a study is audited against its own protocol: SZ903's is SZ003's criteria under its id
        protocol = "" if study == "SZ003" else f"protocol: {write_protocol(tmp_path / 'protocols', study)}\n"
        (config_dir / f"{study.lower()}.yaml").write_text(
            f"study: {study}\nlanding: {landing}\nreports: s3://{s3_bucket}/reports\n"
            f"endpoint_url: {s3_endpoint}\nexpected_sites: ['101', '102', '103', '104']\n{protocol}")
    summary = run_all_audits(config_dir=str(config_dir), as_of=AS_OF, runner="dask", dask_workers=2)
    assert [(o.study, o.status) for o in summary.outcomes] == [
        ("SZ003", StudyStatus.COMPLETED), ("SZ903", StudyStatus.COMPLETED)]
    # each study was audited as a unit by a worker process of the cluster, not by this (the parent's) process
    pids = {int(o.audited_by.rsplit(":", 1)[1]) for o in summary.outcomes}
    assert pids and os.getpid() not in pids
    # site 104 is expected but never delivered: reported, not silently ignored
    assert [o.summary["sites_not_audited"] for o in summary.outcomes] == [
        {"104": "expected site has no delivery folder in the landing area"}] * 2
    reports = open_store(f"s3://{s3_bucket}/reports", s3_endpoint)
    for study in ("SZ003", "SZ903"):
        assert is_complete(reports, f"{study}/{AS_OF}")
        assert reports.head(f"{study}/{AS_OF}/subjects.parquet") is not None
        assert read_lease(reports, study)[0].state == "released"  # each study's own lease, released
    # nothing else of the runs' machinery is left: no staging, no promotion journal
    assert sorted(obj.key for obj in reports.list("_audit")) == [
        f"_audit/{study}/{name}" for study in ("SZ003", "SZ903") for name in ("conditional-writes-probe", "lease.json")]


@dataclass(frozen=True)
class _Held:
    """A task result as a worker holds it: rows that should stay there, and a small field."""

    rows: bytes
    index: int


def _held(size: int) -> _Held:
    if size < 0:
        raise ValueError("no such batch")
    return _Held(rows=bytes(size), index=size)


def test_a_field_of_a_result_is_fetched_from_its_worker_without_a_task_run(prefect_harness: None) -> None:
    """How the flow learns each batch's index (flows.nightly): only the field crosses, and no task run is made."""
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.context import get_run_context

    from flows.runners import fetch_from_workers

    held = task(name="held")(_held)

    @flow(task_runner=RunnerChoice(RunnerKind.DASK, dask_workers=1).task_runner())
    def fetch(sizes: list[int]) -> tuple[str, list[int], list[bool]]:
        import dask

        profiling = get_run_context().task_runner.client.run(
            lambda: dask.config.get("distributed.worker.profile.enabled"))
        return (str(get_run_context().flow_run.id), fetch_from_workers([held.submit(n) for n in sizes], "index"),
                list(profiling.values()))

    run_id, fields, profiling = fetch([3, 5_000_000])
    assert fields == [3, 5_000_000]
    assert profiling == [False]  # the local cluster's workers sample no stacks for a dashboard that is off
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    assert sorted(r.name.split("-")[0] for r in runs) == ["held", "held"]

    failing = flow(task_runner=RunnerChoice(RunnerKind.DASK, dask_workers=1).task_runner())(
        lambda: fetch_from_workers([held.submit(-1)], "index"))
    with pytest.raises(ValueError, match="no such batch"):
        failing()
    with pytest.raises(RuntimeError, match="Dask task runner"):
        fetch_from_workers([], "index")


#: a worker environment in which boto3 finds no credentials at all (empty keys are "not set" to botocore)
NO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
                  "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
                  "AWS_EC2_METADATA_DISABLED": "true"}


def test_workers_without_credentials_fail_the_night_and_keep_the_last_one(
    prefect_harness: None, s3_endpoint: str, s3_bucket: str,
) -> None:
    """Sites unreadable for want of credentials are not "not audited": that night would replace a good one."""
    from prefect_dask import DaskTaskRunner

    from flows.nightly import nightly_audit
    from flows.retries import CredentialsError
    from flows.runners import local_cluster

    landing, reports = f"s3://{s3_bucket}/landing", f"s3://{s3_bucket}/reports"
    _generate(landing, s3_endpoint)
    good = nightly_audit(landing=landing, reports=reports, study="SZ003", as_of=AS_OF, endpoint_url=s3_endpoint)
    before = _tables(reports, s3_endpoint, f"SZ003/{AS_OF}")
    assert good.sites_audited == 3 and before

    runner = DaskTaskRunner(cluster_class=local_cluster, cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 1, "env": NO_CREDENTIALS})
    with pytest.raises(CredentialsError) as raised:
        nightly_audit.with_options(task_runner=runner)(
            landing=landing, reports=reports, study="SZ003", as_of=AS_OF, endpoint_url=s3_endpoint)
    message = str(raised.value)
    assert "study SZ003, site 10" in message and "no credentials" in message and "every worker" in message
    assert f"(pid {os.getpid()})" not in message  # names the worker's process, not the flow's

    store = open_store(reports, s3_endpoint)
    assert is_complete(store, f"SZ003/{AS_OF}")
    assert _tables(reports, s3_endpoint, f"SZ003/{AS_OF}") == before  # the good night is still the published one
    assert read_lease(store, "SZ003")[0].state == "released"


@pytest.fixture(scope="module")
def idle_scheduler(tmp_path_factory: pytest.TempPathFactory):
    """A real `dask scheduler` that no worker joined (an operator who forgot `dask worker`); its address."""
    folder = tmp_path_factory.mktemp("idle-scheduler")
    processes = Processes()
    try:
        scheduler = processes.start("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                                  "--no-dashboard", "--scheduler-file", str(folder / "scheduler.json")],
                                    folder, cwd=folder)
        yield scheduler_address(processes, scheduler, folder / "scheduler.json")
    finally:
        processes.stop()


@pytest.fixture(scope="module")
def local_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from generator import generate

    root = tmp_path_factory.mktemp("landing")
    generate(LocalStore(root), study="SZ003", sites=2, subjects=12, seed=4, as_of=date.fromisoformat(AS_OF),
             formats="csv", plant_problems=False)
    return root


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "AWS_ENDPOINT_URL")}
    variables.update(PREFECT_HOME=str(tmp_path_factory.mktemp("prefect-home")),
                     PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="400", **{WORKER_WAIT_ENV: WORKER_WAIT})
    return variables


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=600, check=False)


def _failure_line(result: subprocess.CompletedProcess) -> str:
    """The one line the command ends with for the operator."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("audit failed, nothing published:")]
    assert len(lines) == 1, (result.stdout[-3000:], result.stderr[-3000:])
    return lines[0]


def test_a_scheduler_without_workers_fails_the_night_before_its_lease(
    idle_scheduler: str, local_landing: Path, cli_env: dict[str, str], tmp_path: Path,
) -> None:
    reports = tmp_path / "reports"
    result = _cli("run", "--landing", str(local_landing), "--reports", str(reports), "--study", "SZ003", "--as-of",
                  AS_OF, "--runner", "dask", "--dask-address", idle_scheduler, env=cli_env)
    assert result.returncode == 1, (result.stdout[-3000:], result.stderr[-3000:])
    line = _failure_line(result)
    assert f"the Dask scheduler at {idle_scheduler} has no worker (waited {WORKER_WAIT} s" in line
    assert f"`dask worker {idle_scheduler} --preload flows.worker_preload`" in line
    assert 'deploy/README.md "Several machines"' in line
    assert WORKER_WAIT_ENV in line
    # failed before the study's lease: nothing at all was written to the reports location
    assert not reports.exists()
    # local folders with a scheduler's address: warned, not refused (workers on this machine can use them)
    output = result.stdout + result.stderr
    assert f"landing {local_landing} is a folder of this machine: Dask workers on other machines cannot read it" \
        in output
    assert f"reports {reports} is a folder of this machine: Dask workers on other machines cannot write it" in output
    # no Prefect server configured: the workers' task runs could not reach this command's temporary API
    assert (f"PREFECT_API_URL is not set, so this run reports to a temporary Prefect API on this machine's loopback: "
            f"workers of {idle_scheduler} on other machines cannot reach it") in result.stderr


def test_run_all_on_a_scheduler_without_workers_sends_it_no_study(
    idle_scheduler: str, local_landing: Path, cli_env: dict[str, str], tmp_path: Path,
) -> None:
    config_dir = tmp_path / "studies"
    config_dir.mkdir()
    reports = tmp_path / "reports"
    (config_dir / "sz003.yaml").write_text(f"study: SZ003\nlanding: {local_landing}\nreports: {reports}\n")
    result = _cli("run-all", "--config-dir", str(config_dir), "--as-of", AS_OF, "--runner", "dask",
                  "--dask-address", idle_scheduler, env=cli_env)
    assert result.returncode == 1, (result.stdout[-3000:], result.stderr[-3000:])
    assert f"the Dask scheduler at {idle_scheduler} has no worker" in _failure_line(result)
    assert not reports.exists()


@pytest.mark.parametrize("scheme", ["tcp://", ""])  # Dask takes host:port as TCP
def test_an_unreachable_scheduler_fails_at_once_before_the_flow_starts(
    scheme: str, local_landing: Path, cli_env: dict[str, str], tmp_path: Path,
) -> None:
    address = f"{scheme}127.0.0.1:{unused_port()}"
    reports = tmp_path / "reports"
    result = _cli("run", "--landing", str(local_landing), "--reports", str(reports), "--as-of", AS_OF,
                  "--runner", "dask", "--dask-address", address, env=cli_env)
    assert result.returncode == 1, (result.stdout[-3000:], result.stderr[-3000:])
    line = _failure_line(result)
    assert f"the Dask scheduler at {address} does not answer (ConnectionRefusedError" in line
    assert "`dask scheduler` is running there" in line and "host and port" in line and "firewall" in line
    # the pre-flight: no flow run (no lease taken, no site listed), nothing written
    assert "Beginning flow run" not in result.stdout + result.stderr
    assert not reports.exists()


def test_a_wait_for_workers_that_is_not_a_positive_number_is_a_usage_error(
    local_landing: Path, cli_env: dict[str, str], tmp_path: Path,
) -> None:
    result = _cli("run", "--landing", str(local_landing), "--reports", str(tmp_path / "reports"), "--as-of", AS_OF,
                  "--runner", "dask", "--dask-address", f"tcp://127.0.0.1:{unused_port()}",
                  env={**cli_env, WORKER_WAIT_ENV: "0"})
    assert result.returncode == 2, (result.stdout[-3000:], result.stderr[-3000:])
    assert f"{WORKER_WAIT_ENV}='0' is not a number of seconds greater than 0" in result.stderr


def test_a_deployed_night_whose_scheduler_is_unreachable_fails_with_the_same_advice(
    prefect_harness: None, local_landing: Path, tmp_path: Path,
) -> None:
    """No command-line pre-flight (a Prefect deployment starts the flow itself): the flow's own check says it."""
    import dask
    from prefect_dask import DaskTaskRunner

    from flows.nightly import nightly_audit

    address = f"tcp://127.0.0.1:{unused_port()}"
    reports = tmp_path / "reports"
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), \
            pytest.raises(DaskClusterError, match=f"the Dask scheduler at {address} does not answer .*firewall"):
        nightly_audit.with_options(task_runner=DaskTaskRunner(address=address))(
            landing=str(local_landing), reports=str(reports), study="SZ003", as_of=AS_OF)
    assert not reports.exists()



def test_local_cluster_workers_import_what_tasks_need_before_their_first_task(prefect_harness: None) -> None:
    """flows/worker_preload.py: imports in each worker's main thread as it starts, none on a task's side thread
    (two side threads importing can deadlock: expectations/warmup.py), and none left for the first night."""
    from prefect import flow
    from prefect.context import get_run_context

    @flow(task_runner=RunnerChoice(RunnerKind.DASK, dask_workers=1).task_runner())
    def probe() -> list[list[str]]:
        return not_imported_on_workers(get_run_context().task_runner.client)

    assert probe() == [[]]


def test_importing_the_preload_module_imports_nothing_heavy() -> None:
    """`dask worker --preload flows.worker_preload` imports the module in the process hosting the nannies too
    (to read its options), which runs no task: only `dask_setup`, in each worker, imports what tasks need."""
    probe = ("import sys, flows.worker_preload as p; "
             "heavy = [m for m in ('great_expectations', 'polars', 'prefect', 'pyreadstat') if m in sys.modules]; "
             "print(heavy, callable(p.dask_setup))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["[]", "True"]
