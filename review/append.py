"""Append checked actions to the ledger, safely against other writers.

Read the ledger (verified), fold it, check the proposals against the states, write the accepted ones
as one object named by the next sequence number with a conditional create. When another writer took
that number first, read again and check again (its action may have changed a state: an action that
was allowed may no longer be), then try the next number. Never a read-modify-write without a
precondition, never an entry lost.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from review.entries import chained, now_utc
from review.fold import current_states
from review.ledger import LedgerView, append_object, read_ledger
from review.machine import StateMachine
from review.proposals import check
from storage import Store

#: attempts before giving up when other writers keep taking the next number (each re-reads the ledger)
MAX_ATTEMPTS = 25


class LedgerBusyError(RuntimeError):
    """Other writers took the next entry number every time: nothing of this batch was written."""


@dataclass(frozen=True)
class Appended:
    """What came of a batch: every proposal with FROM_STATE, TO_STATE, REFUSED and the SEQ it got."""

    checked: pl.DataFrame
    key: str | None  # the ledger object written, None when nothing was accepted
    view: LedgerView  # the ledger as read just before the write (without this batch)

    @property
    def applied(self) -> pl.DataFrame:
        return self.checked.filter(pl.col("SEQ").is_not_null())

    @property
    def refused(self) -> pl.DataFrame:
        return self.checked.filter(pl.col("REFUSED").is_not_null())


def append_actions(store: Store, study: str, proposed: pl.DataFrame, catalogue: pl.DataFrame,
                   machine: StateMachine, where: str, *, at: datetime | None = None,
                   view: LedgerView | None = None) -> Appended:
    """Check `proposed` (review.proposals) and write the accepted rows as one ledger object.

    Raises LedgerIntegrityError when the ledger fails verification (nothing is written then).
    `view`: a ledger already read (the first attempt uses it instead of reading again).
    """
    for attempt in range(MAX_ATTEMPTS):
        if view is None or attempt:
            view = read_ledger(store, study, machine.initial)
        view.require_intact()
        checked = check(proposed, current_states(view.entries, machine), catalogue, view.entries, machine, where)
        accepted = checked.filter(pl.col("REFUSED").is_null())
        if accepted.height == 0:
            return Appended(checked.with_columns(pl.lit(None, pl.Int64).alias("SEQ")), None, view)
        moment = now_utc(at)
        rows = accepted.with_columns(pl.lit(study).alias("STUDYID"), pl.lit(moment).alias("AT")).to_dicts()
        entries = chained(rows, view.head_seq + 1, view.head_hash)
        key = append_object(store, study, entries)
        if key is not None:
            first = view.head_seq + 1
            numbered = accepted.with_row_index("_I").select(
                pl.col("_I"), (pl.col("_I").cast(pl.Int64) + first).alias("SEQ"))
            positions = checked.with_row_index("_ALL").with_columns(
                pl.when(pl.col("REFUSED").is_null()).then(pl.col("REFUSED").is_null().cum_sum() - 1)
                .alias("_I").cast(pl.UInt32))
            result = positions.join(numbered, on="_I", how="left", maintain_order="left").drop("_ALL", "_I")
            return Appended(result, key, view)
        time.sleep(random.uniform(0.01, 0.05 * (attempt + 1)))  # noqa: S311 - jitter, not security
    raise LedgerBusyError(f"could not add to the review ledger of {study}: other writers took the next entry "
                          f"number {MAX_ATTEMPTS} times in a row; nothing of this batch was written, try again")
