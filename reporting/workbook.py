"""Excel workbooks (report.xlsx, site_queries/<SITEID>.xlsx): one sheet per table, a frozen header
row, filters, and column widths that fit the content (capped, so a long evidence sentence wraps
instead of making a column a screen wide).

Text cells are neutralised against formula injection (core.safety) *and* written as inline strings
(reporting.xlsx), so no cell of a site's value can ever become a formula. A table longer than
`MAX_SHEET_ROWS` is not repeated in a sheet Excel handles badly: the sheet says how many rows it has
and which CSV / Parquet file holds them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date

import polars as pl

from core.safety import neutralise
from reporting.xlsx import (
    MAX_WIDTH,
    MIN_WIDTH,
    ROW_NUMBER,
    DropDown,
    Sheet,
    prepare,
    row_xml,
    sheet_of,
    widths,
    with_row_numbers,
    workbook,
)

__all__ = ["MAX_SHEET_ROWS", "MAX_WIDTH", "MIN_WIDTH", "DropDown", "Sheet", "pointer", "sheet", "site_workbooks",
           "workbook", "workbook_bytes"]

#: beyond this many rows a sheet points to the table's CSV / Parquet instead of repeating it (Excel's
#: filters, sorting and scrolling become slow well before its 1,048,576-row limit)
MAX_SHEET_ROWS = 50_000


def pointer(name: str, rows: int, where: str) -> pl.DataFrame:
    """The one-row sheet that stands for a table too long for a comfortable sheet."""
    return pl.DataFrame({"NOTE": [f"{name} has {rows:,} rows, more than a sheet shows comfortably "
                                  f"({MAX_SHEET_ROWS:,}): open {where}, which holds every row."]})


def sheet(name: str, frame: pl.DataFrame, where: str | None, drop_downs: Sequence[DropDown] = ()) -> Sheet:
    """One sheet of a workbook as `workbook_bytes` writes it (its pointer when the table is too long;
    `where`: the file(s) holding the table): for a workbook whose sheets are made by several jobs."""
    if frame.height > MAX_SHEET_ROWS:
        return sheet_of(name, pointer(name, frame.height, where or "the table's CSV or Parquet file"))
    return replace(sheet_of(name, neutralise(frame)), drop_downs=tuple(drop_downs))


def workbook_bytes(sheets: Sequence[tuple[str, pl.DataFrame]], as_of: date, title: str,
                   files: Mapping[str, str] | None = None,
                   drop_downs: Mapping[str, Sequence[DropDown]] | None = None) -> bytes:
    """An .xlsx with one sheet per (name, frame); document dates fixed to `as_of` for stable bytes.

    `files` names, per sheet, the file(s) holding the same table, for a table too long to repeat;
    `drop_downs`, per sheet, its in-cell lists (the Review sheet's DECISION).
    """
    return workbook([sheet(name, frame, (files or {}).get(name), (drop_downs or {}).get(name, ()))
                     for name, frame in sheets], as_of, title)


def _site_sheets(frame: pl.DataFrame, sheet: str, where: Callable[[str, str], str], site: str,
                 neutralised: bool) -> dict[str, Sheet]:
    """SITE -> its sheet of `frame`, every row's cell XML computed once for all sites (row numbers
    counted per site), then joined per site."""
    frame = prepare(frame if neutralised else neutralise(frame))
    frame = frame.with_columns(pl.col(site).fill_null("UNKNOWN").alias("_SITE"))
    frame = frame.sort("_SITE", maintain_order=True)
    columns = [c for c in frame.columns if c != "_SITE"]
    data = frame.select(*columns, "_SITE")
    fitted = widths(data, group="_SITE")
    wrapped = {c for c in columns if (fitted[c].max() or 0) >= MAX_WIDTH}
    rows = with_row_numbers(data, group="_SITE").select(
        pl.col("_SITE"), row_xml(data, pl.col(ROW_NUMBER), wrapped, group="_SITE").alias("_XML"),
    ).group_by("_SITE", maintain_order=True).agg(pl.col("_XML").str.join("").cast(pl.Binary), pl.len().alias("_N"))
    sizes = {row[0]: row[1:] for row in fitted.select("_SITE", *columns).iter_rows()}
    out: dict[str, Sheet] = {}
    for name, xml, count in rows.iter_rows():
        if count > MAX_SHEET_ROWS:
            out[name] = sheet_of(sheet, pointer(sheet, count, where(name, sheet)))
        else:
            out[name] = Sheet(sheet, tuple(columns), tuple(float(w) for w in sizes[name]), xml, count)
    return out


def site_workbooks(sheets: Sequence[tuple[str, pl.DataFrame]], as_of: date, *, title: Callable[[str], str],
                   where: Callable[[str, str], str], site: str = "SITEID",
                   neutralised: bool = False) -> dict[str, bytes]:
    """One workbook per site (`site` column, null as UNKNOWN) with one sheet per (name, frame) of
    `sheets`, each sheet built in one pass over all sites; only the zip packaging is per site. The sites
    are those of the first frame. `where(site, sheet)` says which file holds a sheet too long to repeat.
    `neutralised`: the text is already neutralised (core.safety), as the
    CSV files of the same rows were.
    """
    if not sheets:
        return {}
    built = [(_site_sheets(frame, name, where, site, neutralised), sheet_of(name, frame.clear()))
             for name, frame in sheets]
    first, _ = built[0]
    return {code: workbook([per_site.get(code, empty) for per_site, empty in built], as_of, title(code))
            for code in first}
