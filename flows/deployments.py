"""`screening-audit deploy`: one Prefect deployment per study file, made from the file alone.

Why Prefect's Python API and not a `prefect.yaml`: the study file is the only thing an operator writes
for a study. A hand-kept `prefect.yaml` copied its values (and froze `${VAR}` at deploy time, and
templated `{{ $VAR }}` in the deploying shell), and a generated one would be a second file to keep in
step, checked by CI. Here every deployment is derived when it is applied, so there is nothing to
drift.

What a deployment holds, from its study file:

| deployment | from the file |
|---|---|
| name `<study>-nightly` of flow `nightly_audit` | `study` |
| schedule: cron in a time zone, active | `schedule`, `timezone` |
| tags `screening-audit`, `nightly`, `<STUDY>` | `study` |
| description (study, file, variables the worker must set) | the file's path, its `${NAME}` references |
| parameters: `config` = the file's absolute path | nothing else: the worker reads the file at run time |
| work pool (`--pool`), `concurrency_limit: 1` | fixed |

The entrypoint is a module path (`flows.scheduled.nightly_audit_from_config`) of the installed package:
a process worker imports it from the same virtualenv it runs in, so a deployment needs no pull step
and no `SCREENING_AUDIT_HOME`.

A deployment whose study file is gone (its `config` is a file of this folder that no longer exists, or
that now configures another study) is **paused**, not deleted: its flow runs and their logs stay
listed under it for the audit trail, nothing more is scheduled, and putting the file back and
deploying again resumes it. Deployments made from other folders are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from flows.config import StudyConfig, env_references, study_files
from flows.scheduled import deployment_name, nightly_audit_from_config

#: The work pool a deployment is queued in, unless `--pool` says otherwise (deploy/README.md creates it).
DEFAULT_POOL = "screening-audit"
#: The Prefect flow every study's deployment belongs to.
FLOW_NAME = "nightly_audit"
TAGS = ("screening-audit", "nightly")


class DeployError(RuntimeError):
    """The deployments cannot be made (no Prefect server configured, no such work pool...)."""


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    PAUSED = "paused"


@dataclass(frozen=True)
class StudyDeployment:
    """What `deploy` makes of one study file."""

    study: str
    name: str
    config: Path
    cron: str
    timezone: str
    environment: tuple[str, ...]  # the `${NAME}` variables the worker must set

    @property
    def full_name(self) -> str:
        return f"{FLOW_NAME}/{self.name}"

    @property
    def description(self) -> str:
        needs = (f" The worker's environment must set {', '.join(self.environment)}." if self.environment else "")
        return (f"Nightly screening audit of {self.study}, configured by {self.config} (read by the worker at "
                f"each run; made by `screening-audit deploy`, do not edit here).{needs}")


@dataclass(frozen=True)
class Outcome:
    name: str
    study: str
    action: Action
    detail: str


def plan(config_dir: str | Path) -> list[StudyDeployment]:
    """The deployment of every study file in `config_dir`, read without resolving `${NAME}` (the worker does)."""
    return [_deployment(path, config) for path, config in study_files(config_dir, resolve_env=False)]


def _deployment(path: Path, config: StudyConfig) -> StudyDeployment:
    return StudyDeployment(study=config.study, name=deployment_name(config.study), config=path,
                           cron=config.schedule, timezone=config.timezone,
                           environment=tuple(env_references(config)))


def runner_deployment(deployment: StudyDeployment, pool: str):
    """The Prefect RunnerDeployment of one study (module-path entrypoint, the file's path as its parameter)."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    return nightly_audit_from_config.to_deployment(
        name=deployment.name,
        schedules=[Cron(deployment.cron, timezone=deployment.timezone, active=True)],
        parameters={"config": str(deployment.config)},
        tags=[*TAGS, deployment.study],
        description=deployment.description,
        concurrency_limit=1,
        paused=False,
        work_pool_name=pool,
        entrypoint_type=EntrypointType.MODULE_PATH,
        enforce_parameter_schema=True,
    )


def deploy(config_dir: str | Path, pool: str = DEFAULT_POOL) -> list[Outcome]:
    """Create or update every study's deployment, then pause those of this folder whose study file is gone."""
    planned = plan(config_dir)
    folder = Path(config_dir).expanduser().resolve()
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        _check_server(client, pool)
        existing = _deployments_of_the_flow(client)
        outcomes = []
        for deployment in planned:
            runner_deployment(deployment, pool).apply(work_pool_name=pool)
            action = Action.UPDATED if deployment.name in existing else Action.CREATED
            outcomes.append(Outcome(deployment.name, deployment.study, action,
                                    f"{deployment.cron} {deployment.timezone}"))
        names = {d.name for d in planned}
        for name, found in sorted(existing.items()):
            config = Path(str((found.parameters or {}).get("config", "")))
            if name in names or config.parent != folder:
                continue
            client.pause_deployment(found.id)
            study = next((tag for tag in found.tags if tag not in TAGS), name)
            outcomes.append(Outcome(name, study, Action.PAUSED, f"{config.name} no longer configures it"))
    return outcomes


def _check_server(client, pool: str) -> None:
    """A real server and an existing pool, or one line saying what to do (no temporary server, no new pool)."""
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    if not api:
        raise DeployError("PREFECT_API_URL is not set: point it at the Prefect server the workers poll "
                          "(`prefect config set PREFECT_API_URL=http://<host>:4200/api`)")
    try:
        client.read_work_pool(pool)
    except ObjectNotFound:
        raise DeployError(f"work pool {pool} does not exist on {api}: create it with "
                          f"`prefect work-pool create {pool} --type process`") from None
    except Exception as error:  # connection refused, DNS...: the server is the place to look
        raise DeployError(f"cannot reach the Prefect server at {api}: {type(error).__name__}: {error}") from None


def _deployments_of_the_flow(client, page: int = 200) -> dict:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    found: dict = {}
    while True:
        batch = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
                                        limit=page, offset=len(found))
        found.update((deployment.name, deployment) for deployment in batch)
        if len(batch) < page:
            return found
