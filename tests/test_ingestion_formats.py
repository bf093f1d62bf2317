"""Every format and encoding of DTS section 1 reads back to the same text; typed cells become faithful text."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter
from test_ingestion_support import D3, NOW, STUDY, codes, delivered, sample
from test_ingestion_support import store as store

from core.source import source_text
from ingestion import Code, ingest_site
from ingestion.binary_readers import read_parquet, read_xpt
from ingestion.csv_reader import detect_separator, read_csv
from ingestion.excel_reader import read_xlsx
from ingestion.text import float_text
from tests.support.delivery_writer import DeliveryFile, encode, write_delivery

ACCENTED = pl.DataFrame({
    "STUDYID": ["SZ003"] * 3,
    "USUBJID": ["SZ003-101-001", "SZ003-101-002", "SZ003-101-003"],
    "CMTRT": ["Paracétamol 500 mg", "Ibuprofène", "Œstrogène – 2 µg"],  # Œ – are cp1252, not latin-1
    "CMDECOD": ["PARACETAMOL", "IBUPROFEN", "ESTROGENS"],
    "CMCAT": ["OTHER", "OTHER", "OTHER"],
    "CMSTDTC": ["2026-01", "2025", "2026-01-05T10:30"],
    "CMENDTC": [None, "", "2026-02-01"],
})


@pytest.mark.parametrize(
    ("encoding", "bom", "separator"),
    [("utf-8", False, ","), ("utf-8", True, ","), ("utf-8", True, ";"), ("cp1252", False, ";"),
     ("utf-16", False, ","), ("utf-16", False, "\t"), ("utf-8", False, "\t")],
)
def test_csv_encodings_and_separators_read_back_identically(store, encoding, bom, separator) -> None:
    data = encode(ACCENTED, "csv", encoding=encoding, separator=separator, bom=bom)
    write_delivery(store, STUDY, "101", D3, [DeliveryFile("cm.csv", data, 3, encoding=encoding)])
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.findings.height == 0, result.findings["MESSAGE"].to_list()
    # an empty field is missing (null), whatever the format could express
    expected = ACCENTED.with_columns(pl.col("CMENDTC").replace("", None))
    assert delivered(result.frames["cm"]).equals(expected)


def test_latin1_csv_reads_accented_text() -> None:
    frame = ACCENTED.with_columns(pl.Series("CMTRT", ["Paracétamol 500 mg", "Ibuprofène", "Estradiol 2 µg"]))
    raw = _csv(encode(frame, "csv", encoding="latin-1"), "latin-1")
    assert raw.header == list(frame.columns)
    assert raw.frame["c2"].to_list() == frame["CMTRT"].to_list()


def _csv(data: bytes, encoding: str):
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".csv") as tmp:
        tmp.write(data)
        tmp.flush()
        return read_csv(Path(tmp.name), encoding)


def test_decimal_comma_kept_as_text_and_marked(store) -> None:
    lb = sample("lb", n=2).with_columns(pl.Series("LBORRES", ["9,5", "<0,5"]))
    data = encode(lb, "csv", separator=";")
    write_delivery(store, STUDY, "101", D3, [DeliveryFile("lb.csv", data, 2, decimal=",")])
    frame = ingest_site(store, STUDY, "101", now=NOW).frames["lb"]
    assert frame["LBORRES"].to_list() == ["9,5", "<0,5"]
    assert frame["DECIMAL"].to_list() == [",", ","]


def test_quoted_fields_with_separators_quotes_and_newlines() -> None:
    data = (b'STUDYID,USUBJID,MHTERM,MHOCCUR\r\n'
            b'SZ003,S-1,"COPD, severe ""GOLD 3""",Y\r\n'
            b'\r\n'
            b'SZ003,S-2,"line one\r\nline two",N\r\n')
    raw = _csv(data, "utf-8")
    assert raw.records == 2
    assert raw.frame["c2"].to_list() == ['COPD, severe "GOLD 3"', "line one\r\nline two"]
    assert raw.frame["__ROW__"].to_list() == [1, 2]


@pytest.mark.parametrize(
    ("header", "separator"),
    [("A,B,C", ","), ("A;B;C", ";"), ("A\tB\tC", "\t"), ('"A;1",B,C', ","), ("A", ","), ("A;B,C;D", ";")],
)
def test_separator_detected_from_header(header: str, separator: str) -> None:
    assert detect_separator(header + "\n1,2,3\n") == separator


def _xlsx_with_typed_cells() -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet("lb")
    date_only = book.add_format({"num_format": "dd/mm/yyyy"})
    date_time = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    sheet.write_row(0, 0, ["STUDYID", "USUBJID", "LBTESTCD", "LBORRES", "LBORRESU", "LBDTC"])
    rows = [
        ("SZ003", "S-1", "HGB", 9.5, "g/dL", dt.datetime(2026, 1, 5)),  # number cell, date cell
        ("SZ003", "S-2", "PLAT", 150, "10^9/L", dt.datetime(2026, 1, 5, 10, 30)),  # integer, date+time
        ("SZ003", "S-3", "HBSAG", "NEGATIVE", None, "2026-01"),  # text cell, partial date as text
        ("SZ003", "S-4", "ALT", "<0.5", "U/L", "2026-01-05 00:00:00"),  # text that looks like a datetime
        ("SZ003", "S-5", "WBC", 0.1 + 0.2, "10^9/L", "2026"),
    ]
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if isinstance(value, dt.datetime):
                sheet.write_datetime(r, c, value, date_only if value.hour == 0 else date_time)
            elif value is not None:
                sheet.write(r, c, value)
    sheet.write_string(7, 0, "SZ003")  # after a blank sheet row
    for c, value in enumerate(["S-6", "CREAT", "1.0", "mg/dL", "2026-01-06"], start=1):
        sheet.write_string(7, c, value)
    book.close()
    return buffer.getvalue()


@pytest.mark.parametrize("decimal", [".", ","])
def test_xlsx_cells_become_the_text_a_person_sees(tmp_path: Path, decimal: str) -> None:
    path = tmp_path / "lb.xlsx"
    path.write_bytes(_xlsx_with_typed_cells())
    raw = read_xlsx(path, decimal)
    mark = decimal
    assert raw.header == ["STUDYID", "USUBJID", "LBTESTCD", "LBORRES", "LBORRESU", "LBDTC"]
    assert raw.records == 6  # the blank sheet row is not a record
    assert raw.frame["c3"].to_list() == [f"9{mark}5", "150", "NEGATIVE", "<0.5", f"0{mark}3", "1.0"]
    assert raw.frame["c5"].to_list() == ["2026-01-05", "2026-01-05T10:30:00", "2026-01",
                                         "2026-01-05 00:00:00", "2026", "2026-01-06"]
    assert raw.frame["__ROW__"].to_list() == [1, 2, 3, 4, 5, 7]  # sheet row = data row + 1


def test_xlsx_delivery_end_to_end(store) -> None:
    data = _xlsx_with_typed_cells()
    write_delivery(store, STUDY, "101", D3, [DeliveryFile("lb.xlsx", data, 6)])
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.findings.height == 0
    frame = result.frames["lb"]
    assert frame.select(source_text()).to_series().to_list()[-1] == f"{STUDY}/101/{D3}/lb.xlsx:7"
    assert frame["LBORRESU"].to_list()[2] is None


def test_parquet_typed_columns_become_text(tmp_path: Path) -> None:
    typed = pl.DataFrame({
        "STUDYID": ["SZ003", "SZ003"],
        "INT": pl.Series([7, None], dtype=pl.Int32),
        "FLOAT": [9.5, 0.1 + 0.2],
        "BIG": [1e20, 2.5e-5],
        "DATE": [dt.date(2026, 1, 5), None],
        "TS": [dt.datetime(2026, 1, 5, 10, 30), dt.datetime(2026, 1, 5)],
        "FLAG": [True, False],
        "DEC": pl.Series([Decimal("1.50"), Decimal("-2.25")], dtype=pl.Decimal(5, 2)),
        "CAT": pl.Series(["A", "B"], dtype=pl.Categorical),
    })
    path = tmp_path / "x.parquet"
    typed.write_parquet(path)
    raw = read_parquet(path, ",")
    assert raw.frame.drop("__ROW__").rows() == [
        ("SZ003", "7", "9,5", "100000000000000000000", "2026-01-05", "2026-01-05T10:30:00", "true", "1,50", "A"),
        ("SZ003", None, "0,3", "0,000025", None, "2026-01-05T00:00:00", "false", "-2,25", "B"),
    ]


def test_parquet_nested_column_rejects_the_file(store) -> None:
    frame = sample("vs").with_columns(pl.Series("NESTED", [[1], [2], [3]]))
    write_delivery(store, STUDY, "101", D3, [DeliveryFile("vs.parquet", encode(frame, "parquet"), 3)])
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert codes(result.findings) == [Code.FILE_UNSUPPORTED_TYPE]
    assert result.findings["VARIABLE"][0] == "NESTED"


def test_xpt_numbers_without_float_noise(tmp_path: Path) -> None:
    frame = pl.DataFrame({
        "STUDYID": ["SZ003", "SZ003", "SZ003"],
        "LBORRES": ["9.5", "<0.5", ""],
        "LBSTRESN": [9.5, 0.1, None],
        "N": [1.0, 12345678901.0, 0.30000000000000004],
    })
    path = tmp_path / "lb.xpt"
    path.write_bytes(encode(frame, "xpt"))
    raw = read_xpt(path)
    assert raw.header == ["STUDYID", "LBORRES", "LBSTRESN", "N"]
    assert raw.frame.drop("__ROW__").rows() == [
        ("SZ003", "9.5", "9.5", "1"),
        ("SZ003", "<0.5", "0.1", "12345678901"),
        ("SZ003", "", None, "0.3"),  # '' becomes null later, with every other format
    ]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet", "xpt"])
def test_every_format_through_a_delivery(store, fmt: str) -> None:
    tables = {"dm": sample("dm"), "vs": sample("vs")}
    files = [DeliveryFile(f"{d}.{fmt}", encode(t, fmt), t.height) for d, t in tables.items()]
    write_delivery(store, STUDY, "101", D3, files)
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.findings.height == 0
    for domain, table in tables.items():
        assert delivered(result.frames[domain]).equals(table)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([9.5, 1.0, -0.0, 150.0], ["9.5", "1", "0", "150"]),
        ([0.1 + 0.2, 9.500000000000002, 1 / 3], ["0.3", "9.5", "0.333333333333333"]),
        ([1e-7, 2.5e-5, 1e20], ["0.0000001", "0.000025", "100000000000000000000"]),
        ([float("nan"), None, float("inf")], [None, None, "inf"]),
    ],
)
def test_float_text(values: list[float | None], expected: list[str | None]) -> None:
    assert float_text(pl.Series("x", values, dtype=pl.Float64), ".").to_list() == expected


def test_xlsx_sheet_named_like_the_domain_is_read(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    book.add_worksheet("Instructions").write(0, 0, "Fill in the LB sheet")
    lb = book.add_worksheet("Lb")
    frame = sample("lb", n=2)
    lb.write_row(0, 0, frame.columns)
    for r, row in enumerate(frame.rows(), start=1):
        lb.write_row(r, 0, row)
    book.close()
    path = tmp_path / "lb.xlsx"
    path.write_bytes(buffer.getvalue())
    raw = read_xlsx(path, ".", sheet="lb")
    assert raw.header == frame.columns and raw.records == 2
    assert read_xlsx(path, ".").header == ["Fill in the LB sheet"]  # no name given: the first sheet


def test_xlsx_error_cells_are_missing_values_with_a_finding(store) -> None:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet("LB")
    frame = sample("lb", n=3)
    sheet.write_row(0, 0, frame.columns)
    for r, row in enumerate(frame.rows(), start=1):
        sheet.write_row(r, 0, row)
    result_col = frame.columns.index("LBORRES")
    sheet.write_formula(2, result_col, "=NA()", None, "#N/A")
    sheet.write_formula(3, result_col, "=1/0", None, "#DIV/0!")
    book.close()
    write_delivery(store, STUDY, "101", D3, [DeliveryFile("lb.xlsx", buffer.getvalue(), 3)])
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.frames["lb"]["LBORRES"].to_list() == [frame["LBORRES"][0], None, None]  # rows kept
    assert codes(result.findings) == [Code.VALUE_EXCEL_ERROR] * 2
    assert result.findings.select("VARIABLE", "OBSERVED", "USUBJID", "SOURCE").rows() == [
        ("LBORRES", "#N/A", "SZ003-101-002", f"{STUDY}/101/{D3}/lb.xlsx:2"),
        ("LBORRES", "#DIV/0!", "SZ003-101-003", f"{STUDY}/101/{D3}/lb.xlsx:3"),
    ]
    lb = next(i for i in result.inputs if i.key.endswith("lb.xlsx"))
    assert (lb.rows_read, lb.rows_rejected) == (3, 0)


def test_a_field_longer_than_the_csv_modules_default_limit_is_read_by_the_exact_reader(tmp_path: Path) -> None:
    import csv

    huge = "x" * 200_000  # Python's csv module stops at 131,072 characters by default
    path = tmp_path / "lb.csv"
    path.write_text(f'STUDYID,USUBJID,LBORRES\nSZ003,A,"{huge}"\nSZ003,B,1,extra\n', encoding="utf-8")
    raw = read_csv(path, "utf-8")  # the ragged record sends the file to the exact reader
    assert raw.frame["c2"].to_list() == [huge] and [(r.row, r.fields) for r in raw.ragged] == [(2, 4)]
    assert csv.field_size_limit() >= len(huge)  # raised for every thread, never put back under a reader
