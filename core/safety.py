"""Neutralise spreadsheet formula injection in text cells (OWASP "CSV Injection").

A value a site typed (a verbatim term, an observed value) is shown to data managers in Excel. A cell
that starts with `=`, `+`, `-`, `@`, a tab or a carriage return (or their full-width forms, which some
spreadsheet programs also accept) can be run as a formula. Such a value is prefixed with a single
quote, as OWASP recommends, so it shows as text.

Decision: a value that is a plain number (`-1.5`, `+3`, `-2e-3`) is left as it is. A spreadsheet reads
it as a number, which runs nothing, and quoting it would corrupt every negative lab value. Anything
else with a risky first character (`-1+2`, `=HYPERLINK(...)`, `@SUM(A1)`) is quoted.

Only the CSV and XLSX renderings are neutralised; Parquet keeps the exact text (it is read by
programs, not spreadsheets, and the history of findings is matched on it).
"""

from __future__ import annotations

import polars as pl

#: first characters a spreadsheet may treat as the start of a formula
RISKY_FIRST = "=+-@\t\r\uff1d\uff0b\uff0d\uff20"
_RISKY = "^[" + RISKY_FIRST.replace("-", "\\-") + "]"
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
#: ASCII code points closer than this share one range of `_first_character_ranges`
_RANGE_GAP = 4


def _first_character_ranges(characters: str = RISKY_FIRST) -> list[tuple[str | None, str | None]]:
    """Half-open ranges [low, high) of texts whose first character may be one of `characters`: neighbouring
    ASCII code points share a range, the lowest range starts at the empty text, and one range without an end
    starts at the lowest of the others (texts that start below a tab or with a character beyond ASCII are
    rare, and each range more costs two comparisons)."""
    ranges: list[list[int]] = []
    for point in sorted(ord(c) for c in characters if ord(c) < 0x80):
        if ranges and point - ranges[-1][1] < _RANGE_GAP:
            ranges[-1][1] = point + 1
        else:
            ranges.append([point, point + 1])
    bounds: list[tuple[str | None, str | None]] = [(None if i == 0 else chr(low), chr(high))
                                                   for i, (low, high) in enumerate(ranges)]
    beyond = [c for c in characters if ord(c) >= 0x80]
    return [*bounds, (min(beyond), None)] if beyond else bounds


def may_be_risky(column: str) -> pl.Expr:
    """True where the text may start with a RISKY_FIRST character (and where it does): a few comparisons with
    the first bytes of each text, which polars keeps beside its length, instead of a pattern search per text
    (a third of the CPU on the 7.5 million texts of a night's eligibility table). A superset, so it only
    picks the columns that `_RISKY` then searches."""
    value = pl.col(column)
    parts = [pl.all_horizontal([*([value >= low] if low is not None else []), *([value < high] if high else [])])
             for low, high in _first_character_ranges()]
    return pl.any_horizontal(parts).alias(column)


def _may_reach_a_risky_range(low: str, high: str) -> bool:
    """Whether some text between `low` and `high` (inclusive) may start with a risky character: whether the span
    meets one of the ranges of `_first_character_ranges` (texts compare by their UTF-8 bytes, in code point order,
    as polars compares them)."""
    return any((end is None or low < end) and (start is None or high >= start)
               for start, end in _first_character_ranges())


def neutralise_expr(column: str) -> pl.Expr:
    """The column with every formula-like text value prefixed by a single quote."""
    value = pl.col(column)
    risky = value.str.contains(_RISKY) & ~value.str.contains(_NUMBER)
    return pl.when(risky).then(pl.lit("'") + value).otherwise(value).alias(column)


def neutralise(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every String column neutralised (other columns unchanged).

    One scan finds the columns with a risky first character at all (usually few: ids and codes never
    start with one); only those are rewritten, so a large table is not copied column by column. The scan
    takes each column's smallest and largest text first (a column of ids, codes or ISO dates lies between
    two risky ranges), compares first bytes (may_be_risky) in the columns left, and searches with the pattern
    only the columns that may hold one.
    """
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    if not text or frame.height == 0:
        return frame
    # a column whose smallest and largest text both lie between two risky ranges has no text in one
    lows = frame.select(pl.col(name).min() for name in text).row(0)
    highs = frame.select(pl.col(name).max() for name in text).row(0)
    spans = zip(text, lows, highs, strict=True)
    text = [name for name, low, high in spans if low is not None and _may_reach_a_risky_range(low, high)]
    if not text:
        return frame
    flags = frame.select(may_be_risky(name).any() for name in text).row(0)
    maybe = [name for name, flag in zip(text, flags, strict=True) if flag]
    flags = frame.select(pl.col(name).str.contains(_RISKY).any() for name in maybe).row(0) if maybe else ()
    risky = [name for name, flag in zip(maybe, flags, strict=True) if flag]
    return frame.with_columns([neutralise_expr(name) for name in risky]) if risky else frame
