"""One entry of the review ledger: who did what to which finding, when, with which text, on which evidence.

Every entry carries the hash of its own content (ENTRY_HASH) and the hash of the entry before it
(PREV_HASH), so that a changed, removed, inserted or reordered entry breaks the chain where it happened
and is named. ENTRY_HASH is `core.identity.fingerprint` of the other fields in `HASHED` order: computed
in Python when an entry is made (a chain is sequential by nature: each hash needs the previous one) and
as one polars expression over the whole ledger when it is verified; a test pins that both agree.

FROM_STATE and TO_STATE record the transition as the state machine allowed it when the entry was
written, so that a finding's state is its last entry's TO_STATE whatever the machine says later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl

from core.identity import fingerprint, fingerprint_text

FORMAT = "screening-audit review ledger 1"

#: the fields of an entry, in the order they are hashed (ENTRY_HASH last, not hashed)
ENTRY_SCHEMA: dict[str, type[pl.DataType] | pl.DataType] = {
    "SEQ": pl.Int64,
    "STUDYID": pl.String,
    "FINDING_ID": pl.String,
    "ACTION": pl.String,
    "FROM_STATE": pl.String,
    "TO_STATE": pl.String,
    "BY": pl.String,
    "AT": pl.String,
    "TEXT": pl.String,
    "EVIDENCE_HASH": pl.String,
    "VIA": pl.String,
    "PREV_HASH": pl.String,
    "ENTRY_HASH": pl.String,
}
HASHED = tuple(name for name in ENTRY_SCHEMA if name != "ENTRY_HASH")

#: what a person may not type in BY or TEXT: control characters other than tab and line ends (one could
#: forge the separator of a hash's parts)
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
MAX_BY = 120
MAX_TEXT = 4000


def now_utc(moment: datetime | None = None) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`, UTC: when an entry is written."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_hash_expr() -> pl.Expr:
    """ENTRY_HASH recomputed from an entries frame (every field in HASHED)."""
    return fingerprint(*HASHED).alias("ENTRY_HASH")


def chained(rows: Iterable[Mapping[str, Any]], first_seq: int, previous_hash: str | None) -> list[dict[str, Any]]:
    """New entries numbered from `first_seq`, each with the hash of the one before it and its own.

    A loop over the new entries only: each hash needs the previous one.
    """
    entries: list[dict[str, Any]] = []
    for offset, row in enumerate(rows):
        entry = {name: row.get(name) for name in HASHED}
        entry["SEQ"] = first_seq + offset
        entry["PREV_HASH"] = previous_hash
        entry["ENTRY_HASH"] = previous_hash = fingerprint_text(*(entry[name] for name in HASHED))
        entries.append(entry)
    return entries


def entries_frame(entries: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Entries as a frame of ENTRY_SCHEMA (fields the entries lack are null)."""
    rows = [{name: entry.get(name) for name in ENTRY_SCHEMA} for entry in entries]
    return pl.DataFrame(rows, schema=ENTRY_SCHEMA) if rows else pl.DataFrame(schema=ENTRY_SCHEMA)


def empty_entries() -> pl.DataFrame:
    return pl.DataFrame(schema=ENTRY_SCHEMA)
