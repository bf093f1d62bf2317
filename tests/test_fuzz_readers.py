"""Fuzzing the format readers: whatever bytes arrive, a reader returns a table or raises the
ingestion's own `IngestProblem` (which becomes a finding naming site, file and problem). Any other
exception would stop a site's audit with a traceback instead of a finding: that is the crash the
issue asks us to rule out.

Inputs are valid files (written by tests.support.delivery_writer, as a site would) that are then damaged:
truncated, bytes overwritten, bytes inserted, or random bytes altogether.

In the suite the examples are derandomized (the same every run, so a red test is reproducible);
a long random fuzz run is `FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz_readers.py`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.binary_readers import read_parquet, read_xpt
from ingestion.csv_reader import read_csv
from ingestion.errors import IngestProblem
from ingestion.excel_reader import read_xlsx
from ingestion.table import ROW, RawTable
from tests.support.delivery_writer import encode

LONG_RUN = int(os.environ.get("FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=LONG_RUN or 60, derandomize=not LONG_RUN, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SAMPLE = pl.DataFrame({
    "STUDYID": ["SZ003"] * 4,
    "USUBJID": ["SZ003-101-001", "SZ003-101-002", "SZ003-101-003", "SZ003-101-004"],
    "LBTESTCD": ["PLAT", "HGB", "ALT", "HBSAG"],
    "LBORRES": ["<0,5", "9.5", "=SUM(A1)", "NOT DETECTED"],
    "LBORRESU": ["10^9/L", "g/dL", "U/L", ""],
    "LBDTC": ["2026-11-01", "2026-11", "2026-11-01T08:30", "01/11/2026"],
})
TEXT_SAMPLE = SAMPLE.with_columns(pl.col("LBORRES").str.replace_all("=", "+"))  # XPT: plain ASCII only
VALID = {
    "csv": encode(SAMPLE, "csv"),
    "csv-latin1": encode(SAMPLE, "csv", encoding="latin-1", separator=";"),
    "xlsx": encode(SAMPLE, "xlsx"),
    "parquet": encode(SAMPLE, "parquet"),
    "xpt": encode(TEXT_SAMPLE, "xpt"),
}
READ = {
    "csv": lambda path: read_csv(path, "utf-8"),
    "csv-latin1": lambda path: read_csv(path, "latin-1"),
    "xlsx": lambda path: read_xlsx(path, ".", sheet="lb"),
    "parquet": lambda path: read_parquet(path, "."),
    "xpt": lambda path: read_xpt(path, ".", "utf-8"),
}
SUFFIX = {"csv": ".csv", "csv-latin1": ".csv", "xlsx": ".xlsx", "parquet": ".parquet", "xpt": ".xpt"}


@st.composite
def damaged(draw: st.DrawFn, kind: str) -> bytes:
    data = bytearray(VALID[kind])
    how = draw(st.sampled_from(["truncate", "overwrite", "insert", "random"]))
    if how == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if how == "random":
        return draw(st.binary(min_size=1, max_size=4096))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        chunk = draw(st.sampled_from([b'"', b"\x00", b"\n", b"\r", b",", b";", b"\xff\xfe", b"\xe9", b"=",
                                      b"PK\x03\x04", b"\x80" * 3])) if draw(st.booleans()) else \
            draw(st.binary(min_size=1, max_size=16))
        if how == "overwrite":
            data[at: at + len(chunk)] = chunk
        else:
            data[at:at] = chunk
    return bytes(data)


def _read(kind: str, data: bytes) -> RawTable | IngestProblem:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"lb{SUFFIX[kind]}"
        path.write_bytes(data)
        try:
            return READ[kind](path)
        except IngestProblem as problem:
            return problem


def _check(kind: str, outcome: RawTable | IngestProblem) -> None:
    if isinstance(outcome, IngestProblem):
        assert outcome.detail and outcome.code  # a finding the site can act on
        return
    frame = outcome.frame if hasattr(outcome, "frame") else None
    assert isinstance(outcome.header, list)
    if frame is not None:
        assert ROW in frame.columns
        assert all(dtype == pl.String for name, dtype in frame.schema.items() if name != ROW)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_undamaged_sample_reads_back(kind: str) -> None:
    outcome = _read(kind, VALID[kind])
    assert isinstance(outcome, RawTable), outcome
    assert outcome.header == SAMPLE.columns
    assert outcome.records == SAMPLE.height


@pytest.mark.parametrize("kind", sorted(VALID))
def test_damaged_file_gives_a_table_or_a_finding_never_a_crash(kind: str) -> None:
    @FUZZ
    @given(data=damaged(kind))
    def run(data: bytes) -> None:
        _check(kind, _read(kind, data))

    run()


@FUZZ
@given(rows=st.lists(st.lists(st.text(max_size=12), min_size=1, max_size=6), min_size=1, max_size=12),
       separator=st.sampled_from([",", ";"]), encoding=st.sampled_from(["utf-8", "utf-16", "cp1252"]))
def test_arbitrary_text_grid_as_csv_never_crashes(rows: list[list[str]], separator: str, encoding: str) -> None:
    text = "\n".join(separator.join(cells) for cells in rows)
    data = text.encode(encoding, errors="replace")
    outcome = _read("csv", data) if encoding == "utf-8" else _read_enc(data, encoding)
    _check("csv", outcome)


def _read_enc(data: bytes, encoding: str) -> RawTable | IngestProblem:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lb.csv"
        path.write_bytes(data)
        try:
            return read_csv(path, encoding)
        except IngestProblem as problem:
            return problem


# found by the random fuzz run: polars' SchemaError escaped ingestion/csv_reader.py's fast path
@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_carriage_return_inside_the_header_is_a_finding_not_a_crash(encoding: str) -> None:
    data = b"S\rUDYID;USUBJID;LBTESTCD\nSZ003;SZ003-101-001;PLAT\n"
    _check("csv", _read_enc(data, encoding))
