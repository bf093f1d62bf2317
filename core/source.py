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


#: between the records of a SOURCE that names several (`<key>:<row>; <key>:<row>`)
RECORD_SEPARATOR = "; "


def with_distinct_records(frame: pl.DataFrame, column: str = "SOURCE") -> pl.DataFrame:
    """`frame` with each SOURCE of several records naming each record once, in first-seen order: a value merged
    from rule parts, or a check listing its components' records, names a record that two of them share once.
    Only the few rows naming several are split (a list per row for a night's 500,000 cost a tenth of a second)."""
    several = frame.select(pl.col(column).str.contains(RECORD_SEPARATOR, literal=True).fill_null(False)
                           .arg_true()).to_series()
    if several.len() == 0:
        return frame
    distinct = frame.select(pl.col(column).gather(several).str.split(RECORD_SEPARATOR)
                            .list.unique(maintain_order=True).list.join(RECORD_SEPARATOR)).to_series()
    return frame.with_columns(frame[column].scatter(several, distinct))


#: spreadsheet files: a data row's number counts the sheet rows below the header, blank ones included (the
#: header need not be on sheet row 1: the reader starts at the first row that has a value)
_SHEET_FILES = ["xlsx", "xlsm", "xls"]
#: files without a header line (their rows are records 1, 2, ...)
_HEADERLESS_FILES = ["parquet", "xpt"]


def _extension(key: pl.Expr) -> pl.Expr:
    """The extension of a file `key` (or of a SOURCE `<key>:<row>`), lower case: only the few characters after the
    last dot are lower-cased (a query detail names 130,000 records; lower-casing each whole key cost most of it)."""
    return key.str.extract(r"\.([^./:]+)(?::\d+)?$", 1).str.to_lowercase()


def rows_words(key: pl.Expr, numbers: pl.Expr, several: pl.Expr | bool = False) -> pl.Expr:
    """How a site finds rows of the file `key` from their SOURCE row `numbers` (text): `row 462 below the
    header` in a spreadsheet (blank rows counted), `record 462 after the header` in a CSV (blank lines are not
    records, so no line number can be told), `record 462` in a file without a header (Parquet, SAS
    transport). A site monitor read the bare `lb.csv:462` as the file's line 462 and looked at the record
    above it; no sheet row is given, since the header's own row is not recorded."""
    extension = _extension(key).fill_null("")

    def noun(plural: bool) -> pl.Expr:
        return extension.replace_strict(dict.fromkeys(_SHEET_FILES, "rows" if plural else "row"),
                                        default="records" if plural else "record", return_dtype=pl.String)
    tail = extension.replace_strict({**dict.fromkeys(_SHEET_FILES, " below the header"),
                                     **dict.fromkeys(_HEADERLESS_FILES, "")},
                                    default=" after the header", return_dtype=pl.String)
    nouns = noun(several) if isinstance(several, bool) else pl.when(several).then(noun(True)).otherwise(noun(False))
    return pl.format("{} {}{}", nouns, numbers, tail)
