"""A returned workbook applied to the ledger, with a receipt: rows applied, and rows refused with the reason.

Two kinds of workbook come back (review.workbook): the `Review` sheet of report.xlsx, where a
reviewer chose a DECISION and wrote TEXT and REVIEWER on some rows; and a site's query workbook, whose
SITE_RESPONSE / RESPONDED_BY rows become the machine's site-response action by that site, for each finding
a query lists and each its Also answered sheet lists under it. The
workbook as a whole is refused (nothing applied) when it is not readable, not for this study, for
another site than expected, or was applied before (same bytes). Otherwise its decided rows are
checked together (review.proposals) and the accepted ones are written as one ledger object: a refused
row applies nothing, and the others are never half written.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime

import polars as pl

from contracts.tables import EVIDENCE_HASH, FINDING_ID
from review.append import append_actions
from review.entries import now_utc
from review.ledger import review_key
from review.machine import StateMachine
from review.proposals import proposals
from review.workbook import WorkbookRefused, read_returned
from storage import ObjectNotFound, Store

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
#: cells that must hold a value, never a formula: identifiers, the action, the names
_NO_FORMULA = ("FINDING_ID", "FINDING_IDS", "STUDYID", "SITEID", "EVIDENCE_HASH", "DECISION", "REVIEWER",
               "RESPONDED_BY")


@dataclass
class Receipt:
    """What became of one returned workbook (saved as JSON under `_review/receipts/`)."""

    study: str
    workbook: str
    sha256: str
    status: str  # APPLIED, PARTLY_APPLIED, NOTHING_TO_APPLY, REFUSED
    kind: str | None = None  # REVIEW or SITE
    site: str | None = None
    reason: str | None = None  # why the whole workbook was refused
    received_at: str = ""
    rows: int = 0
    without_decision: int = 0
    applied: list[dict] = field(default_factory=list)  # {row, finding_id, action, seq}
    refused: list[dict] = field(default_factory=list)  # {row, finding_id, action, reason}
    ledger_object: str | None = None
    notes: list[str] = field(default_factory=list)  # what of the workbook was not read, and why
    key: str | None = None  # where the receipt was saved

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """One line for a terminal or a log."""
        if self.status == "REFUSED":
            return f"{self.workbook}: refused: {self.reason}"
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        rows, applied = rows_and_findings(self.applied)
        # a site's answer to a consolidated query is recorded for each of its findings: say both counts
        also = sum(bool(entry.get("also_answered")) for entry in self.applied)
        findings = "" if rows == applied else f" ({applied} findings, {also} of them on the Also answered sheet)"
        refused_rows, refused_findings = rows_and_findings(self.refused)
        refused = f"{refused_rows} refused" + ("" if refused_rows == refused_findings
                                               else f" ({refused_findings} findings)")
        return (f"{self.workbook}: {rows} row(s) applied{findings}, {refused}, "
                f"{self.without_decision} without a decision{notes}")


def rows_and_findings(entries: list[dict]) -> tuple[int, int]:
    """How many workbook rows and how many findings a receipt's applied or refused entries are (one answered row
    of a consolidated query is an entry per finding): the receipt line and the report say both."""
    return len({entry.get("row") for entry in entries}), len(entries)


def safe_name(name: str) -> str:
    """A workbook's name as a safe last part of a key (never trusted as a path)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return (_SAFE.sub("_", base).strip("._") or "workbook")[:80]


def _previous_receipt(store: Store, study: str, digest: str) -> str | None:
    """The receipt of an earlier application of the same bytes, if any."""
    for info in store.list(review_key(study, "receipts")):
        if f"-{digest[:16]}-" not in info.key:
            continue
        try:
            body = json.loads(store.read_bytes(info.key))
        except (ObjectNotFound, ValueError):
            continue
        if body.get("sha256") == digest and body.get("status") in ("APPLIED", "PARTLY_APPLIED"):
            return info.key
    return None


def _distinct(frame: pl.DataFrame, column: str) -> list[str]:
    return sorted(v for v in frame[column].cast(pl.String).str.strip_chars().drop_nulls().unique().to_list() if v)


def _check_scope(book_rows: pl.DataFrame, kind: str, study: str, expected_site: str | None) -> str | None:
    """The workbook's study (and site, for a site workbook) checked; returns the site."""
    studies = _distinct(book_rows, "STUDYID")
    if not studies:
        raise WorkbookRefused("no STUDYID in the workbook: cannot tell which study it is for")
    if studies != [study]:
        raise WorkbookRefused(f"this workbook is for study {', '.join(studies)}, not {study}")
    if kind != "SITE":
        return None
    sites = _distinct(book_rows, "SITEID")
    if len(sites) != 1:
        raise WorkbookRefused(f"a site's query workbook holds one site's queries; this one holds "
                              f"{', '.join(sites) or 'no SITEID'}")
    if expected_site is not None and sites[0] != expected_site:
        raise WorkbookRefused(f"this workbook holds site {sites[0]}'s queries, not site {expected_site}'s")
    return sites[0]


def _formula_refusal(rows: pl.DataFrame) -> pl.Expr:
    flagged = [c for c in _NO_FORMULA if f"{c}_FORMULA" in rows.columns]
    chain = None
    for column in flagged:
        condition = pl.col(f"{column}_FORMULA")
        reason = pl.format(f"{column} holds a formula ({{}}), not a value", pl.col(column))
        chain = pl.when(condition).then(reason) if chain is None else chain.when(condition).then(reason)
    return chain.otherwise(pl.lit(None, pl.String)) if chain is not None else pl.lit(None, pl.String)


def _per_finding(decided: pl.DataFrame) -> pl.DataFrame:
    """A consolidated site query's answer, once for each finding it lists (FINDING_IDS, space-separated);
    a formula in FINDING_IDS refuses each of them."""
    if "FINDING_IDS" not in decided.columns:
        return decided
    ids = pl.col("FINDING_IDS").str.replace_all(r"[\s,;]+", " ").str.strip_chars().str.split(" ")
    return (decided.with_columns(ids.alias(FINDING_ID), pl.col("FINDING_IDS_FORMULA").alias("FINDING_ID_FORMULA"))
            .explode(FINDING_ID).filter(pl.col(FINDING_ID).fill_null("") != "")
            .drop("FINDING_IDS", "FINDING_IDS_FORMULA"))


#: how a ledger entry made through an Also answered sheet says so (in VIA)
_ALSO_VIA = "for a finding its Also answered sheet lists under it"
#: what an answer carries over to the findings an Also answered sheet lists under its query (nothing else of the
#: Queries row: a column a site added, e.g. FINDING_ID, could otherwise clash with the finding's own)
_ANSWER_COLUMNS = ("ROW", "QUERY_ID", "STUDYID", "SITEID", "SITE_RESPONSE", "RESPONDED_BY", EVIDENCE_HASH)


def _left_out(decided: pl.DataFrame, answered: pl.DataFrame, also: pl.DataFrame | None) -> pl.DataFrame:
    """A site query's answer once for each finding its workbook's Also answered sheet lists under it (left out
    of the list because the query asks the same: reporting.covered), marked _ALSO; none without that sheet.
    `answered`: the answers per listed finding (`_per_finding(decided)`).

    A finding the answered queries list themselves, or one the sheet lists twice, is answered once (by its
    listing query, else its first row there): two answers to one finding would refuse both, the real one too."""
    if also is None or also.height == 0 or "QUERY_ID" not in decided.columns:
        return decided.clear().with_columns(pl.lit(None, pl.String).alias(FINDING_ID))
    carried = [c for name in _ANSWER_COLUMNS for c in (name, f"{name}_FORMULA") if c in decided.columns]
    listed = (answered[FINDING_ID] if FINDING_ID in answered.columns else pl.Series([], dtype=pl.String)) \
        .str.strip_chars().drop_nulls().implode()
    left_out = (also.select(pl.col("QUERY_ID").str.strip_chars(), pl.col(FINDING_ID).str.strip_chars(),
                            (pl.col("FINDING_ID_FORMULA") if "FINDING_ID_FORMULA" in also.columns
                             else pl.lit(False)).alias("FINDING_ID_FORMULA"))
                .filter((pl.col(FINDING_ID).fill_null("") != "") & ~pl.col(FINDING_ID).is_in(listed)))
    return (decided.select(carried).with_columns(pl.col("QUERY_ID").str.strip_chars())
            .join(left_out, on="QUERY_ID", how="inner", maintain_order="left")
            .unique(FINDING_ID, keep="first", maintain_order=True))


def _proposals(book_rows: pl.DataFrame, kind: str, name: str, machine: StateMachine,
               also: pl.DataFrame | None = None) -> tuple[pl.DataFrame, int]:
    """The decided rows as proposals (a consolidated site query's answer once per finding it lists, and once
    per finding `also`, the workbook's Also answered sheet, lists under it), and how many rows had no
    decision."""
    text = pl.col("TEXT") if kind == "REVIEW" else pl.col("SITE_RESPONSE")
    decided = book_rows.filter((pl.col("DECISION") if kind == "REVIEW" else text).str.strip_chars()
                               .fill_null("") != "")
    undecided = book_rows.height - decided.height
    if kind != "REVIEW":
        if "QUERY_ID" not in decided.columns:  # a workbook of one row per finding
            decided = decided.with_columns(pl.lit(None, pl.String).alias("QUERY_ID"))
        answered = _per_finding(decided)
        decided = pl.concat([answered.with_columns(pl.lit(False).alias("_ALSO")),
                             _left_out(decided, answered, also).with_columns(pl.lit(True).alias("_ALSO"))],
                            how="diagonal_relaxed")
    if kind == "REVIEW":
        frame = decided.select(
            "ROW", FINDING_ID, pl.col("DECISION").str.to_uppercase().alias("ACTION"), pl.col("REVIEWER").alias("BY"),
            "TEXT", EVIDENCE_HASH, pl.format("workbook {} row {}", pl.lit(name), pl.col("ROW")).alias("VIA"),
            "SITEID",
            pl.when(pl.col(EVIDENCE_HASH).str.strip_chars().fill_null("") == "")
            .then(pl.lit("EVIDENCE_HASH is blank: the row cannot say which evidence was reviewed"))
            .otherwise(_formula_refusal(decided)).alias("REFUSED"))
    else:
        # an answer names who gave it (ALCOA: attributable), as a sponsor's decision names its REVIEWER: recorded
        # as "site 102" alone, an answer nobody could be held to was accepted (a user trial)
        responder = pl.col("RESPONDED_BY").cast(pl.String).str.strip_chars()
        by = pl.format("site {} ({})", pl.col("SITEID"), responder)
        unnamed = pl.when(responder.fill_null("") == "").then(
            pl.lit("RESPONDED_BY is blank: an answer must name who gave it"))
        frame = decided.select(
            "ROW", FINDING_ID, pl.lit(machine.site_response_action).alias("ACTION"), by.alias("BY"),
            text.alias("TEXT"),
            (pl.col(EVIDENCE_HASH) if EVIDENCE_HASH in decided.columns
             else pl.lit(None, pl.String)).alias(EVIDENCE_HASH),
            pl.when(pl.col("_ALSO"))
            .then(pl.format("site workbook {} row {} (the answer to query {}, {})", pl.lit(name), pl.col("ROW"),
                            pl.col("QUERY_ID"), pl.lit(_ALSO_VIA)))
            .otherwise(pl.format("site workbook {} row {}", pl.lit(name), pl.col("ROW"))).alias("VIA"),
            "SITEID", pl.coalesce(_formula_refusal(decided), unnamed).alias("REFUSED"))
    return proposals(frame), undecided


def apply_workbook(store: Store, study: str, data: bytes, name: str, catalogue: pl.DataFrame, where: str,
                   machine: StateMachine, *, expected_site: str | None = None, at: datetime | None = None,
                   save_refused: bool = False) -> Receipt:
    """Apply one returned workbook; its receipt is saved unless the workbook was refused as a whole
    (then only with `save_refused`, as the nightly inbox does so that a refusal is not silent).

    Raises LedgerIntegrityError (nothing written) when the ledger fails verification.
    """
    digest = hashlib.sha256(data).hexdigest()
    receipt = Receipt(study=study, workbook=name, sha256=digest, status="REFUSED", received_at=now_utc(at))
    try:
        earlier = _previous_receipt(store, study, digest)
        if earlier is not None:
            raise WorkbookRefused(f"this workbook was applied before (receipt {earlier})")
        book = read_returned(data)
        receipt.kind = book.kind
        if book.rows.height == 0:  # a sheet with no finding on it: nothing to decide, nothing refused
            receipt.status = "NOTHING_TO_APPLY"
            save_receipt(store, receipt, name, at)
            return receipt
        receipt.site = _check_scope(book.rows, book.kind, study, expected_site)
    except WorkbookRefused as refused:
        receipt.reason = str(refused)
        if save_refused:
            save_receipt(store, receipt, name, at)
        return receipt
    receipt.rows = book.rows.height
    receipt.notes = list(book.notes)
    proposed, receipt.without_decision = _proposals(book.rows, book.kind, name, machine, book.also)
    outcome = append_actions(store, study, proposed, catalogue, machine, where, at=at)
    receipt.applied = [{"row": r, "finding_id": f, "action": a, "seq": s, **_through(via)} for r, f, a, s, via in
                       outcome.applied.select("ROW", FINDING_ID, "ACTION", "SEQ", "VIA").iter_rows()]
    receipt.refused = [{"row": r, "finding_id": f, "action": a, "reason": why, **_through(via)}
                       for r, f, a, why, via in
                       outcome.refused.select("ROW", FINDING_ID, "ACTION", "REFUSED", "VIA").iter_rows()]
    receipt.ledger_object = outcome.key
    receipt.status = ("NOTHING_TO_APPLY" if not receipt.applied and not receipt.refused
                      else "APPLIED" if not receipt.refused else "PARTLY_APPLIED" if receipt.applied else "REFUSED")
    if receipt.status == "REFUSED":
        receipt.reason = "every decided row was refused"
    save_receipt(store, receipt, name, at)
    return receipt


def _through(via: str | None) -> dict:
    """What a receipt entry says of a finding answered through a query's Also answered sheet (not one it lists)."""
    return {"also_answered": True} if via is not None and _ALSO_VIA in via else {}


def receipt_stamp(key: str) -> str:
    """The time stamp a receipt's key starts with (`stamp_of`)."""
    return key.rsplit("/", 1)[-1].split("-", 1)[0]


def stamp_of(at: datetime | None) -> str:
    """A receipt key's time stamp (`YYYYMMDDTHHMMSSZ`, UTC), which orders receipts by when they were saved."""
    return now_utc(at).replace("-", "").replace(":", "")


def receipts_since(store: Store, study: str, after: datetime | None, reported: Iterable[str] | None = None,
                   until: datetime | None = None) -> list[dict]:
    """The receipts saved after `after` (every one when None), oldest first, as saved; one saved in the same
    second as `after` is too, unless its key is in `reported` (the previous night listed it; None: a night
    marked before nights named them, whose own second counts as before, as it did then); none stamped after
    `until` (tonight's marker: the next night lists those, helper-35).

    What a night reports as the workbooks applied since the previous night, tonight's inbox and any
    `review import` since: chosen by time rather than by what this process applied, so that a re-run of
    the night (whose first attempt applied them: nothing is applied twice) still reports them. Receipt keys
    are stamped to the second: a `review import` saved in the second the previous night marked, after that
    night had listed its receipts, was listed by no night (the previous nights said "the same second counts
    as before"); the night's marker now names the receipts of its second it listed (review.night).
    """
    cutoff = stamp_of(after) if after is not None else ""
    listed = set(reported or ())
    last = stamp_of(until) if until is not None else None
    found = []
    for info in sorted(store.list(review_key(study, "receipts")), key=lambda item: item.key):
        stamp = receipt_stamp(info.key)
        if stamp < cutoff or (stamp == cutoff and (reported is None or info.key in listed)) \
                or (last is not None and stamp > last):
            continue
        try:
            found.append(json.loads(store.read_bytes(info.key)))
        except (ObjectNotFound, ValueError):
            continue
    return found


def save_receipt(store: Store, receipt: Receipt, name: str, at: datetime | None) -> None:
    """Write the receipt under `_review/receipts/` (its key is set on it)."""
    stamp = stamp_of(at)
    digest = receipt.sha256[:16] or "unread"
    receipt.key = review_key(receipt.study, "receipts", f"{stamp}-{digest}-{safe_name(name)}.json")
    store.write_bytes(receipt.key, (json.dumps(receipt.as_dict(), indent=2, sort_keys=True, ensure_ascii=False)
                                    + "\n").encode("utf-8"), "application/json")
