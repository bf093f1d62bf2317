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
