"""Where a delivered row came from, typed: its object key and its data row number.

Ingestion gives every delivered row two columns, `SOURCE_KEY` (the object key of its file) and
`SOURCE_ROW` (its data row number, 1 being the first row after the header). Inside the pipeline rows
are joined, ordered and deduplicated on these two typed columns; the readable `<key>:<row>` text that
a site monitor quotes (`SOURCE` in the published tables) is rendered only where an output is made.
Ordering on the typed pair makes row 10 come after row 9 without parsing text back.
"""

from __future__ import annotations

import polars as pl

SOURCE_KEY = "SOURCE_KEY"
SOURCE_ROW = "SOURCE_ROW"
SOURCE_COLUMNS = (SOURCE_KEY, SOURCE_ROW)
#: the typed columns as a polars schema (the exclusions and rejected tables carry them too)
SOURCE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {SOURCE_KEY: pl.String, SOURCE_ROW: pl.Int64}


def typed_source(frame: pl.DataFrame | pl.LazyFrame) -> list[pl.Expr]:
    """The frame's SOURCE_KEY and SOURCE_ROW, or typed null columns when it has none (a table built by hand)."""
    names = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
    return [pl.col(name).cast(dtype) if name in names else pl.lit(None, dtype=dtype).alias(name)
            for name, dtype in SOURCE_SCHEMA.items()]


def source_text(key: str = SOURCE_KEY, row: str = SOURCE_ROW) -> pl.Expr:
    """`<object key>:<row>`, the form outputs show (null when either part is null)."""
    return pl.format("{}:{}", pl.col(key), pl.col(row))


def source_order(key: str = SOURCE_KEY, row: str = SOURCE_ROW) -> list[pl.Expr]:
    """Sort keys that make "first" and "latest" independent of row and site order: object key, row number.

    A (key, row) pair is unique per delivered row, so these keys complete any ordering into a total
    one: ties on a date (two results the same day) always resolve the same way, whatever order the
    rows came in. A missing part sorts first (an empty key, row 0), as the text form did.
    """
    return [pl.col(key).fill_null(""), pl.col(row).fill_null(0)]


#: spreadsheet files: a data row's number counts the sheet rows below the header, blank ones included (the
#: header need not be on sheet row 1: the reader starts at the first row that has a value)
_SHEET_FILE = r"\.(xlsx|xlsm|xls)$"
#: files without a header line (their rows are records 1, 2, ...)
_HEADERLESS_FILE = r"\.(parquet|xpt)$"


def _is(key: pl.Expr, pattern: str) -> pl.Expr:
    return key.str.to_lowercase().str.contains(pattern).fill_null(False)


def rows_words(key: pl.Expr, numbers: pl.Expr, several: pl.Expr | bool = False) -> pl.Expr:
    """How a site finds rows of the file `key` from their SOURCE row `numbers` (text): `row 462 below the
    header` in a spreadsheet (blank rows counted), `record 462 after the header` in a CSV (blank lines are not
    records, so no line number can be told), `record 462` in a file without a header (Parquet, SAS
    transport). A site monitor read the bare `lb.csv:462` as the file's line 462 and looked at the record
    above it; no sheet row is given, since the header's own row is not recorded."""
    many = pl.lit(several) if isinstance(several, bool) else several
    sheet = _is(key, _SHEET_FILE)
    noun = pl.when(sheet).then(pl.when(many).then(pl.lit("rows")).otherwise(pl.lit("row"))) \
        .otherwise(pl.when(many).then(pl.lit("records")).otherwise(pl.lit("record")))
    tail = (pl.when(sheet).then(pl.lit(" below the header")).when(_is(key, _HEADERLESS_FILE)).then(pl.lit(""))
            .otherwise(pl.lit(" after the header")))
    return pl.format("{} {}{}", noun, numbers, tail)
