"""Reading a returned workbook: the `Review` sheet of report.xlsx, or a site's query workbook.

Cells are read with fastexcel (calamine, as ingestion reads site workbooks): every cell as text, nothing
evaluated. A cell holding a formula is read as its formula text (`=HYPERLINK(...)`), never as the
value Excel cached for it: the formulas are found in the sheet's XML (defusedxml over the zip member:
entity declarations and external references are refused). A formula where an
identifier, an action or a name belongs refuses that row; in a free text it is kept as text (and
neutralised wherever it is published, like any site value).

The workbook is checked before any row is looked at: its size, its unzipped size (a zip bomb is
refused), the sheet, the columns, and that it is for this study (and, for a site workbook, one site).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

import fastexcel
import polars as pl
from defusedxml import ElementTree

MAX_BYTES = 20 * 1024 * 1024
MAX_UNZIPPED = 200 * 1024 * 1024
REVIEW_SHEET = "Review"
SITE_SHEET = "Queries"
#: a site workbook's findings left out of its Queries (another finding asks the same): QUERY_ID, FINDING_ID
ALSO_ANSWERED_SHEET = "Also answered"
#: columns a returned review sheet must have, and a site's query sheet
REVIEW_COLUMNS = ("FINDING_ID", "STUDYID", "SITEID", "EVIDENCE_HASH", "DECISION", "TEXT", "REVIEWER")
SITE_COLUMNS = ("FINDING_IDS", "STUDYID", "SITEID", "SITE_RESPONSE", "RESPONDED_BY")
#: a site workbook made before queries were consolidated names one finding per row
SITE_COLUMNS_PER_FINDING = ("FINDING_ID", "STUDYID", "SITEID", "SITE_RESPONSE", "RESPONDED_BY")
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_CELL = re.compile(r"([A-Z]{1,3})(\d+)")


class WorkbookRefused(ValueError):
    """The whole workbook is refused (nothing of it is applied); the message says why."""


@dataclass(frozen=True)
class ReturnedWorkbook:
    kind: str  # "REVIEW" or "SITE"
    sheet: str
    rows: pl.DataFrame  # ROW (Excel's row number), the sheet's columns as text, and <COLUMN>_FORMULA flags
    #: a site workbook's Also answered sheet as `rows` (QUERY_ID, FINDING_ID, ...); None when it has none
    also: pl.DataFrame | None = None
    notes: tuple[str, ...] = ()  # what of the workbook was not read, and why (its receipt says it)


def _unzipped(data: bytes) -> zipfile.ZipFile:
    if len(data) > MAX_BYTES:
        raise WorkbookRefused(f"the workbook is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        raise WorkbookRefused("not an .xlsx workbook (not a zip archive)") from None
    if total > MAX_UNZIPPED:
        raise WorkbookRefused("the workbook unpacks to more than "
                              f"{MAX_UNZIPPED // (1024 * 1024)} MB: refused as a possible zip bomb")
    if "xl/workbook.xml" not in archive.namelist():
        raise WorkbookRefused("not an .xlsx workbook (no xl/workbook.xml)")
    return archive


def _sheet_member(archive: zipfile.ZipFile, sheet: str) -> str | None:
    """The zip member of the worksheet named `sheet` (via workbook.xml and its relationships)."""
    book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    rel_id = next((s.get(f"{_REL}id") for s in book.iter(f"{_MAIN}sheet") if s.get("name") == sheet), None)
    if rel_id is None or "xl/_rels/workbook.xml.rels" not in archive.namelist():
        return None
    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    target = next((r.get("Target") for r in rels.iter(f"{_PKG}Relationship") if r.get("Id") == rel_id), None)
    if not target:
        return None
    member = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return member if member in archive.namelist() else None


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + (ord(letter) - 64)
    return index - 1


def _cells(archive: zipfile.ZipFile, member: str) -> tuple[int | None, pl.DataFrame]:
    """(the first row holding a value, 0-based; formula cells: ABS_ROW, ABS_COL, FORMULA)."""
    first: int | None = None
    found: list[tuple[int, int, str]] = []
    with archive.open(member) as stream:
        for _event, element in ElementTree.iterparse(stream):
            if element.tag != f"{_MAIN}c":
                continue
            match = _CELL.fullmatch(element.get("r") or "")
            formula = element.find(f"{_MAIN}f")
            has_value = formula is not None or element.find(f"{_MAIN}v") is not None \
                or element.find(f"{_MAIN}is") is not None
            if match and has_value:
                row = int(match.group(2)) - 1
                first = row if first is None else min(first, row)
                if formula is not None:
                    found.append((row, _column_index(match.group(1)), "=" + (formula.text or "")))
            element.clear()
    schema = {"ABS_ROW": pl.Int64, "ABS_COL": pl.Int64, "FORMULA": pl.String}
    return first, pl.DataFrame(found, schema=schema, orient="row") if found else pl.DataFrame(schema=schema)


def _load(reader: fastexcel.ExcelReader, sheet: str) -> tuple[pl.DataFrame, dict[str, int]]:
    """The sheet as text (first row = header, upper-cased names) and each column's absolute index."""
    loaded = reader.load_sheet(sheet, header_row=0, dtypes="string")
    frame = loaded.to_polars()
    columns = {info.name: info.absolute_index for info in loaded.available_columns()}
    names = {name: str(name).strip().upper() for name in frame.columns}
    if len(set(names.values())) != len(names):
        raise WorkbookRefused(f"the {sheet} sheet names a column twice")
    return frame.rename(names), {names[name]: index for name, index in columns.items() if name in names}


def read_returned(data: bytes) -> ReturnedWorkbook:
    """The rows of a returned review or site workbook, every cell as text, formulas as their text."""
    archive = _unzipped(data)
    try:
        reader = fastexcel.read_excel(data)
        sheets = {name.strip().lower(): name for name in reader.sheet_names}
    except Exception as error:  # calamine raises several error types for damaged workbooks
        raise WorkbookRefused(f"not a readable .xlsx workbook ({type(error).__name__})") from None
    for kind, wanted, required in (("REVIEW", REVIEW_SHEET, REVIEW_COLUMNS), ("SITE", SITE_SHEET, SITE_COLUMNS)):
        sheet = sheets.get(wanted.lower())
        if sheet is None:
            continue
        try:
            frame, positions = _load(reader, sheet)
        except WorkbookRefused:
            raise
        except Exception as error:
            raise WorkbookRefused(f"the {sheet} sheet cannot be read ({type(error).__name__})") from None
        if kind == "SITE" or "DECISION" in frame.columns or sheets.get(SITE_SHEET.lower()) is None:
            if kind == "SITE" and "FINDING_ID" in frame.columns and "FINDING_IDS" not in frame.columns:
                required = SITE_COLUMNS_PER_FINDING
            missing = [c for c in required if c not in frame.columns]
            if missing:
                raise WorkbookRefused(f"the {sheet} sheet lacks the column(s) {', '.join(missing)}: "
                                      "return the workbook as the audit made it")
            also, notes = _also_answered(reader, archive, sheets) if kind == "SITE" else (None, ())
            return ReturnedWorkbook(kind, sheet, _with_formulas(frame, positions, archive, sheet), also, notes)
    raise WorkbookRefused(f"no {REVIEW_SHEET} sheet (a report.xlsx) nor {SITE_SHEET} sheet (a site's query "
                          "workbook): not a workbook the audit made")


def _also_answered(reader: fastexcel.ExcelReader, archive: zipfile.ZipFile,
                   sheets: dict[str, str]) -> tuple[pl.DataFrame | None, tuple[str, ...]]:
    """A site workbook's Also answered sheet (QUERY_ID, FINDING_ID and formula flags), or None when it has none
    (a workbook made before it existed: nothing to say) or it is not that table (a pointer, a sheet the site
    rearranged: a note for the receipt, since the answers are then recorded for the listed findings only)."""
    sheet = sheets.get(ALSO_ANSWERED_SHEET.lower())
    if sheet is None:
        return None, ()
    try:
        frame, positions = _load(reader, sheet)
    except WorkbookRefused:
        raise
    except Exception as error:  # calamine raises several error types for damaged sheets
        raise WorkbookRefused(f"the {sheet} sheet cannot be read ({type(error).__name__})") from None
    if not {"QUERY_ID", "FINDING_ID"} <= set(frame.columns):
        return None, (f"the {sheet} sheet has no QUERY_ID and FINDING_ID columns (a note, or columns renamed): "
                      "each answer was recorded for the findings its query lists only",)
    return _with_formulas(frame, positions, archive, sheet), ()


def _with_formulas(frame: pl.DataFrame, positions: dict[str, int], archive: zipfile.ZipFile,
                   sheet: str) -> pl.DataFrame:
    """`frame` with ROW (Excel's 1-based row number) and formula cells replaced by their formula text;
    `<COLUMN>_FORMULA` is true where a cell held a formula."""
    member = _sheet_member(archive, sheet)
    first, formulas = _cells(archive, member) if member else (None, pl.DataFrame(
        schema={"ABS_ROW": pl.Int64, "ABS_COL": pl.Int64, "FORMULA": pl.String}))
    header = first if first is not None else 0
    frame = frame.with_row_index("_I").with_columns((pl.col("_I").cast(pl.Int64) + header + 1).alias("ABS_ROW"))
    for name, index in positions.items():
        cells = formulas.filter(pl.col("ABS_COL") == index).select("ABS_ROW", pl.col("FORMULA").alias("_F"))
        frame = (frame.join(cells, on="ABS_ROW", how="left", maintain_order="left")
                 .with_columns(pl.coalesce("_F", pl.col(name)).alias(name), pl.col("_F").is_not_null()
                               .alias(f"{name}_FORMULA")).drop("_F"))
    return frame.with_columns((pl.col("ABS_ROW") + 1).alias("ROW")).drop("_I", "ABS_ROW")
