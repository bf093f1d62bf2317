"""Published tables: canonical order, byte-stable encodings, formula-injection neutralisation."""

from __future__ import annotations

import io
import random
import re
import zipfile
from datetime import date

import fastexcel
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.safety import _RISKY, RISKY_FIRST, may_be_risky, neutralise
from reporting.tables import TABLES, canonical, csv_bytes, parquet_bytes, sort_total
from reporting.workbook import workbook_bytes

ATTACKS = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+2", "-1+2", "@SUM(A1:A9)", "\tTAB", "\rCR", "＝1+1"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("＝1+1", "'＝1+1"),
        ("-1.5", "-1.5"),  # a genuine number stays a number
        ("+3", "+3"),
        ("-2e-3", "-2e-3"),
        ("-", "'-"),
        ("9.5", "9.5"),
        ("mg/dL", "mg/dL"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralise_values(value, expected):
    frame = pl.DataFrame({"V": [value], "N": [1]})
    assert neutralise(frame).row(0) == (expected, 1)


def test_neutralise_keeps_nulls():
    assert neutralise(pl.DataFrame({"V": [None, "=x"]}, schema={"V": pl.String}))["V"].to_list() == [None, "'=x"]


def _validation(values: list[str]) -> pl.DataFrame:
    n = len(values)
    return pl.DataFrame({
        "STUDYID": ["SZ003"] * n, "SITEID": ["101"] * n, "USUBJID": [f"SZ003-101-{i:04d}" for i in range(n)],
        "DOMAIN": ["LB"] * n, "VARIABLE": ["LBORRES"] * n, "EXPECTATION": ["expect_x"] * n, "OBSERVED": values,
        "MESSAGE": ["bad"] * n, "SOURCE": [f"k:{i}" for i in range(n)],
    })


def test_the_first_byte_screen_flags_every_text_the_pattern_would():
    """may_be_risky (first-byte comparisons) is a superset of the risky-first-character pattern for every first
    character there is: a text it passes over is never one neutralise should have quoted."""
    points = [p for p in range(1, 0x110000) if not 0xD800 <= p <= 0xDFFF]
    frame = pl.DataFrame({"T": [chr(p) + tail for p in points for tail in ("", "1+2")]})
    flags = frame.select(exact=pl.col("T").str.contains(_RISKY), screen=may_be_risky("T"))
    assert flags.filter(pl.col("exact") & ~pl.col("screen")).height == 0
    assert flags["exact"].sum() == 2 * len(RISKY_FIRST)
    # a screen, not every text: of texts starting with a character from ! to DEL, only those starting with one
    # of + , - = > ? @ pass it
    printable = flags.head(2 * 0x7F).tail(2 * (0x7F - 0x20))  # code points 0x21 to 0x7F (the frame starts at 1)
    assert printable["screen"].sum() == 2 * 7


def _quoted_one_by_one(value: str | None) -> str | None:
    """The rule, value by value: a risky first character, and not a plain number."""
    if value is None or not re.match(_RISKY, value) or re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value):
        return value
    return "'" + value


_FIRSTS = st.sampled_from([*RISKY_FIRST, "", "a", "Z", "0", "9", ".", ",", "<", ">", "A", "~", "\x00", "\x0e", "é",
                           "\uff0a", "\uff21", "\U0001f600"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.builds(lambda a, b: a + b, _FIRSTS, st.text(max_size=4))),
                         min_size=1, max_size=6), min_size=1, max_size=4))
def test_neutralise_is_the_rule_value_by_value(columns):
    """However a column's texts spread (its smallest and largest text decide whether it is scanned at all), every
    value comes out as the rule says one by one."""
    height = max(len(c) for c in columns)
    # named like polars' own output names (`_0`: a first version named its maxima so, and collided)
    frame = pl.DataFrame({f"_{i}": pl.Series(c + [None] * (height - len(c)), dtype=pl.String)
                          for i, c in enumerate(columns)})
    out = neutralise(frame)
    for name in frame.columns:
        assert out[name].to_list() == [_quoted_one_by_one(v) for v in frame[name].to_list()]


@pytest.mark.parametrize("attack", ATTACKS)
def test_neutralise_quotes_an_attack_in_any_column_of_a_wide_frame(attack):
    """The screen picks the column an attack is in, whatever its place, among columns that need nothing."""
    frame = pl.DataFrame({f"C{i}": ["SZ003-101-0001", "IN10.PLT", "MET", "5.2"] for i in range(6)})
    for column in frame.columns:
        hit = neutralise(frame.with_columns(pl.Series(column, ["ok", attack, "-1.5", None])))
        assert hit[column].to_list() == ["ok", "'" + attack, "-1.5", None]
        assert hit.drop(column).equals(frame.drop(column))


def test_csv_neutralises_every_attack_and_reads_back():
    table = canonical(_validation([*ATTACKS, "-1.5"]), TABLES["validation"])
    back = pl.read_csv(io.BytesIO(csv_bytes(table)), infer_schema=False)
    observed = dict(zip(back["USUBJID"], back["OBSERVED"], strict=True))
    for i, attack in enumerate(ATTACKS):
        assert observed[f"SZ003-101-{i:04d}"] == "'" + attack
    assert observed[f"SZ003-101-{len(ATTACKS):04d}"] == "-1.5"
    # parquet keeps the exact text (programs read it; history matches on it)
    raw = pl.read_parquet(io.BytesIO(parquet_bytes(table)))
    assert sorted(raw["OBSERVED"].to_list()) == sorted([*ATTACKS, "-1.5"])


def test_xlsx_neutralises_and_writes_no_formula():
    frame = _validation([*ATTACKS, "-1.5"])
    data = workbook_bytes([("Validation findings", frame)], date(2026, 11, 28), "t")
    sheet = fastexcel.read_excel(data).load_sheet("Validation findings", dtypes="string").to_polars()
    assert sheet["OBSERVED"].to_list() == ["'" + a for a in ATTACKS] + ["-1.5"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
        assert "<f>" not in xml
        assert '<pane ySplit="1"' in xml  # frozen header row
        assert "<tableParts" in xml  # a table with its filter buttons
        table_xml = archive.read("xl/tables/table1.xml").decode()
        assert "<autoFilter" in table_xml


def test_xlsx_column_widths_fit_and_are_capped():
    frame = pl.DataFrame({"SHORT": ["a"], "LONG": ["x" * 500], "MID": ["y" * 20]})
    data = workbook_bytes([("S", frame)], date(2026, 11, 28), "t")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
    widths = [float(w) for w in re.findall(r'<col [^>]*width="([0-9.]+)"', xml)]
    assert widths[0] < 12 and 20 < widths[2] < 30 and widths[1] < 70


def test_canonical_order_and_byte_identical_reruns():
    base = _validation(["1", "2", "3"]).with_columns(pl.lit("x").alias("EXTRA_B"), pl.lit("y").alias("EXTRA_A"))
    shuffled = base.sample(fraction=1.0, shuffle=True, seed=3).select(list(reversed(base.columns)))
    one, two = canonical(base, TABLES["validation"]), canonical(shuffled, TABLES["validation"])
    contracted = len(TABLES["validation"].schema)
    assert one.columns[:contracted] == list(TABLES["validation"].schema)
    assert one.columns[contracted:] == ["EXTRA_A", "EXTRA_B"]
    assert csv_bytes(one) == csv_bytes(two)
    assert parquet_bytes(one) == parquet_bytes(two)


def test_canonical_adds_missing_contract_columns_as_nulls_and_casts_null_columns():
    frame = pl.DataFrame({"STUDYID": ["S"], "SITEID": ["1"], "USUBJID": ["u"], "CHECK_ID": ["IN01"],
                          "CLASS": ["PROCESS"], "STATUS": [None]})
    table = canonical(frame, TABLES["discrepancies"])
    assert table.schema["STATUS"] == pl.String and table.schema["DAYS_OPEN"] == pl.Int64
    assert table["RESOLVED_ON"].to_list() == [None]


@pytest.mark.parametrize("seed", range(6))
def test_sort_total_is_the_sort_on_every_column_whether_or_not_the_prefix_has_ties(seed):
    rng = random.Random(seed)
    rows = 300
    frame = pl.DataFrame({
        "SITEID": [rng.choice(["101", "102", None]) for _ in range(rows)],
        "USUBJID": [rng.choice(["A", "B", "C", None]) for _ in range(rows)],
        "FINDING_ID": [rng.choice([f"F{i}" for i in range(40 if seed % 2 else 1000)] + [None]) for _ in range(rows)],
        "TEXT": [rng.choice(["x", "y", "z", None]) for _ in range(rows)],
        "N": [rng.choice([1, 2, None]) for _ in range(rows)],
    })
    order = ["SITEID", "USUBJID", "FINDING_ID", "TEXT", "N"]
    assert sort_total(frame, order, 2).equals(frame.sort(order, nulls_last=True, maintain_order=True))
    unique = frame.unique(["SITEID", "USUBJID", "FINDING_ID"], keep="first", maintain_order=True)
    assert sort_total(unique, order, 2).equals(unique.sort(order, nulls_last=True, maintain_order=True))


_CELL = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "aa", ""]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), _CELL, _CELL, st.one_of(st.none(), st.integers(-2, 2))), max_size=60),
       st.integers(1, 3))
def test_sort_total_is_the_full_sort_when_few_rows_share_a_key(rows, key):
    """Mostly distinct keys with a few shared ones (the validation table: 38 of 125,000 findings share one), the
    tied rows then ordered by later columns: the same order as one sort on every column."""
    frame = pl.DataFrame({"K": [str(r[0]) if r[0] % 7 else None for r in rows], "A": [r[1] for r in rows],
                          "B": [r[2] for r in rows], "N": [r[3] for r in rows]},
                         schema={"K": pl.String, "A": pl.String, "B": pl.String, "N": pl.Int64})
    order = ["K", "A", "B", "N"]
    assert sort_total(frame, order, key).equals(frame.sort(order, nulls_last=True, maintain_order=True))


def test_sort_total_breaks_a_tie_of_the_prefix_on_the_later_columns():
    frame = pl.DataFrame({"K": ["a", "a", "b"], "FINDING_ID": ["F1", "F1", None], "TEXT": ["z", "y", "x"]})
    assert sort_total(frame, ["K", "FINDING_ID", "TEXT"], 1)["TEXT"].to_list() == ["y", "z", "x"]
