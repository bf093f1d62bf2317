"""The flow a study's deployment runs: read the study file on the worker, then audit the night.

A deployment carries the path of its study file, never copies of the file's values (flows/deployments.py).
So `${S3_ENDPOINT_URL}` in the file is resolved here, from the worker's environment, when the night
starts; an edited landing or expected-sites list takes effect at the next run; and a study whose
protocol is not its own is refused by the same load that `screening-audit run --config` uses.

Its Prefect name is `nightly_audit`, like the flow it wraps, so that every night of a study is listed
under one flow in the UI however it was started (schedule, `prefect deployment run`, command line) and
an operator triggers a night as `prefect deployment run nightly_audit/sz003-nightly`. The audit runs in
this flow run (`nightly_audit.fn`), not as a subflow: one run per night, with its tasks and artifacts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger

from contracts.records import AuditSummary

#: A deployment's name: the study id in lower case, then this.
DEPLOYMENT_SUFFIX = "-nightly"


def deployment_name(study: str) -> str:
    """`sz003-nightly` for study SZ003: what `prefect deployment run nightly_audit/<name>` takes."""
    return f"{study.lower()}{DEPLOYMENT_SUFFIX}"


def _run_name() -> str:
    """`SZ003-as-of-2026-11-28`, as for a command-line run; the file's name if the file cannot be read."""
    from prefect.runtime import flow_run

    from flows.config import ConfigError, load_config, scheduled_audit_date

    params = flow_run.parameters
    try:
        config = load_config(params["config"])
    except ConfigError:  # the flow itself fails with the message; the run still needs a name
        return f"{Path(params['config']).stem}-as-of-{params.get('as_of') or datetime.now(UTC).date().isoformat()}"
    return f"{config.study}-as-of-{params.get('as_of') or scheduled_audit_date(config.timezone).isoformat()}"


def _check_deployment(study: str, config: str) -> None:
    """A deployment runs the study it was made for: a study file whose `study` was edited needs a re-deploy."""
    from prefect.runtime import deployment

    name = deployment.name
    if name and name != deployment_name(study):
        raise ValueError(f"deployment {name} runs {config}, which is now study {study}: run `screening-audit "
                         f"deploy` again (it creates {deployment_name(study)} and pauses {name})")


@flow(name="nightly_audit", flow_run_name=_run_name, log_prints=False, timeout_seconds=6 * 3600)
def nightly_audit_from_config(config: str, as_of: str | None = None) -> AuditSummary:
    """Audit the study of one configuration file, read on the machine that runs the night.

    Fails with one line naming the file and the study when the file cannot be used here: an unset
    `${NAME}`, a protocol that is not the study's, a bad value.

    Args:
        config: The study configuration file (set by `screening-audit deploy`; read at every run).
        as_of: The audit date YYYY-MM-DD; empty for the night the run was scheduled for.
    """
    from datetime import date

    from flows.config import load_config
    from flows.nightly import nightly_audit

    study_config = load_config(config)
    _check_deployment(study_config.study, config)
    get_run_logger().info("study %s from %s", study_config.study, config)
    params = study_config.flow_parameters(date.fromisoformat(as_of) if as_of else None)
    return nightly_audit.fn(**params)
