"""The columnar .xlsx writer: values read back exactly, well-formed parts, the promised sheet features, stable
bytes, long tables pointing to their files, and per-site workbooks built in one pass."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date
from xml.etree import ElementTree

import fastexcel
import polars as pl
import pytest

from reporting import workbook as workbook_module
from reporting.workbook import site_workbooks, workbook_bytes
from reporting.xlsx import column_letter

AS_OF = date(2026, 11, 28)
TRICKY = ["plain", "a & b < c > d", 'quote " and \' apostrophe', "  leading and trailing  ", "ünïcödé ≥ 5 µmol/L",
          "tab\there", "line\nbreak", "carriage\rreturn", "bell\x07char", "_x0041_ looks escaped", None]


def _read(data: bytes, sheet: str | int = 0) -> pl.DataFrame:
    return fastexcel.read_excel(data).load_sheet(sheet).to_polars()


def test_values_read_back_exactly() -> None:
    frame = pl.DataFrame({
        "TEXT": TRICKY,
        "INT": [*range(len(TRICKY) - 1), None],
        "FLOAT": [1.5, -2.25, 0.0, None, float("nan"), float("inf"), 3.125, 1e-3, 12345.6789, 7.0, 8.0],
        "FLAG": [True, False, None, True, False, True, False, True, False, True, False],
        "DAY": [date(2026, 1, 5), None, *[date(1999, 12, 31)] * 9],
    })
    back = _read(workbook_bytes([("T", frame)], AS_OF, "t"))
    assert back["TEXT"].to_list() == TRICKY  # text as typed, control characters and all
    assert back["INT"].to_list() == [*[float(i) for i in range(len(TRICKY) - 1)], None]
    assert back["FLOAT"].to_list()[:4] == [1.5, -2.25, 0.0, None]
    assert back["FLOAT"].to_list()[4:6] == [None, None]  # NaN and infinity have no cell value in Excel
    assert back["FLAG"].to_list()[:3] == [True, False, None]
    assert back["DAY"].cast(pl.Date).to_list()[:2] == [date(2026, 1, 5), None]


def test_every_part_is_well_formed_xml_and_the_sheet_has_its_features() -> None:
    frame = pl.DataFrame({"SHORT": ["a", "b"], "LONG": ["x" * 500, "y"], "N": [1, 2]})
    data = workbook_bytes([("Findings", frame), ("Empty", pl.DataFrame())], AS_OF, "Title & <co>")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if name.endswith((".xml", ".rels")):
                ElementTree.fromstring(archive.read(name))  # raises on malformed XML
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
        table = archive.read("xl/tables/table1.xml").decode()
        core = archive.read("docProps/core.xml").decode()
        assert "xl/tables/table2.xml" not in archive.namelist()  # an empty sheet has no table
    assert '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>' in sheet
    assert '<autoFilter ref="A1:C3"/>' in table and 'name="TableStyleLight9"' in table
    widths = [float(w) for w in re.findall(r'<col [^>]*width="([0-9.]+)"', sheet)]
    assert widths == [8.0, 60.0, 6.0]
    assert re.search(r'<col min="2" max="2" width="60" customWidth="1" style="1"/>', sheet)  # long text wraps
    assert "<f>" not in sheet and 't="inlineStr"' in sheet  # text is never a formula
    assert "2026-11-28T00:00:00Z" in core and "Title &amp; &lt;co&gt;" in core


def test_same_frames_same_bytes() -> None:
    frame = pl.DataFrame({"A": ["x", "y"], "B": [1.5, None]})
    assert workbook_bytes([("S", frame)], AS_OF, "t") == workbook_bytes([("S", frame.clone())], AS_OF, "t")
    assert workbook_bytes([("S", frame)], AS_OF, "t") != workbook_bytes([("S", frame)], date(2026, 11, 29), "t")


def test_a_table_too_long_for_a_sheet_points_to_its_file(monkeypatch) -> None:
    monkeypatch.setattr(workbook_module, "MAX_SHEET_ROWS", 3)
    long, short = pl.DataFrame({"A": list("abcd")}), pl.DataFrame({"A": list("abc")})
    data = workbook_bytes([("Validation findings", long), ("Short", short)], AS_OF, "t",
                          {"Validation findings": "validation.csv or validation.parquet"})
    note = _read(data, "Validation findings")
    assert note.columns == ["NOTE"] and note.height == 1
    assert note["NOTE"][0] == ("Validation findings has 4 rows, more than a sheet shows comfortably (3): open "
                               "validation.csv or validation.parquet, which holds every row.")
    assert _read(data, "Short")["A"].to_list() == list("abc")


def test_site_workbooks_hold_each_sites_rows_as_its_own_workbook_would() -> None:
    queries = pl.DataFrame({
        "QUERY_ID": [f"Q{i}" for i in range(7)],
        "SITEID": ["101", "102", "101", None, "102", "101", "103"],
        "DETAIL": ["=cmd()", "a < b", "long " * 30, "no site", None, "x", "y"],
        "DAYS_OPEN": [1, 2, None, 4, 5, 6, 7],
    })
    detail = pl.DataFrame({"SITEID": ["101", "101", "102", "104"], "N": [1, 2, 3, 4]})
    books = site_workbooks([("Queries", queries), ("Detail", detail)], AS_OF, title=lambda s: f"queries {s}",
                           where=lambda s, sheet: f"site_queries/{s}.csv")
    assert sorted(books) == ["101", "102", "103", "UNKNOWN"]  # the sites of the first sheet
    for site, data in books.items():
        rows = queries.filter(pl.col("SITEID").fill_null("UNKNOWN") == site)
        details = detail.filter(pl.col("SITEID") == site)
        alone = workbook_bytes([("Queries", rows), ("Detail", details)], AS_OF, f"queries {site}")
        assert _read(data).equals(_read(alone)), site
        assert _read(data, "Detail")["N"].to_list() == details["N"].to_list()
    assert _read(books["101"])["DETAIL"][0] == "'=cmd()"  # neutralised like every other cell
    with zipfile.ZipFile(io.BytesIO(books["102"])) as archive:
        assert "<dc:title>queries 102</dc:title>" in archive.read("docProps/core.xml").decode()


@pytest.mark.parametrize(("index", "letter"), [(0, "A"), (25, "Z"), (26, "AA"), (51, "AZ"), (702, "AAA")])
def test_column_letters(index: int, letter: str) -> None:
    assert column_letter(index) == letter
