"""The audit on a real Dask cluster that shares no disk with the flow: its tables are the thread runner's.

Started as an operator would: `dask scheduler` and two `dask worker` processes, then the installed
`screening-audit run --runner dask --dask-address tcp://...`. The workers run under another unix user,
each in its own working directory with its own TMPDIR, so the temporary folders of the flow's process
(its TMPDIR, mode 0700 under pytest's root-only folder) are unreadable to them: a task handed a path of
the flow's machine fails. They get only what a worker machine gets: this package (the checkout's
virtualenv), the storage endpoint and credentials, and the Prefect API URL. Landing and reports are
on the moto S3 server.

Needs root, to create the worker user (CI runs as root). When that user cannot run this checkout's
virtualenv (its interpreter or the checkout under a folder only root may enter, such as /root), the
workers run as root instead, each in a private mount namespace where the flow's temporary folder is
an empty read-only file system: still unreadable to them. Skipped, with the reason, when neither works.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from flows.runners import WORKER_PRELOAD
from storage import open_store
from tests.support.dask_processes import Processes, not_imported_on_workers, scheduler_address

pytestmark = pytest.mark.slow

AS_OF = "2026-11-28"
WORKER_USER = "screening-audit-dask"
VENV_BIN = Path(sys.executable).parent
CLI = str(VENV_BIN / "screening-audit")
DASK = str(VENV_BIN / "dask")
PROJECT = Path(__file__).resolve().parents[1]
#: every table the run publishes (site query files included); reports and run_manifest.json carry timestamps
TABLE_SUFFIXES = (".csv", ".parquet", ".xpt")
#: what a worker imports first: the tasks' module and Dask's worker
IMPORT_PROBE = "import flows.tasks, distributed.cli.dask_worker"


@dataclass
class Isolation:
    """How the workers are kept away from the flow's files: another user, or a mount namespace."""

    how: str
    user: pwd.struct_passwd | None = None
    hide: list[Path] = field(default_factory=list)

    def command(self, argv: list[str]) -> list[str]:
        if not self.hide:
            return argv
        mounts = " && ".join(f'mount -t tmpfs -o ro,size=16k tmpfs "${i + 1}"' for i in range(len(self.hide)))
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f'{mounts} && shift {len(self.hide)} && exec "$@"', "sh", *map(str, self.hide), *argv]

    def popen_kwargs(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        if self.user is not None:
            for item in [path, *path.rglob("*")]:
                os.chown(item, self.user.pw_uid, self.user.pw_gid)


def _as_user(user: pwd.struct_passwd, argv: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
                              env={"PATH": "/usr/bin:/bin", "HOME": "/"}, capture_output=True, text=True,
                              timeout=120, check=False)
    except OSError as error:  # e.g. the interpreter itself cannot be executed by that user
        return subprocess.CompletedProcess(argv, 126, "", str(error))


def _closed_folder(user: pwd.struct_passwd, path: Path) -> Path | None:
    """The first folder on the way to `path` that `user` cannot enter (None: none)."""
    for folder in [*reversed(path.parents), path]:
        if folder.is_dir() and _as_user(user, ["test", "-x", str(folder)]).returncode != 0:
            return folder
    return None


def _worker_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(WORKER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", WORKER_USER],
                       check=True, capture_output=True, timeout=60)
        return pwd.getpwnam(WORKER_USER)


def _isolation(flow_tmp: Path) -> Isolation:
    if os.geteuid() != 0:
        pytest.skip("the Dask workers must run as another unix user (so that the flow's temporary folders are "
                    "unreadable to them): creating one needs root, as in CI")
    reasons = []
    user = None
    if shutil.which("useradd") is None:
        reasons.append("no useradd to create the worker user")
    else:
        try:
            user = _worker_user()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, KeyError) as error:
            user = None
            reasons.append(f"cannot create the worker user {WORKER_USER} ({type(error).__name__})")
    if user is not None:
        probe = _as_user(user, [sys.executable, "-c", IMPORT_PROBE])
        if probe.returncode == 0:
            return Isolation(f"workers as unix user {WORKER_USER}", user=user)
        closed = [str(folder) for folder in (_closed_folder(user, Path(sys.executable).resolve()),
                                             _closed_folder(user, PROJECT)) if folder is not None]
        why = (f"{', '.join(closed)} is closed to other users" if closed
               else (probe.stderr.strip().splitlines() or ["the import failed"])[-1])
        reasons.append(f"user {WORKER_USER} cannot run this checkout's virtualenv: {why}")
    unshare = subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=30, check=False) \
        if shutil.which("unshare") else None
    if unshare is not None and unshare.returncode == 0:
        return Isolation("workers as root, the flow's temporary folder hidden by a private mount namespace "
                         f"({'; '.join(reasons)})", hide=[flow_tmp])
    pytest.skip("cannot keep the flow's temporary folders away from the workers: " + "; ".join(
        [*reasons, "no private mount namespace (unshare --mount) either"]))


@pytest.fixture
def cluster(prefect_harness: None, s3_endpoint: str, tmp_path: Path):
    """A scheduler and two workers (isolated from the flow's temporary folder); yields what the run needs."""
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    flow_tmp = tmp_path / "flow-tmp"
    flow_tmp.mkdir(mode=0o700)
    isolation = _isolation(flow_tmp)
    processes = Processes()
    worker_homes: list[Path] = []
    try:
        scheduler_file = tmp_path / "scheduler.json"
        scheduler = processes.start("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                                  "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                    tmp_path, cwd=tmp_path)
        address = scheduler_address(processes, scheduler, scheduler_file)
        for index in (1, 2):
            home = Path(tempfile.mkdtemp(prefix=f"screening-audit-worker{index}-"))
            worker_homes.append(home)
            for sub in ("tmp", "prefect", "dask"):
                (home / sub).mkdir()
            isolation.own(home)
            env = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(home / "tmp"),
                   "LANG": "C.UTF-8", "PREFECT_HOME": str(home / "prefect"), "PREFECT_API_URL": api_url,
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   # what a worker machine is given: the storage endpoint and its credentials
                   "AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
                   "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"], "AWS_DEFAULT_REGION": "us-east-1"}
            argv = [sys.executable, DASK, "worker", address, "--name", f"worker-{index}", "--nthreads", "1",
                    "--no-nanny", "--no-dashboard", "--local-directory", str(home / "dask"),
                    "--preload", WORKER_PRELOAD]  # as deploy/README.md starts them
            processes.start(f"worker-{index}", isolation.command(argv), tmp_path, cwd=home, env=env,
                            **isolation.popen_kwargs())
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            # the preload imported what the tasks need before the first one, in each worker's main thread
            assert not_imported_on_workers(client) == [[], []]
        yield {"address": address, "api_url": api_url, "flow_tmp": flow_tmp, "isolation": isolation,
               "processes": processes}
    finally:
        processes.stop()
        for home in worker_homes:
            shutil.rmtree(home, ignore_errors=True)


def _tables(uri: str, endpoint: str, prefix: str) -> dict[str, bytes]:
    store = open_store(uri, endpoint)
    return {obj.key[len(prefix) + 1:]: store.read_bytes(obj.key) for obj in store.list(prefix)
            if obj.key.endswith(TABLE_SUFFIXES)}


def test_audit_on_a_cluster_sharing_no_disk_publishes_the_thread_runners_tables(
    cluster: dict, s3_endpoint: str, s3_bucket: str, tmp_path: Path,
) -> None:
    from flows.nightly import nightly_audit
    from generator import generate

    landing = f"s3://{s3_bucket}/landing"
    generate(open_store(landing, s3_endpoint), study="SZ003", sites=3, subjects=36, seed=5,
             as_of=date.fromisoformat(AS_OF))
    nightly_audit(landing=landing, reports=f"s3://{s3_bucket}/reports-thread", study="SZ003", as_of=AS_OF,
                  endpoint_url=s3_endpoint)

    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=cluster["api_url"], PREFECT_HOME=str(tmp_path / "prefect-home"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", TMPDIR=str(cluster["flow_tmp"]),
               AWS_ENDPOINT_URL=s3_endpoint, COLUMNS="160")
    result = subprocess.run([CLI, "run", "--landing", landing, "--reports", f"s3://{s3_bucket}/reports-cluster",
                             "--as-of", AS_OF, "--runner", "dask", "--dask-address", cluster["address"]],
                            env=env, capture_output=True, text=True, timeout=600, check=False)
    processes: Processes = cluster["processes"]
    workers = processes.log("worker-1") + processes.log("worker-2")
    assert result.returncode == 0, (cluster["isolation"].how, result.stderr[-4000:], workers[-4000:])

    prefix = f"SZ003/{AS_OF}"
    thread = _tables(f"s3://{s3_bucket}/reports-thread", s3_endpoint, prefix)
    dask = _tables(f"s3://{s3_bucket}/reports-cluster", s3_endpoint, prefix)
    assert {"subjects.parquet", "eligibility.parquet", "discrepancies.csv", "validation.parquet", "dv.xpt"} <= set(
        thread)
    assert sorted(dask) == sorted(thread)
    assert [name for name in thread if thread[name] != dask[name]] == []
    # the Data Docs, built by the flow from the results its workers returned as data
    reports = open_store(f"s3://{s3_bucket}/reports-cluster", s3_endpoint)
    docs = {obj.key for obj in reports.list(f"{prefix}/data_docs")}
    assert f"{prefix}/data_docs/index.html" in docs
    assert {key.split("/")[-1] for key in docs if "/validations/" in key} >= {"dm.html", "ie.html", "lb.html"}
    # the heavy tasks ran on the two workers, not in the flow's process
    for name in ("worker-1", "worker-2"):
        assert "Finished in state Completed()" in processes.log(name), (name, processes.log(name)[-2000:])
    # ingestion in batches, then each partition of sites audited on a worker (docs/operations.md)
    assert "ingest-site" in workers and "audit-site" in workers
