"""What the `screening-audit review` commands do, apart from parsing and printing (flows/review_cli.py).

Each works on the study's reports store: the findings are the latest published run's, the states are
the ledger's as it is now. Bad input (an unknown finding, state or action, a transition the machine
does not allow, a missing BY or text, a workbook for another study or site) raises ReviewInputError
with one sentence, before anything is written.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from contracts.tables import EVIDENCE_HASH, FINDING_ID
from core.safety import neutralise
from ingestion.codes import without_notes
from review.append import append_actions
from review.asked import LINK_COLUMNS, with_site_queries
from review.catalogue import published_catalogue
from review.entries import ENTRY_SCHEMA
from review.fold import annotate, current_states
from review.imports import Receipt, apply_workbook
from review.ledger import LedgerView, read_ledger
from review.machine import StateMachine, load_machine
from review.proposals import proposals
from review.runs import read_table
from storage import Store

LIST_COLUMNS = [FINDING_ID, "ORIGIN", "SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "STATUS", "DAYS_OPEN",
                "REVIEW_STATE", "REVIEWED_BY", "REVIEWED_AT", "LAST_TEXT", *LINK_COLUMNS]
THREAD_COLUMNS = ["SEQ", "AT", "BY", "ACTION", "FROM_STATE", "TO_STATE", "TEXT", EVIDENCE_HASH, "VIA"]
EXPORT_CONTEXT = ["SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "ORIGIN"]


class ReviewInputError(ValueError):
    """Bad input to a review command: nothing was written."""


class _Study:
    """The study's latest run and its ledger, read once per command."""

    def __init__(self, store: Store, study: str, machine: StateMachine | None = None) -> None:
        self.store, self.study = store, study
        self.machine = machine or load_machine()
        self.as_of, self.catalogue = published_catalogue(store, study)
        self._view: LedgerView | None = None

    @property
    def where(self) -> str:
        return f"the latest run ({self.as_of.isoformat()})" if self.as_of else "any published run (there is none yet)"

    def note_refusal(self, finding_id: str) -> str | None:
        """Why a finding cannot be reviewed when it is a note of the latest run (ingestion.codes.without_notes: no
        review state, so not in the catalogue); None otherwise. Read only on that path (a user trial was told such
        a finding was "not in the latest run", where validation.csv lists it)."""
        validation = read_table(self.store, self.study, self.as_of, "validation") if self.as_of else None
        if validation is None or FINDING_ID not in validation.columns:
            return None
        if without_notes(validation).filter(pl.col(FINDING_ID) == finding_id).height or \
                validation.filter(pl.col(FINDING_ID) == finding_id).height == 0:
            return None
        return (f"{finding_id} is a note of {self.where} (a manifest setting that was ignored, kept in validation for "
                "the record): it asks nothing of anyone, so it has no review state; nothing was written")

    def view(self) -> LedgerView:
        if self._view is None:
            self._view = read_ledger(self.store, self.study, self.machine.initial).require_intact()
        return self._view

    def findings(self) -> pl.DataFrame:
        """The latest run's findings with their states as the ledger has them now."""
        return annotate(self.catalogue, current_states(self.view().entries, self.machine), self.machine)


def _known_states(machine: StateMachine, states: list[str]) -> list[str]:
    wanted = [s.strip().upper() for s in states if s.strip()]
    unknown = [s for s in wanted if s not in machine.states]
    if unknown:
        raise ReviewInputError(f"unknown state {', '.join(unknown)} (one of {', '.join(machine.states)})")
    return wanted


def list_findings(store: Store, study: str, *, states: list[str] = (), sites: list[str] = (),
                  include_resolved: bool = False) -> tuple[date | None, pl.DataFrame]:
    """The latest run's findings (present ones unless `include_resolved`) with their review state, filtered."""
    context = _Study(store, study)
    wanted = _known_states(context.machine, list(states))
    rows = context.findings()
    if not include_resolved:
        rows = rows.filter(pl.col("STATUS").fill_null("") != "RESOLVED")
    if wanted:
        rows = rows.filter(pl.col("REVIEW_STATE").is_in(wanted))
    if sites:
        rows = rows.filter(pl.col("SITEID").is_in([s.strip() for s in sites]))
    rows = with_site_queries(rows, store, study, context.as_of)  # which query asks each site (review.asked)
    return context.as_of, rows.sort("SITEID", "USUBJID", "CHECK_ID", FINDING_ID, nulls_last=True).select(LIST_COLUMNS)


def show_finding(store: Store, study: str, finding_id: str) -> tuple[dict | None, pl.DataFrame, pl.DataFrame]:
    """(the finding as the latest run lists it, with the site query that asks about it, or None; its state; its
    thread in ledger order)."""
    context = _Study(store, study)
    finding_id = finding_id.strip()
    entries = context.view().entries
    thread = entries.filter(pl.col(FINDING_ID) == finding_id).sort("SEQ")
    listed = context.findings().filter(pl.col(FINDING_ID) == finding_id)
    if listed.height == 0 and thread.height == 0:
        raise ReviewInputError(context.note_refusal(finding_id)
                               or f"unknown finding {finding_id}: not in {context.where} nor in the review ledger")
    state = current_states(thread, context.machine)
    listed = with_site_queries(listed, store, study, context.as_of)
    current = listed.row(0, named=True) if listed.height else None
    marked = thread.with_columns(
        (pl.col(EVIDENCE_HASH) != pl.lit(current[EVIDENCE_HASH] if current else None, pl.String)).fill_null(False)
        .alias("OTHER_EVIDENCE")).select(*THREAD_COLUMNS, "OTHER_EVIDENCE")
    return current, state, marked


def add_action(store: Store, study: str, *, finding_id: str, action: str, by: str | None,
               text: str | None) -> dict:
    """Record one action; the entry written (SEQ, FROM_STATE, TO_STATE...). ReviewInputError when refused."""
    machine = load_machine()
    if not finding_id.strip():
        raise ReviewInputError("--finding is missing: the FINDING_ID of the finding (see `review list`)")
    if not action.strip():
        raise ReviewInputError(f"--action is missing (one of {', '.join(machine.actions)})")
    if by is None or not by.strip():
        raise ReviewInputError("--by is missing: name the person (or site) taking the action")
    context = _Study(store, study, machine)
    proposed = proposals([{FINDING_ID: finding_id, "ACTION": action.strip().upper(), "BY": by, "TEXT": text,
                           "VIA": "command line"}])
    outcome = append_actions(store, study, proposed, context.catalogue, context.machine, context.where,
                             view=context.view())
    if outcome.refused.height:
        reason = outcome.refused["REFUSED"][0]
        raise ReviewInputError((context.note_refusal(finding_id.strip()) if reason.startswith("unknown finding")
                                else None) or reason)
    return outcome.applied.row(0, named=True)


def import_workbook(store: Store, study: str, path: Path, *, site: str | None = None) -> Receipt:
    """Apply a returned workbook (report.xlsx's Review sheet or a site's query workbook); its receipt.

    A workbook refused as a whole raises ReviewInputError (nothing written, no receipt)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ReviewInputError(f"cannot read {path}: {error.strerror}") from None
    context = _Study(store, study)
    context.view()  # a ledger that fails verification is reported before the workbook is looked at
    receipt = apply_workbook(store, study, data, path.name, context.catalogue, context.where, context.machine,
                             expected_site=site.strip() if site else None)
    if receipt.status == "REFUSED" and receipt.key is None:
        raise ReviewInputError(f"{path.name} refused: {receipt.reason}; nothing applied")
    return receipt


def export_trail(store: Store, study: str, out: Path) -> int:
    """Write the whole verified trail (every entry, with its finding's site, subject and check) to a
    .csv or .parquet file for an inspection; the number of entries."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ReviewInputError(f"--out must end in .csv or .parquet, not {out.name!r}")
    context = _Study(store, study)
    context_columns = context.catalogue.select(FINDING_ID, *EXPORT_CONTEXT)
    trail = (context.view().entries.select(list(ENTRY_SCHEMA))
             .join(context_columns, on=FINDING_ID, how="left", maintain_order="left").sort("SEQ"))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            out.write_bytes(neutralise(trail).write_csv(None, line_terminator="\n").encode("utf-8"))
        else:
            trail.write_parquet(out, compression="zstd")
    except OSError as error:
        raise ReviewInputError(f"cannot write {out}: {error.strerror}") from None
    return trail.height
