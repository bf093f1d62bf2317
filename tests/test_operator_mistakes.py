"""Every operator mistake of issue 19 gets one line that names the study and the place, and the documented exit.

The command line runs in-process (typer's runner) with the real nightly flow under Prefect's test
harness, against a real moto S3 server (through the fault proxy where a bucket policy must refuse).
Exit codes as documented: 1 the audit failed, 2 a usage or configuration error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from faults import Action, FaultProxy, Rule
from typer.testing import CliRunner

from flows.cli import app
from tests.support.protocols import write_protocol

AS_OF = "2026-11-28"
runner = CliRunner()


def _without_closed_stream_noise(output: str) -> str:
    """`output` without the "--- Logging error ---" reports of Prefect's console handler writing to the
    stream of an earlier in-process invocation (typer's runner closes it): an artefact of running the
    command in-process, which a real process (the last test here, tests/test_faults_cli.py) does not have."""
    kept, skipping = [], False
    for line in output.splitlines():
        if line == "--- Logging error ---":
            skipping = True
        elif skipping and line.startswith("Arguments:"):
            skipping = False
        elif not skipping:
            kept.append(line)
    return "\n".join(kept)


def _one_line(output: str, start: str) -> str:
    """The single line of `output` that starts with `start` (the CLI's verdict); no traceback anywhere."""
    output = _without_closed_stream_noise(output)
    assert "Traceback" not in output and "╭─" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if line.startswith(start)]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", *args, "--as-of", AS_OF])
    return result.exit_code, result.output


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3 finds nothing in its chain: no variables, no files, no instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a session made earlier keeps the credentials it found


def test_a_landing_root_that_does_not_exist(prefect_harness: None, tmp_path: Path) -> None:
    code, output = _run("--landing", str(tmp_path / "landnig"), "--reports", str(tmp_path / "reports"))
    assert code == 1
    assert _one_line(output, "audit failed") == (
        f"audit failed, nothing published: LandingError: study SZ003: the landing root {tmp_path / 'landnig'} does "
        "not exist (check the path or bucket in the study's `landing`)")
    assert not (tmp_path / "reports" / "SZ003").exists()


def test_a_landing_root_that_is_the_study_folder(prefect_harness: None, tmp_path: Path) -> None:
    for site in ("101", "102"):
        (tmp_path / "landing" / "SZ003" / site / "20261127T230000Z").mkdir(parents=True)
    code, output = _run("--landing", str(tmp_path / "landing" / "SZ003"), "--reports", str(tmp_path / "reports"))
    assert code == 1
    line = _one_line(output, "audit failed")
    assert line.startswith(f"audit failed, nothing published: LandingError: study SZ003: the landing root "
                           f"{tmp_path / 'landing' / 'SZ003'} looks like the study's own folder (it holds 101, 102")
    assert line.endswith(f"set `landing` to {tmp_path / 'landing'}")
    assert "expected site has no delivery folder" not in output


def test_no_credentials_names_study_bucket_and_operation(prefect_harness: None, no_credentials: None,
                                                         s3_endpoint: str, tmp_path: Path) -> None:
    code, output = _run("--landing", "s3://sz003-landing", "--reports", str(tmp_path / "reports"),
                        "--endpoint-url", s3_endpoint)
    assert code == 1
    assert _one_line(output, "audit failed") == (
        f"audit failed, nothing published: NoCredentials: study SZ003, landing: cannot list "
        f"s3://sz003-landing/SZ003 (endpoint {s3_endpoint}): no credentials found (environment, profile or "
        "instance role)")


def test_access_denied_on_a_bucket_names_study_bucket_and_operation(prefect_harness: None, s3_endpoint: str,
                                                                    s3_bucket: str, tmp_path: Path) -> None:
    with FaultProxy(s3_endpoint) as proxy:
        proxy.add(Rule(Action.DENY, operation="list", count=None))
        code, output = _run("--landing", f"s3://{s3_bucket}/in", "--reports", str(tmp_path / "reports"),
                            "--endpoint-url", proxy.url)
    assert code == 1
    assert _one_line(output, "audit failed") == (
        f"audit failed, nothing published: AccessDenied: study SZ003, landing: cannot list "
        f"s3://{s3_bucket}/in/SZ003 (endpoint {proxy.url}): access denied (AccessDenied)")
    assert len(proxy.seen("list", outcome="deny")) == 1  # refused at once: access denied is not retried


def test_a_missing_reports_bucket_names_study_bucket_and_operation(prefect_harness: None, s3_endpoint: str,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "landing" / "SZ003").mkdir(parents=True)
    code, output = _run("--landing", str(tmp_path / "landing"), "--reports", "s3://sz003-reports-typo",
                        "--endpoint-url", s3_endpoint)
    assert code == 1
    assert _one_line(output, "audit failed") == (
        f"audit failed, nothing published: BucketNotFound: study SZ003, reports: cannot create "
        f"s3://sz003-reports-typo/_audit/SZ003/lock.json (endpoint {s3_endpoint}): the bucket does not exist "
        "(NoSuchBucket)")


def test_an_unresolved_variable_is_a_configuration_error(prefect_harness: None, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S3_ENDPOINT_URL", raising=False)
    config = tmp_path / "sz003.yaml"
    config.write_text("study: SZ003\nlanding: s3://sz003-landing\nreports: s3://sz003-reports\n"
                      "endpoint_url: ${S3_ENDPOINT_URL}\n")
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert _one_line(result.output, "error in the study configuration") == (
        f"error in the study configuration: {config} (study SZ003): endpoint_url: environment variable "
        "S3_ENDPOINT_URL is not set (referenced as ${S3_ENDPOINT_URL}); set it in the environment where the "
        "audit runs (the worker's, for a deployment)")


def test_an_unresolved_variable_on_the_worker_fails_the_deployed_run_with_that_line(
        prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow a deployment runs reads the file where it runs: the Prefect state carries the one line."""
    from flows.scheduled import nightly_audit_from_config

    monkeypatch.delenv("S3_ENDPOINT_URL", raising=False)
    config = tmp_path / "sz003.yaml"
    config.write_text("study: SZ003\nlanding: s3://sz003-landing\nreports: s3://sz003-reports\n"
                      "endpoint_url: ${S3_ENDPOINT_URL}\n")
    state = nightly_audit_from_config(config=str(config), as_of=AS_OF, return_state=True)
    assert state.is_failed()
    assert state.message == (
        f"Flow run encountered an exception: ConfigError: {config} (study SZ003): endpoint_url: environment "
        "variable S3_ENDPOINT_URL is not set (referenced as ${S3_ENDPOINT_URL}); set it in the environment where "
        "the audit runs (the worker's, for a deployment)")


def test_a_study_without_its_own_protocol_is_refused_on_the_command_line(prefect_harness: None,
                                                                         tmp_path: Path) -> None:
    (tmp_path / "landing" / "SZ004").mkdir(parents=True)
    code, output = _run("--landing", str(tmp_path / "landing"), "--reports", str(tmp_path / "reports"),
                        "--study", "SZ004")
    assert code == 2
    assert _one_line(output, "error") == (
        "error: study SZ004 names no protocol file, and the bundled protocol is SZ003's (TIVERS 1.0): give study "
        "SZ004 its own protocol file")
    assert not (tmp_path / "reports").exists()  # refused before the lock: nothing written


def test_a_study_file_naming_another_studys_protocol_is_refused(prefect_harness: None, tmp_path: Path) -> None:
    sz003 = write_protocol(tmp_path / "protocols", "SZ003")
    config = tmp_path / "sz004.yaml"
    config.write_text(f"study: SZ004\nlanding: {tmp_path}\nreports: {tmp_path}\nprotocol: {sz003}\n")
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert _one_line(result.output, "error in the study configuration") == (
        f"error in the study configuration: {config} (study SZ004): protocol: study SZ004 names the protocol of "
        f"SZ003 ({sz003}, TIVERS 1.0): a study is audited against its own protocol only")


def test_every_run_starts_by_naming_its_protocol_and_tivers(prefect_harness: None, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from flows.nightly import nightly_audit

    caplog.set_level("INFO", logger="prefect")
    state = nightly_audit(landing=str(tmp_path / "nowhere"), reports=str(tmp_path / "reports"), as_of=AS_OF,
                          return_state=True)
    assert state.is_failed()
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("prefect.flow_runs")]
    own = [m for m in messages if not m.startswith(("Beginning flow run", "View at"))]
    assert own[0] == (f"study SZ003: protocol SZ003, TIVERS 1.0 "
                      f"({Path('contracts/protocols/sz003.yaml').resolve()})"), messages


def test_generate_into_a_missing_bucket_is_one_line(s3_endpoint: str) -> None:
    result = runner.invoke(app, ["generate", "--out", "s3://no-such-landing/in", "--endpoint-url", s3_endpoint,
                                 "--sites", "1", "--subjects", "4"])
    assert result.exit_code == 1
    assert _one_line(result.output, "generate failed") == (
        f"generate failed: study SZ003: the bucket of s3://no-such-landing/in does not exist on {s3_endpoint}: "
        "create it first")


def test_generate_without_credentials_is_one_line(no_credentials: None, s3_endpoint: str) -> None:
    result = runner.invoke(app, ["generate", "--out", "s3://sz003-landing", "--endpoint-url", s3_endpoint,
                                 "--sites", "1", "--subjects", "4"])
    assert result.exit_code == 1
    assert _one_line(result.output, "generate failed") == (
        f"generate failed: NoCredentials: study SZ003: cannot find the bucket of s3://sz003-landing/ (endpoint "
        f"{s3_endpoint}): no credentials found (environment, profile or instance role)")


def test_generate_into_a_missing_bucket_as_a_process_prints_no_traceback(s3_endpoint: str, tmp_path: Path) -> None:
    """The command as an operator types it (the 100-line traceback of issue 19)."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "200"}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("screening-audit")), "generate", "--out", "s3://no-such-bucket",
         "--endpoint-url", s3_endpoint, "--sites", "1", "--subjects", "4"],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"generate failed: study SZ003: the bucket of s3://no-such-bucket does not exist on {s3_endpoint}: "
        "create it first"]


def test_no_credentials_as_a_process_is_one_line_without_traceback(s3_endpoint: str, tmp_path: Path) -> None:
    """Issue 19's `NoCredentialsError: Unable to locate credentials` in list-sites, as the operator sees it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), COLUMNS="250", AWS_EC2_METADATA_DISABLED="true",
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    env.pop("PREFECT_API_URL", None)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("screening-audit")), "run", "--landing", "s3://sz003-landing",
         "--reports", str(tmp_path / "reports"), "--endpoint-url", s3_endpoint, "--as-of", AS_OF],
        env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 1
    assert _one_line(result.stderr, "audit failed") == (
        f"audit failed, nothing published: NoCredentials: study SZ003, landing: cannot list "
        f"s3://sz003-landing/SZ003 (endpoint {s3_endpoint}): no credentials found (environment, profile or "
        "instance role)")
    assert "NoCredentialsError" not in result.stderr
