"""The generator's file writers: exact bytes a consumer can rely on, format by format."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from datetime import UTC, datetime

import fastexcel
import numpy as np
import polars as pl
import pyreadstat
import pytest

from generator.config import FormatProfile
from generator.render import format_number
from generator.writers import encode, encode_csv, encode_csv_sites, with_decimal_comma

STAMP = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
FRAME = pl.DataFrame({
    "USUBJID": ["S-101-0001", "S-101-0001", "S-102-0001", "S-103-0001"],
    "LBSEQ": ["1", "2", "1", "1"],
    "LBORRES": ["9.5", "<0.5", "POSITIVE", "12"],
    "CMTRT": ['=HYPERLINK("http://example.invalid","x")', "Paracétamol; 1,5 g", None, "Prüfpräparat"],
})


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [(9.5, 1, "9.5"), (0.04, 2, "0.04"), (185000.0, 0, "185000"), (3.14159, 3, "3.142"), (12.0, 1, "12.0"),
     (0.6207, 1, "0.6"), (None, 1, None)],
)
def test_numbers_print_like_a_lab_system(value: float | None, decimals: int, text: str | None) -> None:
    frame = pl.DataFrame({"v": [value], "d": [decimals]}, schema={"v": pl.Float64, "d": pl.Int64})
    assert frame.select(format_number(pl.col("v"), pl.col("d"))).item() == text


def test_decimal_comma_touches_decimal_numbers_only() -> None:
    out = with_decimal_comma(FRAME, ["LBORRES", "CMTRT"])
    assert out["LBORRES"].to_list() == ["9,5", "<0,5", "POSITIVE", "12"]
    assert out["CMTRT"].to_list() == FRAME["CMTRT"].to_list()


@pytest.mark.parametrize("profile", [
    FormatProfile(default="csv"),
    FormatProfile(default="csv", encoding="utf-8-sig"),
    FormatProfile(default="csv", encoding="cp1252", separator=";", decimal=","),
    FormatProfile(default="csv", encoding="utf-16"),
])
def test_one_serialisation_split_per_site_equals_writing_each_site(profile: FormatProfile) -> None:
    counts = np.array([2, 1, 0, 1])  # site 2 has no rows at all
    split = encode_csv_sites(FRAME, "lb", [0, 1, 2, 3], counts, profile, ["LBORRES"])
    frame = with_decimal_comma(FRAME, ["LBORRES"]) if profile.decimal == "," else FRAME
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for pos in range(4):
        alone, encoding = encode_csv(frame.slice(int(starts[pos]), int(counts[pos])), profile)
        assert split[pos].data == alone and split[pos].rows == counts[pos] and split[pos].encoding == encoding
    declared = split[0].encoding
    assert declared == ("utf-8" if profile.encoding == "utf-8-sig" else profile.encoding)
    text = split[0].data.decode("utf-8-sig" if declared == "utf-8" else declared)
    back = pl.read_csv(io.StringIO(text), separator=profile.separator, infer_schema=False)
    assert back["CMTRT"].to_list()[1] == "Paracétamol; 1,5 g"


def test_xlsx_cells_are_text_and_a_formula_stays_a_string() -> None:
    item = encode(FRAME, "cm", "xlsx", FormatProfile(default="xlsx"), [], STAMP)
    with zipfile.ZipFile(io.BytesIO(item.data)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode("utf-8")
        core = archive.read("docProps/core.xml").decode("utf-8")
    assert "<f>" not in sheet
    assert "2026-11-27T23:00:00Z" in core
    back = pl.from_arrow(fastexcel.read_excel(item.data).load_sheet(0, dtypes="string").to_arrow())
    assert back["CMTRT"].to_list() == FRAME["CMTRT"].to_list()
    assert back["LBSEQ"].to_list() == ["1", "2", "1", "1"]


def test_xpt_is_v5_with_numeric_seq_and_a_pinned_timestamp() -> None:
    frame = FRAME.with_columns(pl.col("CMTRT").str.replace_all("[^ -~]", "?"))  # XPT text is ASCII here
    item = encode(frame, "lb", "xpt", FormatProfile(default="xpt"), [], STAMP)
    assert item.data.startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD")
    assert b"27NOV26:23:00:00" in item.data[:400]
    fd, path = tempfile.mkstemp(suffix=".xpt")
    try:
        os.write(fd, item.data)
        os.close(fd)
        back, meta = pyreadstat.read_xport(path, output_format="polars")
    finally:
        os.unlink(path)
    assert back.schema["LBSEQ"] == pl.Float64 and back.schema["LBORRES"] == pl.String
    assert back["LBORRES"].to_list() == ["9.5", "<0.5", "POSITIVE", "12"]
    assert back["CMTRT"][2] == ""  # a missing character value is blank in SAS
    assert meta.table_name == "LB"


def test_parquet_keeps_text_and_nulls() -> None:
    item = encode(FRAME, "cm", "parquet", FormatProfile(default="parquet"), [], STAMP)
    back = pl.read_parquet(io.BytesIO(item.data))
    assert back.schema == FRAME.schema and back.equals(FRAME)
    assert item.manifest_entry() == {"name": "cm.parquet", "sha256": item.sha256, "rows": 4, "encoding": "utf-8"}
