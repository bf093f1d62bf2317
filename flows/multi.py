"""`run_all_audits`: audit every configured study in one flow, spread over one cluster.

Each study is one `audit-<STUDY>` task that runs the `nightly_audit` flow as a subflow, so every
study keeps its own run (name, logs, lock, outputs) under the parent run. With threads, studies run
concurrently in the parent's process. With `--runner dask`, each study's task runs on a worker of the
one cluster, as a unit (its subflow's tasks in that worker's threads): the parent process holds no
study's data, only each study's outcome, and a worker holds one study at a time (one thread per
worker), so the cluster's size, not the parent's memory, bounds how many studies a night can audit.

A study that fails does not stop the others. The parent run fails at the end when any study failed
or had nothing to audit, and names them; a study whose lock is held by another audit is reported as
LOCKED and does not fail the parent (that study is being audited, by someone else).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cluster_checks import connected_workers
from flows.config import ConfigError, StudyConfig, load_config_dir
from flows.runners import RunnerChoice, RunnerKind, local_cluster


class StudyStatus(StrEnum):
    COMPLETED = "COMPLETED"
    LOCKED = "LOCKED"  # another audit of the study holds the lock: skipped, not a failure
    NOTHING_TO_AUDIT = "NOTHING_TO_AUDIT"
    FAILED = "FAILED"


@dataclass(frozen=True)
class StudyOutcome:
    """How one study's audit ended inside a run-all; `summary` is the flow's summary as a dict."""

    study: str
    status: StudyStatus
    message: str = ""
    summary: dict[str, Any] | None = None
    audited_by: str = ""  # host and process id of the process that ran the study's audit (a Dask worker's)

    @property
    def failed(self) -> bool:
        return self.status in (StudyStatus.FAILED, StudyStatus.NOTHING_TO_AUDIT)


@dataclass(frozen=True)
class RunAllSummary:
    outcomes: list[StudyOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[StudyOutcome]:
        return [o for o in self.outcomes if o.failed]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StudiesFailedError(RuntimeError):
    """At least one study of a run-all failed; `summary` holds every study's outcome."""

    def __init__(self, summary: RunAllSummary) -> None:
        names = ", ".join(f"{o.study} ({o.status.value}: {o.message})" for o in summary.failed)
        super().__init__(f"{len(summary.failed)} of {len(summary.outcomes)} studies not audited: {names}")
        self.summary = summary


def outcome_of(study: str, audit: Callable[[], Any]) -> StudyOutcome:
    """Run one study's audit and turn how it ended into an outcome; never raises for the study's errors.

    Only the error's type and message are kept: they never hold record contents (stage errors name
    sites, files and rows, not values).
    """
    from flows.nightly import NothingToAuditError
    from publication import AuditLockedError

    try:
        summary = audit()
    except AuditLockedError as error:
        return StudyOutcome(study, StudyStatus.LOCKED, str(error))
    except NothingToAuditError as error:
        return StudyOutcome(study, StudyStatus.NOTHING_TO_AUDIT, str(error))
    except Exception as error:
        return StudyOutcome(study, StudyStatus.FAILED, f"{type(error).__name__}: {error}")
    as_dict = summary.as_dict() if hasattr(summary, "as_dict") else None
    return StudyOutcome(study, StudyStatus.COMPLETED, "", as_dict)


@task(name="audit-study", task_run_name="audit-{config.study}", cache_policy=NO_CACHE)
def audit_study_task(config: StudyConfig, as_of: str | None, runner: RunnerChoice) -> StudyOutcome:
    """One study's nightly audit as a subflow, its tasks on `runner` (threads of the process running it)."""
    from datetime import date

    from flows.nightly import nightly_audit

    params = config.flow_parameters(date.fromisoformat(as_of) if as_of else None)
    subflow = nightly_audit.with_options(task_runner=runner.task_runner())
    outcome = replace(outcome_of(config.study, lambda: subflow(**params)),
                      audited_by=f"{socket.gethostname()}:{os.getpid()}")
    log = get_run_logger()
    if outcome.status is StudyStatus.COMPLETED:
        log.info("study %s audited (by %s)", config.study, outcome.audited_by)
    else:
        log.warning("study %s: %s", config.study, outcome.status.value)
    return outcome


@contextmanager
def shared_cluster(choice: RunnerChoice) -> Iterator[RunnerChoice]:
    """The runner every study's subflow uses: with Dask and no address, one local cluster for all."""
    if choice.kind is not RunnerKind.DASK or choice.dask_address:
        yield choice
        return
    cluster = local_cluster(n_workers=choice.dask_workers, threads_per_worker=choice.threads_per_worker)
    try:
        yield RunnerChoice(RunnerKind.DASK, dask_address=cluster.scheduler_address)
    finally:
        cluster.close()


def _audit_studies(configs: list[StudyConfig], as_of: str | None, runner: RunnerChoice) -> list[StudyOutcome]:
    """Every study's outcome, in the configs' order: on the cluster's workers with Dask (each study a unit
    there, audited with threads of that worker), else concurrently in this process's threads."""
    if runner.kind is not RunnerKind.DASK:
        futures = [audit_study_task.submit(config, as_of, runner) for config in configs]
        return [future.result() for future in futures]
    from prefect_dask import DaskTaskRunner

    with DaskTaskRunner(address=runner.dask_address) as cluster:
        connected_workers(cluster, get_run_logger())  # none after the wait: the run fails, no study queued
        futures = [cluster.submit(audit_study_task, {"config": config, "as_of": as_of, "runner": RunnerChoice()})
                   for config in configs]
        return [future.result() for future in futures]


def _run_all_name() -> str:
    from prefect.runtime import flow_run

    as_of = flow_run.parameters.get("as_of") or "tonight"
    return f"all-studies-as-of-{as_of}"


@flow(name="run_all_audits", flow_run_name=_run_all_name, task_runner=ThreadPoolTaskRunner(max_workers=8))  # type: ignore[arg-type]
def run_all_audits(config_dir: str, as_of: str | None = None, runner: str = "thread",
                   dask_address: str | None = None, dask_workers: int = 2) -> RunAllSummary:
    """Audit every study configured in `config_dir`; fail at the end if any study failed."""
    log = get_run_logger()
    broken: list[tuple[Path, str]] = []
    configs = load_config_dir(Path(config_dir), broken)
    # a study file that cannot be loaded fails its study, not the others' night (a user trial: one typo, no study)
    unloadable = [StudyOutcome(path.name, StudyStatus.FAILED, f"ConfigError: {message}") for path, message in broken]
    for outcome in unloadable:
        log.error("%s: not audited: %s", outcome.study, outcome.message)
    if not configs:
        raise ConfigError("; ".join(message for _, message in broken) or f"{config_dir}: no study to audit")
    choice = RunnerChoice(RunnerKind(runner), dask_address=dask_address, dask_workers=dask_workers)
    log.info("auditing %d studies (%s) on %s", len(configs), ", ".join(c.study for c in configs),
             choice.describe())
    with shared_cluster(choice) as shared:
        summary = RunAllSummary([*unloadable, *_audit_studies(configs, as_of, shared)])
    for outcome in summary.outcomes:
        log.info("%s: %s", outcome.study, outcome.status.value)
    if summary.failed:
        raise StudiesFailedError(summary)
    return summary
