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


def neutralise_expr(column: str) -> pl.Expr:
    """The column with every formula-like text value prefixed by a single quote."""
    value = pl.col(column)
    risky = value.str.contains(_RISKY) & ~value.str.contains(_NUMBER)
    return pl.when(risky).then(pl.lit("'") + value).otherwise(value).alias(column)


def neutralise(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every String column neutralised (other columns unchanged).

    One scan finds the columns with a risky first character at all (usually few: ids and codes never
    start with one); only those are rewritten, so a large table is not copied column by column.
    """
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    if not text or frame.height == 0:
        return frame
    flags = frame.select(pl.col(name).str.contains(_RISKY).any() for name in text).row(0)
    risky = [name for name, flag in zip(text, flags, strict=True) if flag]
    return frame.with_columns([neutralise_expr(name) for name in risky]) if risky else frame
