"""`screening-audit`: the command line of the nightly screening audit."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flows.runners import DEFAULT_DASK_WORKERS, RunnerChoice, RunnerKind

#: Prefect settings for a command-line run, unless the operator set them: no telemetry from a
#: clinical-data host, and patience with the temporary API server on a busy machine.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}
for _name, _value in PREFECT_DEFAULTS.items():
    os.environ.setdefault(_name, _value)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)

Landing = Annotated[str, typer.Option(help="Landing root: s3://bucket/prefix or a local folder.")]
Reports = Annotated[str, typer.Option(help="Reports root: s3://bucket/prefix or a local folder.")]
EndpointUrl = Annotated[
    str | None,
    typer.Option(help="S3-compatible endpoint (MinIO, moto...); AWS_ENDPOINT_URL works too.",
                 envvar="AWS_ENDPOINT_URL"),
]
AsOf = Annotated[str | None, typer.Option(help="Audit date YYYY-MM-DD (default: tonight in the study's time zone).")]
Runner = Annotated[RunnerKind, typer.Option(help="Where tasks run: thread (this process) or dask (a Dask cluster).")]
DaskAddress = Annotated[
    str | None, typer.Option(help="Scheduler of an existing Dask cluster (tcp://host:8786); default: a local one.")
]
DaskWorkers = Annotated[int, typer.Option(min=1, help="Worker processes of the local Dask cluster.")]


def _fail(message: str, code: int) -> typer.Exit:
    console.print(message, soft_wrap=True)
    return typer.Exit(code)


def _runner(runner: RunnerKind, dask_address: str | None, dask_workers: int) -> RunnerChoice:
    try:
        return RunnerChoice(runner, dask_address=dask_address, dask_workers=dask_workers)
    except ValueError as error:
        raise _fail(f"[red]error:[/red] {error}", 2) from None


def _print_summary(summary) -> None:
    table = Table(title=f"{summary.study} screening audit as of {summary.as_of} ({summary.protocol})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, value in [
        ("sites audited", summary.sites_audited),
        ("sites not audited", len(summary.sites_not_audited)),
        ("subjects screened", summary.subjects),
        ("subjects enrolled", summary.enrolled),
        ("important deviations", summary.important),
        ("queries", summary.queries),
        ("new since last run", summary.new),
    ]:
        table.add_row(label, str(value))
    console.print(table)
    for site, why in sorted(summary.sites_not_audited.items()):
        console.print(f"[yellow]site {site} not audited:[/yellow] {why}")


def _run(params: dict, choice: RunnerChoice):
    # The slow things first, each as soon as it can start: Prefect's temporary API server (a
    # subprocess, on the other CPU), then the Great Expectations import (a thread); the flow's own
    # imports overlap both (runtime/prefect_api.py, docs/benchmarks.md).
    from runtime.prefect_api import api_in_use, start_early_prefect_api

    api = start_early_prefect_api()
    from expectations.warmup import start_background_import

    start_background_import()
    from flows import nightly
    from flows.console_logs import quiet_console_tracebacks
    from publication import AuditLockedError

    quiet_console_tracebacks()
    flow_with_runner = nightly.nightly_audit.with_options(task_runner=choice.task_runner())
    try:
        with console.status(f"auditing {params['study']} ({choice.describe()})..."), api_in_use(api):
            return flow_with_runner(**params)
    except nightly.NothingToAuditError as error:
        raise _fail(f"[red]nothing audited:[/red] {error}", 2) from None
    except AuditLockedError as error:
        raise _fail(f"[yellow]not run:[/yellow] {error}", 3) from None
    except Exception as error:  # an unreachable endpoint, a broken protocol file...: one clear line, exit 1
        raise _fail(f"[red]audit failed, nothing published:[/red] {type(error).__name__}: {error}", 1) from None


def _run_parameters(config: str | None, landing: str | None, reports: str | None, study: str | None,
                    protocol: str | None, endpoint_url: str | None, as_of: str | None) -> dict:
    """The flow's parameters from a study configuration file, or from the command line."""
    from flows.config import ConfigError, load_config

    if config is None:
        if not landing or not reports:
            raise _fail("[red]error:[/red] give --landing and --reports, or --config FILE", 2)
        return {"landing": landing, "reports": reports, "study": study or "SZ003", "protocol": protocol,
                "as_of": as_of, "endpoint_url": endpoint_url}
    if landing or reports or study or protocol:
        raise _fail("[red]error:[/red] give either --config or --landing/--reports/--study/--protocol: "
                    "the configuration file already says them", 2)
    try:
        study_config = load_config(config, endpoint_url)
    except ConfigError as error:
        raise _fail(f"[red]error in the study configuration:[/red] {error}", 2) from None
    params = study_config.flow_parameters(date.fromisoformat(as_of) if as_of else None)
    params["endpoint_url"] = study_config.endpoint_url or endpoint_url
    return params


@app.command()
def run(
    landing: Annotated[str | None, typer.Option(help="Landing root: s3://bucket/prefix or a local folder.")] = None,
    reports: Annotated[str | None, typer.Option(help="Reports root: s3://bucket/prefix or a local folder.")] = None,
    config: Annotated[str | None, typer.Option(
        help="Study configuration file (YAML), a path or an s3:// URI: landing, reports, protocol, expected sites, "
             "time zone.")] = None,
    as_of: AsOf = None,
    study: Annotated[str | None, typer.Option(help="Study id (folder under the landing root); default SZ003.")] = None,
    protocol: Annotated[str | None, typer.Option(
        help="Protocol file (YAML), a path or an s3:// URI; default: bundled SZ003.")] = None,
    endpoint_url: EndpointUrl = None,
    runner: Runner = RunnerKind.THREAD,
    dask_address: DaskAddress = None,
    dask_workers: DaskWorkers = DEFAULT_DASK_WORKERS,
) -> None:
    """Run one nightly audit of one study and publish its reports.

    Exit status: 0 published, 2 nothing to audit (or a usage error), 3 another audit of the study is running.
    """
    if as_of:
        date.fromisoformat(as_of)
    choice = _runner(runner, dask_address, dask_workers)
    params = _run_parameters(config, landing, reports, study, protocol, endpoint_url, as_of)
    summary = _run(params, choice)
    _print_summary(summary)
    typer.echo(summary.report)


@app.command("run-all")
def run_all(
    config_dir: Annotated[Path, typer.Option(help="Folder of study configuration files (*.yaml).")],
    as_of: AsOf = None,
    runner: Runner = RunnerKind.THREAD,
    dask_address: DaskAddress = None,
    dask_workers: DaskWorkers = DEFAULT_DASK_WORKERS,
) -> None:
    """Audit every configured study in one flow run (concurrently; with --runner dask, on one cluster).

    Exit status: 0 every study published (or is being audited by another run), 1 a study failed.
    """
    from flows.config import ConfigError
    from flows.multi import StudiesFailedError, run_all_audits

    if as_of:
        date.fromisoformat(as_of)
    choice = _runner(runner, dask_address, dask_workers)
    from runtime.prefect_api import api_in_use, start_early_prefect_api

    api = start_early_prefect_api()
    try:
        with api_in_use(api), console.status(f"auditing every study in {config_dir} ({choice.describe()})..."):
            summary = run_all_audits(config_dir=str(config_dir), as_of=as_of, runner=choice.kind.value,
                                     dask_address=choice.dask_address, dask_workers=choice.dask_workers)
        failed = False
    except ConfigError as error:
        raise _fail(f"[red]error in the study configuration:[/red] {error}", 2) from None
    except StudiesFailedError as error:
        summary, failed = error.summary, True
    table = Table(title=f"{len(summary.outcomes)} studies")
    for column in ("study", "status", "subjects", "important", "queries", "report or reason"):
        table.add_column(column)
    for outcome in summary.outcomes:
        done = outcome.summary or {}
        table.add_row(outcome.study, outcome.status.value, str(done.get("subjects", "")),
                      str(done.get("important", "")), str(done.get("queries", "")),
                      done.get("report") or outcome.message)
    console.print(table)
    if failed:
        raise typer.Exit(1)


@app.command()
def generate(
    out: Annotated[str, typer.Option(help="Where to write deliveries: s3://bucket/prefix or a folder.")],
    sites: Annotated[int, typer.Option(min=1)] = 8,
    subjects: Annotated[int, typer.Option(min=1)] = 400,
    seed: int = 0,
    study: str = "SZ003",
    as_of: Annotated[str | None, typer.Option(help="Audit date the deliveries lead up to.")] = None,
    formats: Annotated[str, typer.Option(help="mixed (realistic variety) or csv.")] = "mixed",
    clean: Annotated[bool, typer.Option("--clean", help="Plant no problems.")] = False,
    profile: Annotated[str, typer.Option(
        help="standard, or dirty: sites with real-world habits at scale (rows exported twice, no reference "
             "ranges, tests never collected, DD/MM/YYYY dates).")] = "standard",
    endpoint_url: EndpointUrl = None,
) -> None:
    """Write DTS-conformant synthetic deliveries (with a ground truth of planted problems)."""
    from generator import generate as generate_study
    from storage import open_store

    as_of_date = date.fromisoformat(as_of) if as_of else datetime.now(UTC).date()
    with console.status("generating deliveries..."):
        try:
            summary = generate_study(open_store(out, endpoint_url), study=study, sites=sites, subjects=subjects,
                                     seed=seed, as_of=as_of_date, formats=formats, plant_problems=not clean,
                                     profile=profile)
        except ValueError as error:  # an unknown profile or format: one line
            raise _fail(f"[red]error:[/red] {error}", 2) from None
    console.print(f"wrote {summary.subjects} subjects at {summary.sites} sites to {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Local folder for the demo's reports.")] = Path("demo-output"),
    sites: int = 8,
    subjects: int = 400,
    seed: int = 7,
) -> None:
    """Start a local S3 endpoint, generate a study, audit it, and print where the report is."""
    import importlib.util

    if importlib.util.find_spec("moto") is None:
        raise _fail("[red]error:[/red] the demo's local S3 endpoint needs moto: install the `demo` extra "
                    "(`uv sync --extra demo`, or `make demo`)", 2)
    from flows.demo import run_demo

    summary, local_report, result = run_demo(out, sites=sites, subjects=subjects, seed=seed, console=console)
    _print_summary(summary)
    console.print(("[green]" if result.perfect else "[yellow]") + result.line())
    console.print(f"sponsor bucket copy: {summary.report}")
    typer.echo(f"report: {local_report}")


@app.command()
def expectations(
    protocol: Annotated[str | None, typer.Option(
        help="Protocol file (YAML), a path or an s3:// URI; default: bundled SZ003.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    endpoint_url: EndpointUrl = None,
) -> None:
    """List the data-quality expectations a run checks, for review."""
    from expectations import list_expectations
    from flows.config_files import load_protocol_at

    try:
        loaded = load_protocol_at(protocol, endpoint_url)
    except Exception as error:  # a missing object, a broken file: one clear line naming it
        raise _fail(f"[red]error:[/red] {type(error).__name__}: {error}", 2) from None
    items = list_expectations(loaded)
    if as_json:
        json.dump(items, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    table = Table(title=f"{len(items)} expectations")
    for column in ("domain", "expectation", "meaning"):
        table.add_column(column)
    for item in items:
        table.add_row(str(item.get("domain", "")), str(item.get("expectation", item.get("type", ""))),
                      str(item.get("meaning", "")))
    Console().print(table)


if __name__ == "__main__":
    app()
