"""`screening-audit review ...`: the sponsor's review from the command line (the logic is in review/).

Every command takes --reports, --study and --endpoint-url. Exit status: 0 done; 2 bad input (an
unknown finding, state or action, a transition that is not allowed, a missing --by or text, a workbook
refused as a whole): one line on stderr and nothing written; 1 the ledger fails verification or the
storage failed (one line naming the problem); `import` exits 4 when some rows were applied and others
refused (the receipt lists them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flows.cli_options import EndpointUrl, Reports
from flows.terminal import print_table

review_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="The sponsor's review: list findings, show a thread, record actions, import workbooks, "
                              "export the trail.")
_err = Console(stderr=True)

Study = Annotated[str, typer.Option(help="Study id (folder under the reports root).")]
PARTLY_APPLIED = 4


def _store(reports: str, endpoint_url: str | None):
    from storage import open_store

    return open_store(reports, endpoint_url)


def _run(action):
    """Run a command's work, turning its known failures into one line and an exit status."""
    from review.append import LedgerBusyError
    from review.commands import ReviewInputError
    from review.ledger import LedgerIntegrityError
    from storage import StorageError, UnsafeKeyError

    try:
        return action()
    except ReviewInputError as error:
        _err.print(f"[red]error:[/red] {error}", soft_wrap=True, markup=True, highlight=False)
        raise typer.Exit(2) from None
    except (LedgerIntegrityError, LedgerBusyError, StorageError, UnsafeKeyError) as error:
        _err.print(f"[red]error:[/red] {error}", soft_wrap=True, markup=True, highlight=False)
        raise typer.Exit(1) from None


#: what a terminal table shows of a listing (csv and json give every column)
TABLE_COLUMNS = ["FINDING_ID", "SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "STATUS", "REVIEW_STATE",
                 "REVIEWED_BY", "SITE_QUERY"]
_NO_WRAP = {"FINDING_ID", "EVIDENCE_HASH", "SEQ", "AT", "USUBJID", "REVIEW_STATE", "FROM_STATE", "TO_STATE", "ACTION"}


def _table(frame, title: str) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(column, overflow="fold", no_wrap=column in _NO_WRAP)
    for row in frame.iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    print_table(table)


@review_app.command("list")
def list_command(
    reports: Reports,
    study: Study,
    state: Annotated[list[str] | None, typer.Option(help="Only findings in this state (repeatable).")] = None,
    site: Annotated[list[str] | None, typer.Option(help="Only findings of this site (repeatable).")] = None,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    include_resolved: Annotated[bool, typer.Option(
        "--include-resolved",
        help="Also the discrepancies resolved in the latest run (a data-quality finding that is gone is not "
             "listed).")] = False,
    endpoint_url: EndpointUrl = None,
) -> None:
    """The latest run's findings with their review state as the ledger has it now."""
    from review.commands import list_findings

    if output not in ("table", "csv", "json"):
        _err.print(f"[red]error:[/red] --format must be table, csv or json, not {output!r}", highlight=False)
        raise typer.Exit(2)
    as_of, rows = _run(lambda: list_findings(_store(reports, endpoint_url), study, states=state or [],
                                             sites=site or [], include_resolved=include_resolved))
    if output == "csv":
        from core.safety import neutralise

        sys.stdout.write(neutralise(rows).write_csv(None, line_terminator="\n"))
    elif output == "json":
        json.dump(rows.to_dicts(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _table(rows.select(TABLE_COLUMNS), f"{study}: {rows.height} finding(s) of the run of {as_of or '(none)'}")


@review_app.command("show")
def show_command(
    finding_id: Annotated[str, typer.Argument(help="The finding's FINDING_ID.")],
    reports: Reports,
    study: Study,
    endpoint_url: EndpointUrl = None,
) -> None:
    """One finding with its whole thread."""
    from review.commands import show_finding

    current, state, thread = _run(lambda: show_finding(_store(reports, endpoint_url), study, finding_id))
    out = Console()
    if current is None:
        out.print(f"{finding_id}: not in the latest run (resolved earlier, or a finding of another night)")
    else:
        for key in ("ORIGIN", "SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "STATUS", "FIRST_SEEN",
                    "DAYS_OPEN", "EVIDENCE", "EVIDENCE_HASH", "SITE_QUERY", "COVERED_BY"):
            out.print(f"{key}: {'' if current.get(key) is None else current[key]}", soft_wrap=True, markup=False,
                      highlight=False)
    out.print(f"REVIEW_STATE: {state['REVIEW_STATE'][0] if state.height else 'UNREVIEWED (no entries)'}",
              markup=False, highlight=False)
    _table(thread, f"thread of {finding_id} ({thread.height} entr{'y' if thread.height == 1 else 'ies'}; "
                   "OTHER_EVIDENCE is True for an entry made on other evidence than the latest run's)")


@review_app.command("add")
def add_command(
    reports: Reports,
    study: Study,
    finding: Annotated[str | None, typer.Option(help="The finding's FINDING_ID.")] = None,
    action: Annotated[str | None, typer.Option(help="ACKNOWLEDGE, QUERY_SENT, SITE_RESPONSE, CONFIRM_DEVIATION, "
                                                    "NOT_A_DEVIATION, CLOSE, REOPEN or COMMENT.")] = None,
    by: Annotated[str | None, typer.Option(help="Who takes the action (a named person, or a site).")] = None,
    text: Annotated[str | None, typer.Option(help="The reason or answer (required by some actions).")] = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Record one action on one finding."""
    from review.commands import add_action

    entry = _run(lambda: add_action(_store(reports, endpoint_url), study, finding_id=finding or "",
                                    action=action or "", by=by, text=text))
    typer.echo(f"entry {entry['SEQ']}: {entry['ACTION']} on {entry['FINDING_ID']}: {entry['FROM_STATE']} -> "
               f"{entry['TO_STATE']}")


@review_app.command("import")
def import_command(
    workbook: Annotated[Path, typer.Argument(help="A returned report.xlsx (Review sheet) or site query workbook.")],
    reports: Reports,
    study: Study,
    site: Annotated[str | None, typer.Option(help="For a site's workbook: the site that sent it.")] = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Apply a returned workbook; prints its receipt. Exit 4 when some rows were refused."""
    from review.commands import import_workbook

    receipt = _run(lambda: import_workbook(_store(reports, endpoint_url), study, workbook, site=site))
    typer.echo(receipt.line())
    for row in receipt.refused:
        typer.echo(f"  row {row['row']} ({row['finding_id']}, {row['action']}): refused: {row['reason']}")
    typer.echo(f"receipt: {receipt.key}")
    if receipt.refused:
        raise typer.Exit(PARTLY_APPLIED)


@review_app.command("export")
def export_command(
    reports: Reports,
    study: Study,
    out: Annotated[Path, typer.Option(help="The trail's file: .csv or .parquet.")],
    endpoint_url: EndpointUrl = None,
) -> None:
    """Write the whole review trail, verified, for an inspection."""
    from review.commands import export_trail

    count = _run(lambda: export_trail(_store(reports, endpoint_url), study, out))
    typer.echo(f"{count} entries written to {out}")
