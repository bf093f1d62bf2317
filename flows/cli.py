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


def _run(landing: str, reports: str, study: str, protocol: str | None, as_of: str | None,
         endpoint_url: str | None):
    from flows.nightly import NothingToAuditError, nightly_audit

    try:
        with console.status(f"auditing {study}..."):
            return nightly_audit(landing=landing, reports=reports, study=study, protocol=protocol,
                                 as_of=as_of, endpoint_url=endpoint_url)
    except NothingToAuditError as error:
        console.print(f"[red]nothing audited:[/red] {error}")
        raise typer.Exit(2) from None


@app.command()
def run(
    landing: Landing,
    reports: Reports,
    as_of: Annotated[str | None, typer.Option(help="Audit date YYYY-MM-DD (default: today, UTC).")] = None,
    study: Annotated[str, typer.Option(help="Study id (folder under the landing root).")] = "SZ003",
    protocol: Annotated[str | None, typer.Option(help="Protocol file (YAML); default: bundled SZ003.")] = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Run one nightly audit of one study and publish its reports."""
    if as_of:
        date.fromisoformat(as_of)
    summary = _run(landing, reports, study, protocol, as_of, endpoint_url)
    _print_summary(summary)
    typer.echo(summary.report)


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
    endpoint_url: EndpointUrl = None,
) -> None:
    """Write DTS-conformant synthetic deliveries (with a ground truth of planted problems)."""
    from generator import generate as generate_study
    from storage import open_store

    as_of_date = date.fromisoformat(as_of) if as_of else datetime.now(UTC).date()
    with console.status("generating deliveries..."):
        summary = generate_study(open_store(out, endpoint_url), study=study, sites=sites, subjects=subjects,
                                 seed=seed, as_of=as_of_date, formats=formats, plant_problems=not clean)
    console.print(f"wrote {summary.subjects} subjects at {summary.sites} sites to {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Local folder for the demo's reports.")] = Path("demo-output"),
    sites: int = 8,
    subjects: int = 400,
    seed: int = 7,
) -> None:
    """Start a local S3 endpoint, generate a study, audit it, and print where the report is."""
    from flows.demo import run_demo

    summary, local_report, result = run_demo(out, sites=sites, subjects=subjects, seed=seed, console=console)
    _print_summary(summary)
    console.print(("[green]" if result.perfect else "[yellow]") + result.line())
    console.print(f"sponsor bucket copy: {summary.report}")
    typer.echo(f"report: {local_report}")


@app.command()
def expectations(
    protocol: Annotated[str | None, typer.Option(help="Protocol file (YAML); default: bundled SZ003.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the data-quality expectations a run checks, for review."""
    from checks import load_protocol
    from expectations import list_expectations

    items = list_expectations(load_protocol(protocol))
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
