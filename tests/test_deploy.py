"""The study files are the only deployment input: what `screening-audit deploy` makes of them, without a server.

The real server, worker and runs are in tests/test_deploy_trial.py (deploy/README.md's trial, as written).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.config import ConfigError
from flows.deployments import plan, runner_deployment
from flows.scheduled import nightly_audit_from_config
from tests.support.protocols import write_protocol

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
runner = CliRunner()


def _studies(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "sz003.yaml").write_text("study: SZ003\nlanding: s3://sz003-landing\nreports: s3://sz003-reports\n"
                                       "endpoint_url: ${S3_ENDPOINT_URL}\ntimezone: Asia/Shanghai\n")
    protocol = write_protocol(folder.parent / "protocols", "SZ004")
    (folder / "sz004.yaml").write_text(f"study: SZ004\nlanding: /srv/sz004/landing\nreports: /srv/sz004/reports\n"
                                       f"protocol: {protocol}\ntimezone: America/New_York\nschedule: '30 1 * * *'\n")
    return folder


def test_the_repository_study_files_deploy() -> None:
    assert [d.study for d in plan(DEPLOY / "studies")] == ["SZ003"]


def test_a_deployment_carries_the_file_path_only_never_its_values(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S3_ENDPOINT_URL", raising=False)  # the deploying shell needs none of the worker's variables
    sz003, sz004 = plan(_studies(tmp_path / "studies"))
    deployment = runner_deployment(sz003, "screening-audit")
    assert deployment.name == "sz003-nightly" and deployment.full_name == "nightly_audit/sz003-nightly"
    assert deployment.parameters == {"config": str(tmp_path / "studies" / "sz003.yaml")}
    assert deployment.entrypoint == "flows.scheduled.nightly_audit_from_config"  # the installed module: no pull step
    assert deployment.storage is None
    [schedule] = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == ("0 2 * * *", "Asia/Shanghai",
                                                                                      True)
    assert deployment.tags == ["screening-audit", "nightly", "SZ003"]
    assert deployment.concurrency_limit == 1 and deployment.paused is False
    assert deployment.work_pool_name == "screening-audit"
    assert "must set S3_ENDPOINT_URL" in deployment.description and sz003.environment == ("S3_ENDPOINT_URL",)
    assert (sz004.name, sz004.cron, sz004.timezone, sz004.environment) == ("sz004-nightly", "30 1 * * *",
                                                                           "America/New_York", ())


def test_the_deployed_flow_takes_the_file_and_an_optional_date() -> None:
    assert list(inspect.signature(nightly_audit_from_config.fn).parameters) == ["config", "as_of"]
    assert nightly_audit_from_config.name == "nightly_audit"  # every night of a study under one flow


def test_a_study_with_another_studys_protocol_is_not_deployed(tmp_path: Path) -> None:
    folder = _studies(tmp_path / "studies")
    (folder / "sz005.yaml").write_text("study: SZ005\nlanding: /x\nreports: /y\n")
    with pytest.raises(ConfigError, match=r"sz005.yaml \(study SZ005\): protocol: study SZ005 names no protocol"):
        plan(folder)
    result = runner.invoke(app, ["deploy", "--config-dir", str(folder), "--dry-run"])
    assert result.exit_code == 2
    assert "error in the study configuration:" in result.output and "study SZ005 names no protocol" in result.output


def test_dry_run_lists_what_would_be_deployed_without_a_server(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["deploy", "--config-dir", str(_studies(tmp_path / "studies")), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "nightly_audit/sz003-nightly" in result.output and "S3_ENDPOINT_URL" in result.output
    assert "nightly_audit/sz004-nightly" in result.output and "30 1 * * * (America/New_York)" in result.output


def test_deploy_without_a_server_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(app, ["deploy", "--config-dir", str(_studies(tmp_path / "studies"))])
    assert result.exit_code == 2
    assert "not deployed: PREFECT_API_URL is not set: point it at the Prefect server the workers poll" in result.output


def test_no_credentials_in_study_files() -> None:
    text = "\n".join(p.read_text() for p in sorted((DEPLOY / "studies").glob("*.yaml"))).lower()
    for word in ("aws_access_key_id", "aws_secret_access_key", "password", "secret_key", "minioadmin"):
        assert word not in text


def test_no_hand_written_prefect_yaml_to_keep_in_step() -> None:
    assert not list(DEPLOY.rglob("prefect.yaml"))


def test_readme_covers_every_step_an_operator_needs() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for step in (
        "prefect server start",
        "PREFECT_HOME",
        "PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://",
        "prefect work-pool create screening-audit --type process",
        "screening-audit local-s3 --port 9000 --bucket sz003-landing --bucket sz003-reports",
        "aws s3api create-bucket",
        "screening-audit deploy --config-dir",
        "screening-audit worker --pool screening-audit",
        "deploy/systemd/screening-audit-worker.service",
        "KillMode=mixed",
        "TimeoutStopSec=90",
        "Add a second study",
        "screening-audit run --config deploy/studies/sz003.yaml",
        "screening-audit run-all --config-dir deploy/studies",
        "--runner dask",
    ):
        assert step in readme, step
    assert "{{ $" not in readme and "prefect deploy " not in readme  # nothing templated in the deploying shell


def test_a_deployment_whose_file_now_configures_another_study_refuses_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.scheduled import _check_deployment

    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__NAME", "sz003-nightly")
    _check_deployment("SZ003", "/srv/studies/sz003.yaml")  # the study it was made for
    with pytest.raises(ValueError, match=r"deployment sz003-nightly runs /srv/studies/sz003.yaml, which is now "
                                         r"study SZ009: run `screening-audit deploy` again"):
        _check_deployment("SZ009", "/srv/studies/sz003.yaml")


def test_a_deployment_made_from_the_old_prefect_yaml_is_taken_over(prefect_harness: None, tmp_path: Path) -> None:
    """Upgrading: `deploy` replaces the copied values of an earlier `prefect deploy` with the file's path."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from flows.deployments import deploy
    from flows.nightly import nightly_audit

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="takeover-pool", type="process"), overwrite=True)
    nightly_audit.to_deployment(name="sz003-nightly", parameters={"landing": "s3://old", "reports": "s3://old"},
                                cron="0 3 * * *", work_pool_name="takeover-pool").apply()
    studies = _studies(tmp_path / "studies")
    outcomes = deploy(studies, pool="takeover-pool")
    assert [(o.name, o.action.value) for o in outcomes] == [("sz003-nightly", "updated"), ("sz004-nightly", "created")]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("nightly_audit/sz003-nightly")
    assert deployment.parameters == {"config": str(studies / "sz003.yaml")}
    assert deployment.entrypoint == "flows.scheduled.nightly_audit_from_config" and not deployment.pull_steps
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [("0 2 * * *", "Asia/Shanghai")]
    assert set(deployment.parameter_openapi_schema["properties"]) == {"config", "as_of"}
