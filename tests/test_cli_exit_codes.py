"""The exit statuses of the installed `screening-audit` command, pinned as a scheduler or a shell script
sees them: 0 published, 1 failed (nothing published), 2 nothing to audit or a usage (or study file) error, 3 another
audit of the study holds its lease. Also `unlock`'s (0 released, 3 refused) and the clear stop on an
endpoint that ignores conditional writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import boto3
import polars as pl
import pytest
from faults import FaultProxy
from reconciliation_support import assert_rows_out

from generator import generate
from publication import acquire_lease, is_complete, read_lease
from storage import LocalStore

CLI = str(Path(sys.executable).with_name("screening-audit"))
AS_OF = "2026-11-28"
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "AWS_ENDPOINT_URL")}
    variables.update(PREFECT_HOME=str(tmp_path_factory.mktemp("prefect-home")),
                     PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="200",
                     SCREENING_AUDIT_S3_CONNECT_TIMEOUT="30", SCREENING_AUDIT_S3_READ_TIMEOUT="120")
    return variables


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exit-landing")
    generate(LocalStore(root), study="SZ003", sites=2, subjects=12, seed=4, as_of=date.fromisoformat(AS_OF),
             formats="csv", plant_problems=False)
    return root


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=600, check=False)


def _run(landing: Path | str, reports: Path | str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return _cli("run", "--landing", str(landing), "--reports", str(reports), "--as-of", AS_OF, *extra, env=env)


def test_0_when_the_reports_are_published(landing: Path, tmp_path: Path, env: dict[str, str]) -> None:
    result = _run(landing, tmp_path / "reports", env)
    assert result.returncode == 0, result.stderr[-3000:]
    reports, prefix = LocalStore(tmp_path / "reports"), f"SZ003/{AS_OF}"
    assert is_complete(reports, prefix)
    assert_rows_out(json.loads(LocalStore(landing).read_bytes("SZ003/ground_truth.json")), LocalStore(landing),
                    pl.read_parquet(tmp_path / "reports" / prefix / "subjects.parquet"),
                    pl.read_parquet(tmp_path / "reports" / prefix / "eligibility.parquet"),
                    json.loads(reports.read_bytes(f"{prefix}/run_manifest.json")))


def test_1_when_the_run_fails_and_nothing_is_published(landing: Path, env: dict[str, str]) -> None:
    with socket.socket() as sock:  # a port nothing listens on once this closes: the reports endpoint is down
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = _run(landing, "s3://sz003-reports", {**env, "SCREENING_AUDIT_S3_ATTEMPTS": "1",
                                                  "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                                                  "AWS_DEFAULT_REGION": "us-east-1"}, "--endpoint-url", down)
    assert result.returncode == 1, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert "audit failed, nothing published: StorageUnavailable: study SZ003, reports: cannot " in message, message
    assert f"(endpoint {down}): the endpoint is not answering" in message


def test_2_when_the_protocol_file_is_broken(landing: Path, tmp_path: Path, env: dict[str, str]) -> None:
    broken = tmp_path / "protocol.yaml"
    broken.write_text("protocol: [this is not a protocol\n")
    result = _run(landing, tmp_path / "reports", env, "--protocol", str(broken))
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"error: {broken}:2: not valid YAML" in " ".join(result.stderr.split())
    assert not (tmp_path / "reports").exists()  # refused before the lease: nothing written


def test_2_when_there_is_nothing_to_audit(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "landing" / "SZ003").mkdir(parents=True)
    result = _run(tmp_path / "landing", tmp_path / "reports", env)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "nothing audited" in result.stderr


def test_2_on_a_usage_error(env: dict[str, str]) -> None:
    result = _cli("run", "--landing", "/somewhere", env=env)
    assert result.returncode == 2
    assert "--reports" in result.stderr


def test_3_while_a_live_run_holds_the_lease(landing: Path, tmp_path: Path, env: dict[str, str]) -> None:
    reports = LocalStore(tmp_path / "reports")
    acquire_lease(reports, "SZ003", run_id="live-run")  # held by this test process, which is alive
    result = _run(landing, tmp_path / "reports", env)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "another audit of SZ003 is running: run live-run" in result.stderr
    assert read_lease(reports, "SZ003")[0].run_id == "live-run"
    assert not (tmp_path / "reports" / "SZ003").exists()


def test_unlock_refuses_a_live_holder_with_3_and_releases_with_force(tmp_path: Path, env: dict[str, str]) -> None:
    reports = LocalStore(tmp_path / "reports")
    holder = acquire_lease(reports, "SZ003", run_id="live-run")
    refused = _cli("unlock", "--reports", str(tmp_path / "reports"), "--study", "SZ003", env=env)
    assert refused.returncode == 3
    assert "looks alive" in refused.stderr and "--force" in refused.stderr
    forced = _cli("unlock", "--reports", str(tmp_path / "reports"), "--study", "SZ003", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert "unlock --force: released the audit lease of SZ003 held by run live-run" in forced.stderr  # the log
    assert read_lease(reports, "SZ003")[0].state == "released"
    assert [obj.key.split("/")[2] for obj in reports.list("_audit/SZ003/unlocks")] == ["unlocks"]
    assert holder.lost is None
    again = _cli("unlock", "--reports", str(tmp_path / "reports"), "--study", "SZ003", env=env)
    assert again.returncode == 0 and "is not held" in again.stderr


def test_an_endpoint_that_ignores_conditional_writes_stops_the_run_with_1(landing: Path, s3_endpoint: str,
                                                                          env: dict[str, str]) -> None:
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="no-conditions")
    with FaultProxy(s3_endpoint, ignore_conditional_writes=True) as proxy:
        result = _run(landing, "s3://no-conditions/reports", {
            **env, "AWS_ENDPOINT_URL": proxy.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"})
    assert result.returncode == 1, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert "ignores conditional writes (If-None-Match and If-Match)" in message, result.stderr[-3000:]
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(
        Bucket="no-conditions").get("Contents", [])]
    assert keys == ["reports/_audit/SZ003/conditional-writes-probe"]  # no lease taken, nothing read or published


def test_unlock_on_a_missing_bucket_is_one_line_naming_study_and_place(s3_endpoint: str, env: dict[str, str]) -> None:
    result = _cli("unlock", "--reports", "s3://no-such-reports", "--study", "SZ003", "--endpoint-url", s3_endpoint,
                  env={**env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    assert result.returncode == 1, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("unlock failed: BucketNotFound: study SZ003, reports: cannot ")
    assert "s3://no-such-reports/_audit/SZ003/" in line and line.endswith("the bucket does not exist (NoSuchBucket)")
