"""Workbooks dropped into `<STUDYID>/_review/inbox/` are applied by the next nightly run.

    _review/inbox/<file>.xlsx             a reviewed report.xlsx, or a site's query workbook
    _review/inbox/<SITEID>/<file>.xlsx    a site's query workbook, which must be that site's
    _review/receipts/<stamp>-<sha>-<file>.json   what became of it (review.imports.Receipt)
    _review/processed/<stamp>-<file>      the workbook, moved out of the inbox once handled

Every object in the inbox gets a receipt and leaves the inbox, also when it is refused (not a
workbook, another study's, too large), so that nothing waits there forever unexplained. The receipt is
written before the workbook is moved: a run that stops in between finds the same bytes again next
night and refuses to apply them twice.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from review.entries import now_utc
from review.imports import Receipt, apply_workbook, safe_name, save_receipt
from review.ledger import review_key
from review.machine import StateMachine
from review.workbook import MAX_BYTES
from storage import Store


def inbox_prefix(study: str) -> str:
    return review_key(study, "inbox")


def process_inbox(store: Store, study: str, catalogue: pl.DataFrame, where: str, machine: StateMachine,
                  at: datetime | None = None) -> list[Receipt]:
    """Apply every workbook of the study's inbox, in key order; one receipt each."""
    prefix = inbox_prefix(study)
    receipts: list[Receipt] = []
    for info in sorted(store.list(prefix), key=lambda item: item.key):
        parts = info.key[len(prefix) + 1:].split("/")
        site = parts[0] if len(parts) > 1 else None
        name = parts[-1]
        if not name.lower().endswith(".xlsx") or info.size > MAX_BYTES:
            why = "not an .xlsx workbook" if not name.lower().endswith(".xlsx") else \
                f"larger than {MAX_BYTES // (1024 * 1024)} MB"
            receipt = Receipt(study=study, workbook=name, sha256="", status="REFUSED", site=site, reason=why,
                              received_at=now_utc(at))
            save_receipt(store, receipt, name, at)
        else:
            receipt = apply_workbook(store, study, store.read_bytes(info.key), name, catalogue, where, machine,
                                     expected_site=site, at=at, save_refused=True)
        stamp = now_utc(at).replace("-", "").replace(":", "")
        moved = review_key(study, "processed", f"{stamp}-{safe_name(site) + '-' if site else ''}{safe_name(name)}")
        store.copy(info.key, moved)
        store.delete(info.key)
        receipts.append(receipt)
    return receipts
