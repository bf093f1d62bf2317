"""deploy/prefect.yaml agrees with the study configurations, the flow and the operator's guide."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from flows.config import load_config_dir

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"


@pytest.fixture(scope="module")
def prefect_yaml() -> dict:
    return yaml.safe_load((DEPLOY / "prefect.yaml").read_text())


@pytest.fixture(scope="module")
def deployments(prefect_yaml: dict) -> dict[str, dict]:
    return {d["parameters"]["study"]: d for d in prefect_yaml["deployments"]}


def test_prefect_yaml_is_valid_for_prefect(prefect_yaml: dict) -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(prefect_yaml)
    assert [d.name for d in model.deployments] == [d["name"] for d in prefect_yaml["deployments"]]


def test_every_study_config_has_exactly_one_deployment_and_vice_versa(deployments: dict) -> None:
    studies = [c.study for c in load_config_dir(DEPLOY / "studies")]
    assert sorted(deployments) == studies


def test_deployments_carry_the_study_configuration(deployments: dict) -> None:
    for config in load_config_dir(DEPLOY / "studies"):
        deployment = deployments[config.study]
        params = deployment["parameters"]
        expected = {k: v for k, v in config.flow_parameters().items() if k not in ("as_of", "endpoint_url")}
        assert {k: params.get(k) for k in expected} == expected, config.study
        assert "as_of" not in params, "a scheduled run must audit its own night, not a fixed date"
        assert deployment["schedules"] == [{"cron": config.schedule, "timezone": config.timezone, "active": True}]


def test_deployment_parameters_are_flow_parameters(deployments: dict) -> None:
    from flows.nightly import nightly_audit

    accepted = set(inspect.signature(nightly_audit.fn).parameters)
    for study, deployment in deployments.items():
        assert set(deployment["parameters"]) <= accepted, study


def test_entrypoint_names_the_nightly_flow(deployments: dict) -> None:
    for deployment in deployments.values():
        path, name = deployment["entrypoint"].split(":")
        assert (REPO / path).is_file()
        assert name == "nightly_audit"


def test_process_pool_one_run_at_a_time_and_code_from_the_checkout(prefect_yaml: dict, deployments: dict) -> None:
    for deployment in deployments.values():
        assert deployment["work_pool"]["name"] == "screening-audit"
        assert deployment["concurrency_limit"] == 1
    assert prefect_yaml["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $SCREENING_AUDIT_HOME }}"}}]
    assert prefect_yaml["build"] is None and prefect_yaml["push"] is None


def test_no_credentials_in_deployment_files() -> None:
    text = "\n".join(p.read_text() for p in [DEPLOY / "prefect.yaml", *sorted((DEPLOY / "studies").glob("*.yaml"))])
    for word in ("aws_access_key_id", "aws_secret_access_key", "password", "secret_key", "minioadmin"):
        assert word not in text.lower()


def test_readme_covers_every_step_an_operator_needs() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for step in (
        "prefect server start",
        "PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://",
        "prefect work-pool create screening-audit --type process",
        "prefect deploy --prefect-file deploy/prefect.yaml --all",
        "prefect worker start --pool screening-audit",
        "SCREENING_AUDIT_HOME",
        "AWS_ENDPOINT_URL",
        "screening-audit run --config deploy/studies/sz003.yaml",
        "screening-audit run-all --config-dir deploy/studies",
        "--runner dask",
    ):
        assert step in readme, step
