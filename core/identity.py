"""Stable identifiers and fingerprints: the same text gives the same id on every night, machine and
software version.

A finding keeps its identity across nights (a reviewer's decision refers to it) and its evidence has a
fingerprint (a changed value reopens a closed finding), so both must survive upgrades of polars,
whose own `hash()` is only stable within one version. They are BLAKE2b digests of the parts' text,
computed once per distinct value (a night has at most a few hundred thousand findings; the digest is
the only per-value Python in the pipeline, on purpose: no polars expression gives a digest that is
stable across versions).
"""

from __future__ import annotations

import hashlib

import polars as pl

#: separates the parts of an identity, and stands for a missing part: neither occurs in delivered text
_SEPARATOR = "\x1f"
_MISSING = "\x00"


def _digest(texts: pl.Series, size: int) -> pl.Series:
    """BLAKE2b hex digest (`size` bytes) of each distinct text, looked up for every row."""
    distinct = texts.unique()
    digests = [hashlib.blake2b(text.encode("utf-8"), digest_size=size).hexdigest() for text in distinct.to_list()]
    return texts.replace_strict(distinct, pl.Series(digests, dtype=pl.String), return_dtype=pl.String)


def _joined(parts: tuple[pl.Expr | str, ...]) -> pl.Expr:
    exprs = [pl.col(p) if isinstance(p, str) else p for p in parts]
    return pl.concat_str([e.cast(pl.String).fill_null(_MISSING) for e in exprs], separator=_SEPARATOR)


def stable_id(prefix: str, *parts: pl.Expr | str) -> pl.Expr:
    """`<prefix>-<16 hex digits>` from the parts (columns or expressions), in order; a missing part counts
    as missing, never as empty text. Equal parts give equal ids, whatever the row order or run."""
    return pl.lit(f"{prefix}-") + _joined(parts).map_batches(lambda s: _digest(s, 8), return_dtype=pl.String)


def fingerprint(*parts: pl.Expr | str) -> pl.Expr:
    """A 32-hex-digit digest of the parts: changes exactly when one of them changes."""
    return _joined(parts).map_batches(lambda s: _digest(s, 16), return_dtype=pl.String)


def repeat_number(*parts: pl.Expr | str, order_by: list[pl.Expr | str]) -> pl.Expr:
    """Null for the first row with these parts (in `order_by` order), 2 for the second, 3 for the third...

    An identity part for findings whose other parts cannot tell two rows apart (a key delivered twice):
    the first keeps the identity it would have alone, the others are told apart by their rank.
    """
    exprs = [pl.col(p) if isinstance(p, str) else p for p in parts]
    rank = pl.int_range(pl.len(), dtype=pl.Int64).over([e.cast(pl.String).fill_null(_MISSING) for e in exprs],
                                                         order_by=order_by)
    return pl.when(rank == 0).then(pl.lit(None, pl.Int64)).otherwise(rank + 1)


def fingerprint_text(*parts: str | int | None) -> str:
    """The `fingerprint` of one row's parts, computed in Python: equal to the expression's value for the
    same parts (pinned by a test), for a record made one at a time (a review ledger entry)."""
    text = _SEPARATOR.join(_MISSING if part is None else str(part) for part in parts)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
