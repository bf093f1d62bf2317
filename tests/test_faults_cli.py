"""The command line when the S3 endpoint is down: a clear one-line error, a non-zero exit, and no
report folder (not even a partial one).

The CLI runs as a real cold process. Prefect's task retry delays (2, 10, 30 s) are set to zero by a
two-line wrapper around the CLI entry point, so that the test measures behaviour, not back-off.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

AS_OF = "2026-11-28"
#: `screening-audit` with every Prefect task retry delay set to zero (retries themselves are kept).
#: flows.cli is imported first: it sets its Prefect defaults before anything imports Prefect.
NO_DELAY_CLI = (
    "import sys\n"
    "from flows.cli import app\n"
    "import flows.tasks as t\n"
    "[setattr(getattr(t, n), 'retry_delay_seconds', 0) for n in dir(t) if getattr(getattr(t, n), 'retries', 0)]\n"
    "sys.argv[0] = 'screening-audit'\n"
    "app()\n"
)


@pytest.fixture(scope="module")
def endpoint_down(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("endpoint-down")
    # a loopback port bound and never listened on, held for the whole run: every connection is refused,
    # and no other process can start listening there in the meantime (no free-port race)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        env = dict(os.environ)
        env.update(PREFECT_HOME=str(root / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                   SCREENING_AUDIT_S3_ATTEMPTS="1", SCREENING_AUDIT_S3_CONNECT_TIMEOUT="10", COLUMNS="160")
        env.pop("AWS_ENDPOINT_URL", None)
        reports = root / "reports"
        result = subprocess.run(
            [sys.executable, "-c", NO_DELAY_CLI, "run", "--landing", "s3://sz003-landing/incoming",
             "--reports", str(reports), "--as-of", AS_OF, "--endpoint-url", endpoint],
            env=env, capture_output=True, text=True, timeout=900, check=False, cwd=Path(__file__).parents[1])
    return {"result": result, "endpoint": endpoint, "reports": reports}


def test_the_run_fails_with_exit_status_1(endpoint_down: dict) -> None:
    assert endpoint_down["result"].returncode == 1


def test_the_error_names_the_endpoint_in_one_clear_line(endpoint_down: dict) -> None:
    stderr = endpoint_down["result"].stderr
    lines = [line for line in stderr.splitlines() if endpoint_down["endpoint"] in line]
    assert lines, stderr[-2000:]
    assert any("connect" in line.lower() for line in lines)


def test_no_traceback_is_shown_to_the_operator(endpoint_down: dict) -> None:
    assert "Traceback" not in endpoint_down["result"].stderr
    assert "╭─" not in endpoint_down["result"].stderr  # typer's pretty traceback box


def test_nothing_is_published(endpoint_down: dict) -> None:
    reports: Path = endpoint_down["reports"]
    assert not (reports / "SZ003").exists()
    # only the audit's own state: the conditional-writes probe and the lease, released
    assert sorted(p.relative_to(reports).as_posix() for p in reports.rglob("*") if p.is_file()) == [
        "_audit/SZ003/conditional-writes-probe", "_audit/SZ003/lease.json"]
    assert '"state": "released"' in (reports / "_audit/SZ003/lease.json").read_text()
