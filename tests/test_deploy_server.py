"""The operator's path end to end: a real `prefect server start`, a process work pool, the deployments of
deploy/prefect.yaml, a triggered run picked up by a worker, and the published tables on disk.

Everything runs in subprocesses with their own PREFECT_HOME (SQLite) on a free loopback port, exactly
the commands deploy/README.md gives; the worker starts in an unrelated folder so that the deployment's
`pull` step (SCREENING_AUDIT_HOME) is what finds the code.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AS_OF = "2026-11-28"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Server:
    api_url: str
    env: dict[str, str]

    def cli(self, *args: str, cwd: Path = REPO, timeout: float = 120, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(BIN / "prefect"), "--no-prompt", *args], cwd=cwd, env=env or self.env,
                                capture_output=True, text=True, timeout=timeout, check=False)
        assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def get(self, path: str) -> dict:
        response = httpx.get(f"{self.api_url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict) -> list | dict:
        response = httpx.post(f"{self.api_url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(home: Path, env: dict[str, str], port: int, log) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`prefect server start` on a free port. Prefect's server cannot be handed a bound socket (and with
    `--port 0` it would not know its own URL), so the port is chosen free and, if another process takes
    it before the server listens (the server exits at once), chosen again: at most three times."""
    home = tmp_path_factory.mktemp("prefect-home")
    log = (home / "server.log").open("w")
    server = None
    try:
        for _attempt in range(3):
            port = _free_port()
            api_url = f"http://127.0.0.1:{port}/api"
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            env.update({
                "PREFECT_HOME": str(home),
                "PREFECT_API_URL": api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_ENABLED": "false",
                "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
                "PREFECT_LOGGING_LEVEL": "INFO",
            })
            server = _start_server(home, env, port, log)
            deadline = time.monotonic() + 180
            while server.poll() is None and time.monotonic() < deadline:
                try:
                    if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                if server.poll() is not None and "already in use" in (home / "server.log").read_text():
                    continue  # the port was taken in between: another one
                pytest.fail(f"prefect server did not start:\n{(home / 'server.log').read_text()[-3000:]}")
            break
        else:
            pytest.fail(f"prefect server found no free port:\n{(home / 'server.log').read_text()[-3000:]}")
        yield Server(api_url, env)
    finally:
        if server is not None and server.poll() is None:
            _stop(server)
        log.close()


def _generate(landing: Path, sites: int, subjects: int) -> None:
    from generator import generate
    from storage import LocalStore

    generate(LocalStore(landing), study="SZ003", sites=sites, subjects=subjects, seed=11,
             as_of=date.fromisoformat(AS_OF), formats="csv", plant_problems=False)


def test_scheduled_deployment_runs_on_a_process_worker_and_publishes(prefect_server: Server, tmp_path: Path) -> None:
    landing, reports, elsewhere = tmp_path / "landing", tmp_path / "reports", tmp_path / "worker-cwd"
    elsewhere.mkdir()
    _generate(landing, sites=2, subjects=24)
    sites = sorted(p.name for p in (landing / "SZ003").iterdir() if p.is_dir())

    # README steps 3 and 5: the pool, then every deployment of deploy/prefect.yaml
    prefect_server.cli("work-pool", "create", "screening-audit", "--type", "process")
    prefect_server.cli("deploy", "--prefect-file", "deploy/prefect.yaml", "--all")

    deployment = prefect_server.get("/deployments/name/nightly_audit/sz003-nightly")
    assert deployment["work_pool_name"] == "screening-audit"
    [schedule] = deployment["schedules"]
    assert (schedule["schedule"]["cron"], schedule["schedule"]["timezone"], schedule["active"]) == (
        "0 2 * * *", "Asia/Shanghai", True)
    assert deployment["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $SCREENING_AUDIT_HOME }}"}}]

    # README step 6: trigger a night by hand, then a worker picks it up
    params = {"landing": str(landing), "reports": str(reports), "as_of": AS_OF,
              "expected_sites": json.dumps(sites)}
    args = [arg for name, value in params.items() for arg in ("--param", f"{name}={value}")]
    triggered = prefect_server.cli("deployment", "run", "nightly_audit/sz003-nightly", *args)
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", triggered.stdout).group(1)

    worker_env = {**prefect_server.env, "SCREENING_AUDIT_HOME": str(REPO)}
    prefect_server.cli("worker", "start", "--pool", "screening-audit", "--run-once", cwd=elsewhere,
                       env=worker_env, timeout=300)

    run = prefect_server.get(f"/flow_runs/{flow_run_id}")
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert run["name"] == f"SZ003-as-of-{AS_OF}"

    # the published tables
    out = reports / "SZ003" / AS_OF
    for table in ("subjects", "eligibility", "discrepancies", "validation", "dv"):
        assert (out / f"{table}.csv").is_file() and (out / f"{table}.parquet").is_file(), table
    for name in ("report.html", "report.xlsx", "run_manifest.json"):
        assert (out / name).is_file(), name
    with (out / "subjects.csv").open(newline="") as handle:
        subjects = list(csv.DictReader(handle))
    assert len(subjects) == 24
    assert {row["SITEID"] for row in subjects} == set(sites)
    # lease released, staging promoted: nothing else of the run's machinery is left
    machinery = sorted(p.relative_to(reports).as_posix() for p in reports.rglob("*")
                       if p.is_file() and "_audit" in p.relative_to(reports).parts)
    assert machinery == ["_audit/SZ003/conditional-writes-probe", "_audit/SZ003/lease.json"]
    assert '"state": "released"' in (reports / "_audit/SZ003/lease.json").read_text()
    assert (reports / "SZ003" / AS_OF / "_complete.json").is_file()

    # coarse tasks that say what they did
    task_runs = prefect_server.post("/task_runs/filter", {"task_runs": {"flow_run_id": {"any_": [flow_run_id]}}})
    names = {t["name"] for t in task_runs}
    assert {f"ingest-site-{site}" for site in sites} <= names
    assert {"validate-dm", "evaluate-eligibility", "publish"} <= names
    assert all(t["state"]["type"] == "COMPLETED" for t in task_runs)

    # logs go through Prefect's logger and never carry record contents
    logs = prefect_server.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200})
    text = "\n".join(entry["message"] for entry in logs)
    assert "published" in text
    for row in subjects:
        assert row["USUBJID"] not in text
