"""deploy/README.md's trial, run exactly as written: a real `prefect server start`, a local S3, a work pool,
deployments made from study files alone, `screening-audit worker`, two studies' nights Completed.

The README's bash blocks marked `<!-- trial -->` run in order in one `bash -euo pipefail`, from the
checkout root, with `HOME` in a temporary folder and the ports 4200 and 9000 replaced by free ones;
nothing else of the text is changed. The deploying shell never has `S3_ENDPOINT_URL`: only the worker
does (README step 6), so SZ003's `endpoint_url: ${S3_ENDPOINT_URL}` can only have been resolved there.

The tests after it continue the same scenario, in this file's order: a third study is one new file; a
removed study file pauses its deployment; stopping the worker (the README's `stop-worker` block, as
systemd's SIGTERM with `KillMode=mixed`) ends a night in progress cleanly within the unit's
`TimeoutStopSec`; then the README's `stop-services` block stops the rest.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest

from tests.support.protocols import write_protocol

REPO = Path(__file__).resolve().parents[1]
README = REPO / "deploy" / "README.md"
WORKER_UNIT = REPO / "deploy" / "systemd" / "screening-audit-worker.service"
BIN = Path(sys.executable).parent
AS_OF = "2026-11-28"

pytestmark = pytest.mark.slow


def readme_blocks() -> dict[str, list[str]]:
    """The README's bash blocks by marker: `trial` (in order), `stop-worker`, `stop-services`."""
    blocks: dict[str, list[str]] = {}
    for name, code in re.findall(r"<!-- trial(?:: ([a-z-]+))? -->\s*```bash\n(.*?)```", README.read_text(), re.S):
        blocks.setdefault(name or "trial", []).append(code)
    return blocks


def unit_settings(path: Path) -> dict[str, list[str]]:
    """`Key=Value` lines of a systemd unit (a key may repeat, as Environment= does)."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not state.exists() or state.read_text().split(")")[-1].split()[0] != "Z"


@dataclass
class Trial:
    home: Path
    env: dict[str, str]
    prefect_port: int
    s3_port: int
    phase1: subprocess.CompletedProcess[str]

    @property
    def dir(self) -> Path:
        return self.home / "screening-audit-trial"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def s3(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def bash(self, *codes: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """README blocks in one bash, after the settings block (step 1) as a new shell would need."""
        settings = readme_blocks()["trial"][0]
        return _bash(_as_run_here(self.prefect_port, self.s3_port, settings, *codes), self.env, timeout)

    def pid(self, name: str) -> int:
        return int((self.dir / f"{name}.pid").read_text())

    def get(self, path: str) -> dict:
        response = httpx.get(f"{self.api}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict) -> list:
        response = httpx.post(f"{self.api}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def runs_of(self, deployment: str) -> list[dict]:
        """The runs of a deployment that were started (not the upcoming nights its schedule created)."""
        found = self.get(f"/deployments/name/nightly_audit/{deployment}")
        runs = self.post("/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [found["id"]]}}})
        return [run for run in runs if run["state"]["type"] != "SCHEDULED"]


def _as_run_here(prefect_port: int, s3_port: int, *codes: str) -> str:
    """README text as run here: only the two ports differ."""
    return "\n".join(codes).replace("4200", str(prefect_port)).replace("9000", str(s3_port))


def _bash(script: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False, start_new_session=True)


def _stop(pid: int, wait: float) -> None:
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trial]:
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "AWS_")) and k not in ("S3_ENDPOINT_URL", "DO_NOT_TRACK")}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", COLUMNS="200")
    ports = (_free_port(), _free_port())
    phase1 = _bash(_as_run_here(*ports, *readme_blocks()["trial"]), env, timeout=1200)
    trial = Trial(home, env, *ports, phase1=phase1)
    try:
        assert phase1.returncode == 0, (f"README trial failed:\n{phase1.stdout[-4000:]}\n{phase1.stderr[-4000:]}\n"
                                        + "\n".join((trial.dir / f"{n}.log").read_text()[-3000:]
                                                    for n in ("worker", "s3") if (trial.dir / f"{n}.log").exists()))
        yield trial
    finally:  # whatever a failed test left running: the worker first (it ends its runs), then the rest
        for name, wait in (("worker", 90), ("s3", 30), ("server", 30)):
            if (trial.dir / f"{name}.pid").exists():
                _stop(trial.pid(name), wait)


def test_each_study_is_deployed_from_its_file_alone(trial: Trial) -> None:
    for study, cron, zone in (("sz003", "0 2 * * *", "Europe/Berlin"), ("sz004", "30 1 * * *", "America/New_York")):
        deployment = trial.get(f"/deployments/name/nightly_audit/{study}-nightly")
        assert deployment["parameters"] == {"config": str(trial.dir / "studies" / f"{study}.yaml")}
        [schedule] = deployment["schedules"]
        assert (schedule["schedule"]["cron"], schedule["schedule"]["timezone"], schedule["active"]) == (cron, zone,
                                                                                                        True)
        assert deployment["tags"] == ["screening-audit", "nightly", study.upper()]
        assert deployment["entrypoint"] == "flows.scheduled.nightly_audit_from_config"
        assert not deployment["pull_steps"] and deployment["work_pool_name"] == "screening-audit"  # no pull step
        assert deployment["global_concurrency_limit"]["limit"] == 1 and not deployment["paused"]
    # the file keeps its reference; the deploying shell had no S3_ENDPOINT_URL (it is only the worker's)
    assert "endpoint_url: ${S3_ENDPOINT_URL}" in (trial.dir / "studies" / "sz003.yaml").read_text()
    assert "S3_ENDPOINT_URL" not in trial.env
    sz003 = trial.get("/deployments/name/nightly_audit/sz003-nightly")
    assert "The worker's environment must set S3_ENDPOINT_URL." in sz003["description"]


def test_both_nights_completed_on_the_worker_with_reports_and_links(trial: Trial) -> None:
    for study in ("SZ003", "SZ004"):
        [run] = trial.runs_of(f"{study.lower()}-nightly")
        assert (run["name"], run["state"]["type"]) == (f"{study}-as-of-{AS_OF}", "COMPLETED")
        logs = trial.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}}, "sort": "TIMESTAMP_ASC",
                                           "limit": 20})
        own = [entry["message"] for entry in logs if entry["message"].startswith("study ")]
        assert own[:2] == [f"study {study} from {trial.dir / 'studies' / (study.lower() + '.yaml')}",
                           f"study {study}: protocol {study}, TIVERS 1.0 ("
                           + (str(REPO / "contracts" / "protocols" / "sz003.yaml") if study == "SZ003"
                              else str(trial.dir / "protocols" / "sz004.yaml")) + ")"]
        [link] = [a for a in trial.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
                  if a["type"] == "markdown" and a["key"].endswith("-report")]
        if study == "SZ003":  # on the local S3 the worker resolved ${S3_ENDPOINT_URL}: a presigned link that opens
            url = re.search(r"\((http[^)]+)\)", link["data"]).group(1)
            assert url.startswith(f"{trial.s3}/sz003-reports/SZ003/{AS_OF}/report.html?X-Amz-Algorithm=")
            assert httpx.get(url, timeout=30).text.startswith("<!DOCTYPE html>")
        else:
            report = trial.dir / "sz004-reports" / "SZ004" / AS_OF / "report.html"
            assert f"({report.as_uri()})" in link["data"] and report.is_file()
    s3 = boto3.client("s3", endpoint_url=trial.s3, aws_access_key_id="trial", aws_secret_access_key="trial",
                      region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="sz003-reports", Prefix=f"SZ003/{AS_OF}/")["Contents"]}
    assert {f"SZ003/{AS_OF}/{name}" for name in ("report.html", "subjects.csv", "run_manifest.json")} <= keys


def test_a_third_study_is_one_new_file(trial: Trial) -> None:
    write_protocol(trial.dir / "protocols", "SZ005")  # the study's own protocol, written by its protocol's author
    generated = trial.bash(f'screening-audit generate --out "$TRIAL/sz005-landing" --study SZ005 --sites 2 '
                           f'--subjects 20 --as-of {AS_OF}')
    assert generated.returncode == 0, generated.stderr
    before = {p.name: p.read_bytes() for p in (trial.dir / "studies").iterdir()}
    (trial.dir / "studies" / "sz005.yaml").write_text(
        f"study: SZ005\nlanding: {trial.dir / 'sz005-landing'}\nreports: {trial.dir / 'sz005-reports'}\n"
        "protocol: ../protocols/sz005.yaml\ntimezone: Asia/Tokyo\nschedule: '0 3 * * *'\n")
    after = {p.name: p.read_bytes() for p in (trial.dir / "studies").iterdir()}
    assert set(after) - set(before) == {"sz005.yaml"} and {k: after[k] for k in before} == before

    result = trial.bash('screening-audit deploy --config-dir "$TRIAL/studies"',
                        f"prefect deployment run nightly_audit/sz005-nightly --param as_of={AS_OF} --watch")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"nightly_audit/sz005-nightly .* created", result.stdout)
    [run] = trial.runs_of("sz005-nightly")
    assert run["state"]["type"] == "COMPLETED"
    assert (trial.dir / "sz005-reports" / "SZ005" / AS_OF / "run_manifest.json").is_file()


def test_removing_a_study_file_pauses_its_deployment_and_restoring_it_resumes(trial: Trial) -> None:
    sz004 = trial.dir / "studies" / "sz004.yaml"
    kept = sz004.read_bytes()
    sz004.unlink()
    try:
        result = trial.bash('screening-audit deploy --config-dir "$TRIAL/studies"')
        assert result.returncode == 0, result.stderr
        assert re.search(r"nightly_audit/sz004-nightly .* paused: sz004.yaml no longer configures it", result.stdout)
        assert trial.get("/deployments/name/nightly_audit/sz004-nightly")["paused"] is True
        assert trial.get("/deployments/name/nightly_audit/sz003-nightly")["paused"] is False
    finally:
        sz004.write_bytes(kept)
    assert trial.bash('screening-audit deploy --config-dir "$TRIAL/studies"').returncode == 0
    assert trial.get("/deployments/name/nightly_audit/sz004-nightly")["paused"] is False


class Tarpit:
    """An "S3 endpoint" that accepts connections and never answers: a night blocked in list-sites."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connected = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(connection)
            self.connected.set()

    def close(self) -> None:
        self.sock.close()
        for connection in self.held:
            connection.close()


def test_stopping_the_worker_ends_a_night_in_progress_cleanly_within_the_units_timeout(trial: Trial) -> None:
    from runtime.worker import DEFAULT_GRACE_SECONDS, WORKER_STOP_SECONDS, children

    unit = unit_settings(WORKER_UNIT)
    assert unit["KillMode"] == ["mixed"]  # systemd's SIGTERM reaches `screening-audit worker` only, as here
    timeout_stop = float(unit["TimeoutStopSec"][0])
    assert f"--grace {DEFAULT_GRACE_SECONDS}" in unit["ExecStart"][0]  # the README's worker uses the default
    assert timeout_stop >= DEFAULT_GRACE_SECONDS + WORKER_STOP_SECONDS + 5

    tarpit = Tarpit()
    try:
        write_protocol(trial.dir / "protocols", "SZ006")
        (trial.dir / "studies" / "sz006.yaml").write_text(
            f"study: SZ006\nlanding: s3://sz006-landing\nreports: {trial.dir / 'sz006-reports'}\n"
            f"endpoint_url: {tarpit.url}\nprotocol: ../protocols/sz006.yaml\n")
        started = trial.bash('screening-audit deploy --config-dir "$TRIAL/studies"',
                             f"prefect deployment run nightly_audit/sz006-nightly --param as_of={AS_OF}")
        assert started.returncode == 0, started.stderr
        assert tarpit.connected.wait(300), "the night never reached its landing"
        lock = trial.dir / "sz006-reports" / "_audit" / "SZ006" / "lock.json"
        assert lock.is_file()  # the night holds its lock, blocked in list-sites
        worker = trial.pid("worker")
        prefect_worker = children(worker)
        flow_runs = [pid for parent in prefect_worker for pid in children(parent)]
        assert len(flow_runs) == 1

        began = time.monotonic()
        stopped = trial.bash(*readme_blocks()["stop-worker"], timeout=timeout_stop + 30)
        took = time.monotonic() - began
    finally:
        tarpit.close()
    assert stopped.returncode == 0, stopped.stderr
    assert took < timeout_stop, f"the worker took {took:.0f} s to stop; the unit allows {timeout_stop:.0f} s"
    assert not any(_alive(pid) for pid in [worker, *prefect_worker, *flow_runs])
    [run] = trial.runs_of("sz006-nightly")
    assert run["state"]["type"] == "CRASHED", run["state"]  # not left Running: the next nights are not blocked
    assert not lock.exists() and not (trial.dir / "sz006-reports" / "_audit").exists()
    log = (trial.dir / "worker.log").read_text()
    assert "1 flow run(s) in progress get SIGTERM" in log
    print(f"\nstop-worker block: {took:.1f} s (unit TimeoutStopSec={timeout_stop:.0f} s); worker log: "
          f"{re.search(r'worker stopped in [0-9.]+ s', log).group(0)}")
    assert re.search(r"worker stopped in \d+\.\d s", log)


def test_stopping_the_services_leaves_nothing_running(trial: Trial) -> None:
    pids = [trial.pid("s3"), trial.pid("server")]
    result = trial.bash(*readme_blocks()["stop-services"])
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_alive(pid) for pid in pids)


def test_every_documented_recipe_turns_telemetry_off() -> None:
    settings = readme_blocks()["trial"][0]
    assert "PREFECT_SERVER_ANALYTICS_ENABLED=false" in settings and "DO_NOT_TRACK=1" in settings
    for unit in ("prefect-server.service", "screening-audit-worker.service"):
        environment = unit_settings(REPO / "deploy" / "systemd" / unit)["Environment"]
        assert {"PREFECT_SERVER_ANALYTICS_ENABLED=false", "DO_NOT_TRACK=1"} <= set(environment), unit
    from flows.cli import PREFECT_DEFAULTS
    from runtime.worker import TELEMETRY_OFF

    assert TELEMETRY_OFF.items() <= PREFECT_DEFAULTS.items()


def test_readme_blocks_are_found() -> None:
    blocks = readme_blocks()
    assert len(blocks["trial"]) == 8 and len(blocks["stop-worker"]) == 1 and len(blocks["stop-services"]) == 1
    assert json.dumps(blocks).count("prefect server start") == 1
