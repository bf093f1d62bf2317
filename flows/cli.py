"""`screening-audit`: the command line of the nightly screening audit."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flows.cli_options import EndpointUrl
from flows.review_cli import review_app
from flows.runners import DEFAULT_DASK_WORKERS, RunnerChoice, RunnerKind
from flows.terminal import print_table

#: Prefect settings for a command-line run, unless the operator set them: no telemetry from a
#: clinical-data host (the server's analytics, the client's SDK events), and patience with the
#: temporary API server on a busy machine.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}
for _name, _value in PREFECT_DEFAULTS.items():
    os.environ.setdefault(_name, _value)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.add_typer(review_app, name="review")
console = Console(stderr=True)

def _iso_date(value: str | None) -> str | None:
    """An option that must be a date: a wrong one is a usage error (exit 2, one line), not a traceback."""
    if value is not None:
        try:
            # YYYY-MM-DD only: Python also reads 20261205 and 2026-W49-6, which name runs and folders otherwise
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise ValueError(value)
            date.fromisoformat(value)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None
    return value


AsOf = Annotated[str | None, typer.Option(help="Audit date YYYY-MM-DD (default: tonight in the study's time zone).",
                                          callback=_iso_date)]
Runner = Annotated[RunnerKind, typer.Option(help="Where tasks run: thread (this process) or dask (a Dask cluster).")]
DaskAddress = Annotated[
    str | None, typer.Option(help="Scheduler of an existing Dask cluster (tcp://host:8786); default: a local one.")
]
DaskWorkers = Annotated[int, typer.Option(min=1, help="Worker processes of the local Dask cluster.")]
ProtocolOption = Annotated[str | None, typer.Option(
    help="A protocol version file (the files beside it with the same id are its other versions) or a folder of "
         "version files, a path or an s3:// URI; default: the bundled SZ003, contracts/protocols/sz003.yaml in "
         "the source tree (a study's own file starts as a copy of it, docs/criteria.md).")]


def _fail(message: str, code: int) -> typer.Exit:
    console.print(message, soft_wrap=True)
    return typer.Exit(code)


def _say(message: str) -> None:
    """One line of a long-running command's log (never wrapped: logs are read by grep and journald)."""
    console.print(message, soft_wrap=True, markup=False)


def _runner(runner: RunnerKind, dask_address: str | None, dask_workers: int) -> RunnerChoice:
    try:
        return RunnerChoice(runner, dask_address=dask_address, dask_workers=dask_workers)
    except ValueError as error:
        raise _fail(f"[red]error:[/red] {error}", 2) from None


def _check_cluster(choice: RunnerChoice) -> None:
    """With --dask-address, the scheduler must answer before the flow starts: else one line, exit 1."""
    from flows.cluster_checks import DaskClusterError, check_scheduler_answers, worker_wait_seconds

    if not choice.dask_address:
        return
    try:
        worker_wait_seconds()
    except ValueError as error:
        raise _fail(f"[red]error:[/red] {error}", 2) from None
    try:
        check_scheduler_answers(choice.dask_address)
    except DaskClusterError as error:
        raise _fail(f"[red]audit failed, nothing published:[/red] {error}", 1) from None
    from runtime.prefect_api import needs_temporary_api

    if needs_temporary_api():
        # the workers' task runs reach Prefect as events, sent to the API each worker process first
        # used; a temporary API on this machine's loopback is out of reach of other machines
        console.print(f"[yellow]warning:[/yellow] PREFECT_API_URL is not set, so this run reports to a temporary "
                          f"Prefect API on this machine's loopback: workers of {choice.dask_address} on other "
                          f"machines cannot reach it, and their task runs will be missing from the run's page. "
                          f"Set PREFECT_API_URL to a Prefect server for this command and for the workers "
                          f"(deploy/README.md \"Several machines\").")


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
        ("query discrepancies", summary.queries),
        ("new since last run", summary.new),
    ]:
        table.add_row(label, str(value))
    console.print(table)
    for site, why in sorted(summary.sites_not_audited.items()):
        console.print(f"[yellow]site {site} not audited:[/yellow] {why}")


def _run(params: dict, choice: RunnerChoice):
    # The slow things first: Prefect's temporary API server (a subprocess, on the other CPU) starts
    # at once; the flow's imports, then Great Expectations', run while it starts, in this thread
    # (expectations/warmup.py, runtime/prefect_api.py, docs/benchmarks.md).
    from runtime.prefect_api import api_in_use, start_early_prefect_api

    api = start_early_prefect_api()
    from runtime.heap import imports_without_collection

    with imports_without_collection():  # and frozen after (runtime/heap.py)
        from contracts.protocol import ProtocolError
        from expectations.warmup import import_great_expectations
        from flows import nightly
        from flows.console_logs import quiet_console_tracebacks
        from publication import AuditLockedError

        quiet_console_tracebacks()
        import_great_expectations()
    flow_with_runner = nightly.nightly_audit.with_options(task_runner=choice.task_runner())
    try:
        with console.status(f"auditing {params['study']} ({choice.describe()})..."), api_in_use(api):
            return flow_with_runner(**params)
    except nightly.NothingToAuditError as error:
        raise _fail(f"[red]nothing audited:[/red] {error}", 2) from None
    except ProtocolError as error:  # a study paired with another study's protocol: a usage error
        raise _fail(f"[red]error:[/red] {error}", 2) from None
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
    protocol: ProtocolOption = None,
    endpoint_url: EndpointUrl = None,
    runner: Runner = RunnerKind.THREAD,
    dask_address: DaskAddress = None,
    dask_workers: DaskWorkers = DEFAULT_DASK_WORKERS,
) -> None:
    """Run one nightly audit of one study and publish its reports.

    Exit status: 0 published, 1 the audit failed and nothing was published (one line naming the study and
    the place), 2 nothing to audit or a usage or configuration error, 3 another audit of the study holds its
    lease.
    """
    choice = _runner(runner, dask_address, dask_workers)
    params = _run_parameters(config, landing, reports, study, protocol, endpoint_url, as_of)
    _check_cluster(choice)
    summary = _run(params, choice)
    _print_summary(summary)
    if summary.report_link and summary.report_link != summary.report:
        console.print(f"open the report: {summary.report_link}", soft_wrap=True)
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

    Exit status: 0 every study published (or is being audited by another run), 1 a study failed (a study file
    that cannot be loaded fails its study only), 2 the folder itself is wrong or no study file loads.
    """
    from flows.cluster_checks import DaskClusterError
    from flows.config import ConfigError, load_config_dir
    from flows.multi import StudiesFailedError, StudyStatus, run_all_audits

    broken: list[tuple[Path, str]] = []
    try:  # before Prefect starts: a wrong folder is one line and exit 2, not a failed flow's traceback
        loaded = load_config_dir(config_dir, broken)
    except ConfigError as error:
        raise _fail(f"[red]error in the study configuration:[/red] {error}", 2) from None
    for _, message in broken:
        console.print(f"[red]error in the study configuration:[/red] {message} (this study is not audited; the "
                      "others are)")
    if not loaded:
        raise _fail("[red]no study configuration could be loaded[/red]", 2)
    choice = _runner(runner, dask_address, dask_workers)
    _check_cluster(choice)
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
    except DaskClusterError as error:  # no worker joined the scheduler: no study was sent to it
        raise _fail(f"[red]audit failed, nothing published:[/red] {error}", 1) from None
    table = Table(title=f"{len(summary.outcomes)} studies")
    # on an 80-column terminal the status is never cut short (the report or reason folds instead)
    table.add_column("study")
    table.add_column("status", min_width=max(len(status) for status in StudyStatus))
    for column in ("subjects", "important", "query discrepancies"):
        table.add_column(column)
    table.add_column("report or reason", overflow="fold")
    for outcome in summary.outcomes:
        done = outcome.summary or {}
        table.add_row(outcome.study, outcome.status.value, str(done.get("subjects", "")),
                      str(done.get("important", "")), str(done.get("queries", "")),
                      done.get("report") or outcome.message)
    print_table(table, stderr=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def generate(
    out: Annotated[str, typer.Option(help="Where to write deliveries: s3://bucket/prefix or a folder.")],
    sites: Annotated[int, typer.Option(min=1)] = 8,
    subjects: Annotated[int, typer.Option(min=1)] = 400,
    seed: int = 0,
    study: str = "SZ003",
    as_of: Annotated[str | None, typer.Option(help="Audit date the deliveries lead up to (YYYY-MM-DD).",
                                              callback=_iso_date)] = None,
    formats: Annotated[str, typer.Option(help="mixed (realistic variety) or csv.")] = "mixed",
    clean: Annotated[bool, typer.Option("--clean", help="Plant no problems.")] = False,
    profile: Annotated[str, typer.Option(
        help="standard, or dirty: sites with real-world habits at scale (rows exported twice, no reference "
             "ranges, tests never collected, DD/MM/YYYY dates).")] = "standard",
    endpoint_url: EndpointUrl = None,
) -> None:
    """Write DTS-conformant synthetic deliveries (with a ground truth of planted problems)."""
    from generator import generate as generate_study
    from storage import StorageError, open_store

    as_of_date = date.fromisoformat(as_of) if as_of else datetime.now(UTC).date()
    try:
        store = open_store(out, endpoint_url)
        if out.startswith("s3://") and not store.exists():
            raise _fail(f"[red]generate failed:[/red] study {study}: the bucket of {out} does not exist"
                        f"{f' on {endpoint_url}' if endpoint_url else ''}: create it first", 1)
        with console.status("generating deliveries..."):
            summary = generate_study(store, study=study, sites=sites, subjects=subjects, seed=seed,
                                     as_of=as_of_date, formats=formats, plant_problems=not clean, profile=profile)
    except StorageError as error:  # no credentials, access denied...: one line naming the study and the place
        raise _fail(f"[red]generate failed:[/red] {type(error).__name__}: study {study}: {error}", 1) from None
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

    summary, local_report, result, mails = run_demo(out, sites=sites, subjects=subjects, seed=seed, console=console)
    _print_summary(summary)
    console.print(("[green]" if result.perfect else "[yellow]") + result.line())
    # the demo's S3 endpoint stops with the demo: the link is where a real night would have put the report
    console.print(f"published to the demo's local S3 endpoint (stopped now; the same files are below): "
                  f"{summary.report}")
    for mail in mails:
        console.print(f"morning digest mailed to the local SMTP server, saved as {mail}")
    console.print(f"site outbox (each site's query files): {local_report.parents[2] / 'outbox'}")
    typer.echo(f"report: {local_report}")


@app.command()
def expectations(
    protocol: ProtocolOption = None,
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
    print_table(table)


@app.command()
def deploy(
    config_dir: Annotated[Path, typer.Option(help="Folder of study configuration files (*.yaml).")],
    pool: Annotated[str, typer.Option(help="Prefect work pool the deployments are queued in.")] = "screening-audit",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the files and show the deployments; "
                                                            "contact no server.")] = False,
) -> None:
    """Create or update one Prefect deployment per study file; pause those whose file is gone.

    Needs PREFECT_API_URL (the server the workers poll) and the work pool. `${NAME}` in a study file
    is not resolved here: the worker resolves it at each run. Exit status: 0 done, 2 a study file or
    the server/pool is wrong.
    """
    from flows.config import ConfigError
    from flows.deployments import DeployError, plan
    from flows.deployments import deploy as deploy_studies

    try:
        planned = plan(config_dir)
        if dry_run:
            outcomes = None
        else:
            with console.status(f"deploying {len(planned)} studies..."):
                outcomes = deploy_studies(config_dir, pool)
    except ConfigError as error:
        raise _fail(f"[red]error in the study configuration:[/red] {error}", 2) from None
    except DeployError as error:
        raise _fail(f"[red]not deployed:[/red] {error}", 2) from None
    table = Table(title=f"{len(planned)} studies from {config_dir}" + (" (dry run)" if dry_run else ""))
    for column in ("deployment", "study", "schedule", "worker needs", "action"):
        table.add_column(column)
    actions = {o.name: o.action.value for o in outcomes or []}
    for item in planned:
        table.add_row(item.full_name, item.study, f"{item.cron} ({item.timezone})",
                      ", ".join(item.environment) or "-", actions.get(item.name, "-"))
    for outcome in outcomes or []:
        if outcome.action.value == "paused":
            table.add_row(f"nightly_audit/{outcome.name}", outcome.study, "-", "-", f"paused: {outcome.detail}")
    print_table(table)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    pool: Annotated[str, typer.Option(help="Prefect work pool to poll.")] = "screening-audit",
    grace: Annotated[float, typer.Option(min=0, help="Seconds flow runs in progress get to end cleanly "
                                                     "when the worker is stopped.")] = 60,
) -> None:
    """Run Prefect's process worker; on SIGTERM, end the nights in progress cleanly, then stop it.

    Extra options go to `prefect worker start` (e.g. `--limit 4`). See deploy/README.md for the
    systemd unit (TimeoutStopSec, KillMode=mixed).
    """
    from runtime.worker import run_worker

    raise typer.Exit(run_worker(["--pool", pool, *ctx.args], grace, _say))


@app.command("local-s3")
def local_s3(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 9000,
    bucket: Annotated[list[str] | None, typer.Option(help="A bucket to create (repeat the option).")] = None,
) -> None:
    """Serve a local S3-compatible endpoint (moto) on 127.0.0.1 for a trial, until Ctrl-C or SIGTERM.

    In memory only: everything written to it is gone when it stops. Any access key is accepted, so it
    never needs (and must never be given) a real credential. Needs the `demo` extra.
    """
    import importlib.util

    if importlib.util.find_spec("moto") is None:
        raise _fail("[red]error:[/red] the local S3 endpoint needs moto: install the `demo` extra "
                    "(`uv sync --extra demo`, or `make install`)", 2)
    from runtime.local_s3 import InvalidBucketName, PortInUse, serve_local_s3

    try:
        serve_local_s3(port, tuple(bucket or ()), _say)
    except (PortInUse, InvalidBucketName) as error:
        raise _fail(f"[red]error:[/red] {error}", 2) from None


@app.command()
def unlock(
    reports: Annotated[str, typer.Option(help="Reports root of the study: s3://bucket/prefix or a local folder.")],
    study: Annotated[str, typer.Option(help="Study whose audit lease to release.")],
    force: Annotated[bool, typer.Option("--force", help="Release the lease even if its holder looks alive.")] = False,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Release a study's audit lease after a crash, on the record (docs/operations.md).

    Without --force, only a lease that is already free (its holder ended on this host, or it was not
    renewed in time) is released. Every release is logged and recorded under _audit/<STUDY>/unlocks/.
    Exit status: 0 released (or nothing to release), 3 the holder looks alive (nothing done), 1 error
    (one line naming the study and the place).
    """
    import logging

    from publication import UnlockRefused
    from publication import unlock as release_lease
    from storage import StorageError, open_store

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"))
    log = logging.getLogger("screening_audit.unlock")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        result = release_lease(open_store(reports, endpoint_url), study, force=force)
    except UnlockRefused as error:
        raise _fail(f"[yellow]not released:[/yellow] {error}", 3) from None
    except StorageError as error:  # no bucket, no credentials, access denied...: one line, study and place
        raise _fail(f"[red]unlock failed:[/red] {type(error).__name__}: {error.in_context(f'study {study}, reports')}",
                    1) from None
    except (OSError, ValueError) as error:
        raise _fail(f"[red]unlock failed:[/red] {type(error).__name__}: study {study}: {error}", 1) from None
    _say(result.message)
    for note in result.pending:
        _say(f"the next run of {study} will clean up {note}")


@app.command("check-protocol")
def check_protocol(
    file: Annotated[str, typer.Argument(help="A protocol version file (its siblings are the other versions), a "
                                             "folder of version files, or a draft amendment; a path or an s3:// "
                                             "URI.")],
    units: Annotated[str | None, typer.Option(help="The study's unit catalog, a path or an s3:// URI; default: the "
                                                   "bundled one.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too.")] = False,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Check a protocol before a night runs it: schema errors, tests unknown to the unit catalog, unused
    parameters, criteria the IE checklist cannot answer, overlapping versions; each with file and line.

    Exit status: 0 no error (warnings are printed), 1 errors (or warnings with --strict), 2 unusable input.
    """
    from contracts.datafile import DataFileError
    from contracts.protocol_lint import Level, lint_protocol
    from flows.config_files import load_units_at, local_protocol

    try:
        catalog = load_units_at(units, endpoint_url) if units else None
        with local_protocol(file, endpoint_url) as (path, folder, called):
            findings = lint_protocol(path, catalog)
            # a file of an S3 copy is named by its URI, as the night that reads it names it
            lines = [finding.line().replace(str(folder), called) for finding in findings]
    except DataFileError as error:
        raise _fail(f"[red]error:[/red] {error}", 2) from None
    except Exception as error:  # an object or bucket that is not there, a file that is no text: one line naming it
        raise _fail(f"[red]error:[/red] {type(error).__name__}: {error}", 2) from None
    for line in lines:
        typer.echo(line)
    errors = sum(f.level is Level.ERROR for f in findings)
    warnings = len(findings) - errors
    console.print(f"{file}: {errors} error(s), {warnings} warning(s)", soft_wrap=True)
    if errors or (strict and warnings):
        raise typer.Exit(1)


@app.command()
def schemas(
    out: Annotated[Path | None, typer.Option(help="Folder to write into; default: docs/schemas of the source "
                                                  "tree.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Only check that the published schemas are current.")] = False,
) -> None:
    """Write the JSON Schemas of the YAML files (protocol, units, process checks, policy, suites, study
    configuration) from their models, for editors to check files as they are typed."""
    from flows.schemas import stale_schemas, write_schemas

    if check:
        stale = stale_schemas(out)
        if stale:
            raise _fail(f"[red]out of date:[/red] {', '.join(stale)} (run `screening-audit schemas`)", 1)
        console.print("schemas are up to date")
        return
    for path in write_schemas(out):
        typer.echo(str(path))


def _whatif_parameters(config: Path | None, landing: str | None, reports: str | None, study: str | None,
                       baseline: str | None, draft: str, endpoint_url: str | None, as_of: str | None) -> dict:
    """The what-if flow's parameters: the study configuration's (landing, reports, protocol, units, process
    checks, policy, time zone), or the command line's; reports default to the current folder."""
    from flows.config import ConfigError, load_config

    params: dict = {"draft": str(Path(draft).expanduser().resolve()), "as_of": as_of}
    if config is not None:
        try:
            study_config = load_config(config)
        except ConfigError as error:
            raise _fail(f"[red]error in the study configuration:[/red] {error}", 2) from None
        params.update({key: value for key, value in study_config.flow_parameters().items()
                       if key in ("landing", "reports", "study", "protocol", "units", "process_checks", "policy",
                                  "timezone", "endpoint_url")})
        params["endpoint_url"] = study_config.endpoint_url or endpoint_url
    else:
        if not landing:
            raise _fail("[red]error:[/red] give --landing (and optionally --reports), or --config FILE", 2)
        params.update(landing=landing, reports=".", study="SZ003", protocol=None, endpoint_url=endpoint_url)
    for key, value in (("landing", landing), ("reports", reports), ("study", study), ("protocol", baseline)):
        if value:
            params[key] = value
    return params


@app.command()
def whatif(
    protocol: Annotated[str, typer.Option(help="The draft amendment (a protocol version file, usually with "
                                               "`draft: true`).")],
    landing: Annotated[str | None, typer.Option(help="Landing root: s3://bucket/prefix or a local folder.")] = None,
    reports: Annotated[str | None, typer.Option(help="Reports root the what-if pages go under (default: the "
                                                     "configuration's, else the current folder).")] = None,
    config: Annotated[Path | None, typer.Option(help="Study configuration file: landing, reports, the protocol "
                                                     "in force and the study's data files.")] = None,
    study: Annotated[str | None, typer.Option(help="Study id (folder under the landing root); default SZ003.")] = None,
    baseline: Annotated[str | None, typer.Option(help="The protocol in force (a version file or folder); default: "
                                                      "the configuration's, else the bundled SZ003 "
                                                      "(contracts/protocols/sz003.yaml).")] = None,
    as_of: AsOf = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Re-evaluate the delivered data under a draft amendment: which subjects would change outcome, per
    criterion and site (screen failures that would have been eligible, enrolled subjects who would become
    ineligible, new UNVERIFIABLE results). Writes whatif.html and whatif.xlsx under
    <reports>/<STUDYID>/whatif/<AS_OF>/<draft version>/.

    Exit status: 0 written, 2 nothing to audit or an unusable draft / file, 1 any other failure.
    """
    params = _whatif_parameters(config, landing, reports, study, baseline, protocol, endpoint_url, as_of)
    from runtime.prefect_api import api_in_use, start_early_prefect_api

    api = start_early_prefect_api()
    from runtime.heap import imports_without_collection

    with imports_without_collection():  # and frozen after (runtime/heap.py)
        from contracts.datafile import DataFileError
        from expectations.warmup import import_great_expectations
        from flows import nightly
        from flows.console_logs import quiet_console_tracebacks
        from flows.whatif import DraftMismatchError, whatif_audit

        quiet_console_tracebacks()
        import_great_expectations()  # while the API server starts (expectations/warmup.py)
    try:
        with console.status(f"what-if for {params['study']}..."), api_in_use(api):
            summary = whatif_audit(**params)
    except (nightly.NothingToAuditError, DataFileError, DraftMismatchError) as error:
        raise _fail(f"[red]what-if not run:[/red] {error}", 2) from None
    except Exception as error:  # an unreachable endpoint...: one clear line, exit 1
        raise _fail(f"[red]what-if failed:[/red] {type(error).__name__}: {error}", 1) from None
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    table = Table(title=f"What-if {summary.draft} for {summary.study} as of {summary.as_of} "
                        f"(in force: {summary.baseline})")
    table.add_column("subjects")
    table.add_column("count", justify="right")
    table.add_row("screened", str(summary.subjects))
    for change, count in summary.changes.items():
        table.add_row(change.replace("_", " ").lower(), str(count))
    table.add_row("with new UNVERIFIABLE results", str(summary.unverifiable_subjects))
    console.print(table)
    typer.echo(summary.report)


if __name__ == "__main__":
    app()
