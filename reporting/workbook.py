"""Excel workbooks (report.xlsx, site_queries/<SITEID>.xlsx): one sheet per table, a frozen header
row, filters, and column widths that fit the content (capped, so a long evidence sentence wraps
instead of making a column a screen wide).

Text cells are neutralised against formula injection (core.safety) *and* written with
`strings_to_formulas` off, so no cell of a site's value can ever become a formula.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime

import polars as pl
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from core.safety import neutralise

MAX_WIDTH = 60
MIN_WIDTH = 6
WORKBOOK_OPTIONS = {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False,
                    "strings_to_urls": False}


def _widths(frame: pl.DataFrame) -> list[int]:
    if frame.height:
        lengths = frame.select([pl.col(c).cast(pl.String).str.len_chars().max().fill_null(0).alias(c)
                                for c in frame.columns]).row(0)
    else:
        lengths = (0,) * frame.width
    return [max(MIN_WIDTH, min(MAX_WIDTH, max(len(c) + 3, int(n) + 2))) for c, n in zip(frame.columns, lengths,
                                                                                     strict=True)]


def _sheet_name(name: str) -> str:
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in name)
    return cleaned[:31]


#: called after a sheet is written, with the worksheet and the frame written (e.g. to add drop-downs)
SheetHook = Callable[[Worksheet, pl.DataFrame], None]


def workbook_bytes(sheets: Sequence[tuple[str, pl.DataFrame]], as_of: date, title: str,
                   hooks: Mapping[str, SheetHook] | None = None) -> bytes:
    """An .xlsx with one sheet per (name, frame); document dates fixed to `as_of` for stable bytes.

    `hooks`: sheet name -> a function that finishes that sheet (the Review sheet's drop-downs)."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, WORKBOOK_OPTIONS)
    stamp = datetime(as_of.year, as_of.month, as_of.day)
    book.set_properties({"title": title, "created": stamp, "author": "screening-audit"})
    wrap = book.add_format({"text_wrap": True, "valign": "top"})
    for name, frame in sheets:
        safe = neutralise(frame.with_columns([pl.col(c).cast(pl.String) for c, t in frame.schema.items()
                                              if t == pl.Null]))
        sheet = book.add_worksheet(_sheet_name(name))
        if safe.width == 0:
            continue
        safe.write_excel(book, sheet, autofilter=True, autofit=False, freeze_panes=(1, 0),
                         table_style="Table Style Light 9", float_precision=4,
                         dtype_formats={pl.Date: "yyyy-mm-dd"})
        for i, width in enumerate(_widths(safe)):
            sheet.set_column(i, i, width, wrap if width == MAX_WIDTH else None)
        if hooks and name in hooks:
            hooks[name](sheet, safe)
    book.close()
    return buffer.getvalue()
