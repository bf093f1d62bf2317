"""XLSX through calamine (fastexcel), every cell as the text a person sees, never a guessed date.

The sheet named like the domain (`LB`, `lb`), else the first sheet, is read twice: once with
every cell as text, once as datetimes. The second pass is only a mask: it is null exactly for
text cells, so number and date cells are told apart from text that merely looks like them.
Number cells keep calamine's shortest decimal text (integers without `.0`) with the file's
decimal mark; date cells become ISO 8601 (`YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS` when the cell
has a time of day); text cells are kept exactly as typed. Blank sheet rows are layout, not
records: they are dropped and not counted. A cell holding an Excel error (`#N/A`, `#DIV/0!`) has
no value: it is read as missing and noted, so the finding says why the value is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import fastexcel
import polars as pl

from ingestion.codes import Code
from ingestion.errors import FileRejected
from ingestion.table import ROW, CellNote, RawTable, positional

_DATETIME_TEXT = r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})$"
#: calamine's names of Excel error values -> the text Excel shows
_EXCEL_ERRORS = {"NA": "#N/A", "Div0": "#DIV/0!", "Value": "#VALUE!", "Ref": "#REF!", "Name": "#NAME?",
                 "Num": "#NUM!", "Null": "#NULL!", "GettingData": "#GETTING_DATA"}


def _load(path: Path, sheet: str | None) -> tuple[pl.DataFrame, pl.DataFrame, list[CellNote]]:
    try:
        reader = fastexcel.read_excel(path)
        names = reader.sheet_names
        if not names:
            raise FileRejected(Code.FILE_EMPTY, "the workbook has no sheet")
        # the sheet named like the domain (any case) when there is one, else the first sheet
        index = next((i for i, name in enumerate(names) if sheet and name.strip().lower() == sheet), 0)
        table, errors = reader.load_sheet(index, header_row=None, dtypes="string").to_arrow_with_errors()
        stamps = reader.load_sheet(index, header_row=None, dtypes="datetime").to_polars()
    except FileRejected:
        raise
    except Exception as error:  # calamine raises several error types for damaged workbooks
        raise FileRejected(Code.FILE_UNREADABLE,
                           f"not a readable XLSX workbook ({error.__class__.__name__})") from None
    text = pl.from_arrow(table)
    assert isinstance(text, pl.DataFrame)
    notes = [CellNote(row=e.position[0], column=e.position[1], observed=_error_text(e.detail))
             for e in (errors.errors if errors else []) if e.position[0] > 0]
    return text, stamps, notes


def _error_text(detail: str) -> str:
    """`Expected string but got 'Error(NA)'` -> `#N/A` (as Excel shows it)."""
    match = re.search(r"Error\((\w+)\)", detail)
    return _EXCEL_ERRORS.get(match.group(1), f"#{match.group(1).upper()}") if match else "an unreadable cell"


def _cell(text: pl.Expr, stamp: pl.Expr, decimal: str) -> pl.Expr:
    """Text of one column: text cells as typed; number and date cells rendered (see module doc)."""
    is_date = text.str.contains(_DATETIME_TEXT)
    date_text = (
        pl.when(text.str.ends_with(" 00:00:00"))
        .then(text.str.slice(0, 10))
        .otherwise(text.str.replace(_DATETIME_TEXT, "${1}T${2}"))
    )
    number_text = text.str.replace(".", decimal, literal=True) if decimal != "." else text
    return (
        pl.when(stamp.is_null()).then(text)
        .when(is_date).then(date_text)
        .otherwise(number_text)
    )


def read_xlsx(path: Path, decimal: str = ".", sheet: str | None = None) -> RawTable:
    """One sheet of a workbook as a RawTable (first row is the header): the sheet named `sheet`
    (case-insensitive, usually the domain code) if there is one, else the first."""
    text, stamps, notes = _load(path, sheet.lower() if sheet else None)
    if text.height == 0 or text.width == 0:
        raise FileRejected(Code.FILE_EMPTY, "the first sheet is empty")
    header = ["" if v is None else str(v) for v in text.row(0)]
    names = positional(len(header))
    text = text.rename(dict(zip(text.columns, names, strict=True)))
    stamps = stamps.rename(dict(zip(stamps.columns, [f"{n}_stamp" for n in names], strict=True)))
    frame = (
        pl.concat([text, stamps], how="horizontal")
        .with_columns(pl.int_range(0, pl.len(), dtype=pl.Int64).alias(ROW))
        .slice(1)
        .select(*(_cell(pl.col(n), pl.col(f"{n}_stamp"), decimal).alias(n) for n in names), ROW)
        .filter(~pl.all_horizontal(pl.col(n).is_null() | (pl.col(n).str.strip_chars() == "") for n in names))
    )
    return RawTable(header=header, frame=frame, notes=notes)
