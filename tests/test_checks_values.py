"""Golden tests for the value parsers and the unit catalog (core/values.py, contracts/units.py)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
import yaml

from contracts.units import UnitCatalogError, load_units, parse_units
from core.dates import partial_date
from core.values import (
    bounds,
    canonical_unit,
    coded_value,
    decide,
    format_number,
    parse_number,
    per_distinct,
    qualitative_result,
    to_protocol_unit,
    unit_problem,
)

CATALOG = load_units()


def _number(text: str | None, decimal: str = ".") -> tuple[float | None, str | None]:
    row = pl.DataFrame({"t": [text], "d": [decimal]}, schema={"t": pl.String, "d": pl.String}).select(
        parse_number("t", "d").alias("p")).unnest("p").row(0)
    return row


@pytest.mark.parametrize(
    ("text", "decimal", "expected"),
    [
        ("9.5", ".", (9.5, None)),
        (" 9.5 ", ".", (9.5, None)),
        ("9,5", ",", (9.5, None)),
        ("9,5", ".", (None, None)),  # comma in a point file: not guessed
        ("1.234,5", ",", (None, None)),  # thousands separator: not guessed
        ("9.5", ",", (None, None)),
        ("<0.5", ".", (0.5, "<")),
        ("< 0,5", ",", (0.5, "<")),
        (">1000", ".", (1000.0, ">")),
        ("<=10", ".", (10.0, "<=")),
        ("≥20", ".", (20.0, ">=")),
        ("1.2E+05", ".", (120000.0, None)),
        (".5", ".", (0.5, None)),
        ("POSITIVE", ".", (None, None)),
        ("", ".", (None, None)),
        (None, ".", (None, None)),
        ("12 mg", ".", (None, None)),
    ],
)
def test_parse_number(text, decimal, expected):
    assert _number(text, decimal) == expected


def _decide(number: float, censor: str | None, op: str, limit: float) -> bool | None:
    frame = pl.DataFrame({"n": [number], "c": [censor]}, schema={"n": pl.Float64, "c": pl.String})
    b = frame.select(bounds("n", "c").alias("b")).unnest("b")
    return b.select(decide(pl.col("lo"), pl.col("hi"), pl.col("lo_open"), pl.col("hi_open"), op,
                           pl.lit(limit)).alias("x")).item()


@pytest.mark.parametrize(
    ("number", "censor", "op", "limit", "expected"),
    [
        (10, "<", "<", 200, True),  # DTS: <10 passes < 200
        (10, "<", ">=", 20, False),  # and fails >= 20
        (50, "<", ">=", 20, None),  # cannot decide
        (20, "<", ">=", 20, False),  # < 20 is never >= 20
        (20, "<=", ">=", 20, None),  # <= 20 might be exactly 20
        (20, "<=", "<=", 20, True),
        (200, "<", "<", 200, True),
        (200, "<=", "<", 200, None),
        (1000, ">", ">=", 200, True),
        (200, ">", ">", 200, True),
        (200, ">=", ">", 200, None),
        (100, ">", "<=", 150, None),
        (150, ">", "<=", 150, False),
        (2.5, None, ">=", 2.5, True),
        (2.49, None, ">=", 2.5, False),
        (7.0, None, ">", 7.0, False),
        (7.01, None, ">", 7.0, True),
    ],
)
def test_decide_with_censoring(number, censor, op, limit, expected):
    assert _decide(number, censor, op, limit) is expected


@pytest.mark.parametrize(
    ("test", "value", "unit", "expected"),
    [
        ("WBC", 2.5, "GI/L", 2.5),
        ("WBC", 2.5, "THOU/uL", 2.5),
        ("WBC", 2.5, "K/uL", 2.5),
        ("WBC", 2.5, "10^3/uL", 2.5),
        ("PLAT", 60000.0, "cells/mm3", 60.0),
        ("PLAT", 60000.0, "/uL", 60.0),
        ("HGB", 90.0, "g/L", 9.0),
        ("HGB", 90.0, "G / L", 9.0),
        ("HGB", 1.0, "mmol/L", 1.611),
        ("ALB", 3.0, "g/dL", 30.0),
        ("CREAT", 88.4, "umol/L", 1.0),
        ("CREAT", 88.4, "µmol/L", 1.0),
        ("BILI", 17.1, "umol/L", 1.0),
        ("ALT", 1.0, "ukat/L", 60.0),
        ("HBVDNA", 3.0, "log10 IU/mL", 1000.0),
        ("HBA1C", 53.0, "mmol/mol", 7.00044),
        ("HBA1C", 0.07, "fraction", 7.0),
        ("LYMLE", 0.25, "fraction", 25.0),
    ],
)
def test_lb_conversion_to_protocol_unit(test, value, unit, expected):
    frame = pl.DataFrame({"t": [test], "v": [value], "u": [unit]})
    got = frame.select(to_protocol_unit("v", "t", "u", CATALOG, "LB").alias("x")).item()
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("domain", "test", "value", "unit", "expected"),
    [
        ("VS", "WEIGHT", 154.0, "lb", 69.85322498),
        ("VS", "HEIGHT", 1.7, "m", 170.0),
        ("VS", "TEMP", 98.6, "F", 37.0),
        ("TR", "LDIAM", 1.0, "cm", 10.0),
        ("FA", "LIFEEXP", 3.0, "months", 13.035),
        ("FA", "ASCDEPTH", 50.0, "mm", 5.0),
        ("FA", "KPS", 80.0, None, 80.0),  # unitless score
    ],
)
def test_other_domain_conversions(domain, test, value, unit, expected):
    frame = pl.DataFrame({"t": [test], "v": [value], "u": [unit]}, schema={"t": pl.String, "v": pl.Float64,
                                                                           "u": pl.String})
    got = frame.select(to_protocol_unit("v", "t", "u", CATALOG, domain).alias("x")).item()
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("domain", "test", "unit", "expected"),
    [
        ("LB", "HGB", "g/L", None),
        ("LB", "HGB", None, "MISSING_UNIT"),
        ("LB", "HGB", "  ", "MISSING_UNIT"),
        ("LB", "HGB", "furlongs", "UNKNOWN_UNIT"),
        ("LB", "HGB", "U/L", "UNIT_NOT_CONVERTIBLE"),
        ("LB", "HBVDNA", "copies/mL", "UNIT_NOT_CONVERTIBLE"),
        ("LB", "HBVDNA", "cp/mL", "UNIT_NOT_CONVERTIBLE"),
        ("FA", "KPS", None, None),
        ("FA", "LIFEEXP", None, "MISSING_UNIT"),
    ],
)
def test_unit_problem(domain, test, unit, expected):
    frame = pl.DataFrame({"t": [test], "u": [unit]}, schema={"t": pl.String, "u": pl.String})
    assert frame.select(unit_problem("t", "u", CATALOG, domain).alias("x")).item() == expected


def test_copies_per_ml_is_never_converted():
    frame = pl.DataFrame({"t": ["HBVDNA"], "v": [1000.0], "u": ["copies/mL"]})
    assert frame.select(to_protocol_unit("v", "t", "u", CATALOG, "LB").alias("x")).item() is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("REACTIVE", "POSITIVE"), ("Non-Reactive", "NEGATIVE"), ("DETECTED", "POSITIVE"),
     ("not  detected", "NEGATIVE"), ("POSITIVE", "POSITIVE"), ("EQUIVOCAL", None), ("", None)],
)
def test_qualitative_synonyms(text, expected):
    frame = pl.DataFrame({"r": [text]})
    assert frame.select(qualitative_result("r", CATALOG).alias("x")).item() == expected


def test_canonical_unit_synonyms():
    texts = ["GI/L", "THOU/uL", "K/uL", "10^3/uL", "cells/mm3", "bogus", None]
    frame = pl.DataFrame({"u": texts}, schema={"u": pl.String})
    got = frame.select(canonical_unit("u", CATALOG).alias("x")).to_series().to_list()
    assert got == ["10^9/L", "10^3/uL", "10^3/uL", "10^3/uL", "/uL", None, None]


@pytest.mark.parametrize(
    ("text", "earliest", "latest", "invalid"),
    [
        ("2024", date(2024, 1, 1), date(2024, 12, 31), False),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29), False),
        ("2023-02", date(2023, 2, 1), date(2023, 2, 28), False),
        ("2024-05-06", date(2024, 5, 6), date(2024, 5, 6), False),
        ("2024-05-06T10:20", date(2024, 5, 6), date(2024, 5, 6), False),
        ("2024-05-06T10:20:30.5+02:00", date(2024, 5, 6), date(2024, 5, 6), False),
        ("2023-02-29", None, None, True),
        ("2024-13", None, None, True),
        ("12/03/2024", None, None, True),
        ("2024-5-6", None, None, True),
        ("2024-05-06 10:20", None, None, True),
        ("", None, None, False),
        (None, None, None, False),
    ],
)
def test_partial_date(text, earliest, latest, invalid):
    frame = pl.DataFrame({"x": [text]}, schema={"x": pl.String})
    assert frame.select(partial_date("x").alias("p")).unnest("p").row(0) == (earliest, latest, invalid)


@pytest.mark.parametrize(
    ("value", "text"),
    [(9.000000000000002, "9"), (45.123456789, "45.1235"), (0.0005, "0.0005"), (2.5, "2.5"), (-0.0, "0")],
)
def test_format_number(value, text):
    assert pl.DataFrame({"v": [value]}).select(format_number("v").alias("x")).item() == text


def test_plausible_ranges_in_protocol_unit():
    ranges = CATALOG.plausible_ranges("LB")
    assert ranges["HGB"] == (2.0, 25.0)
    assert ranges["PLAT"] == (0.0, 2000.0)
    assert set(CATALOG.domain_tests("LB")) >= {
        "WBC", "PLAT", "HGB", "LYM", "LYMLE", "ALB", "LIPASE", "AMYLASE", "CREAT", "CREATCLR", "ALT", "AST",
        "BILI", "PT", "HBSAG", "HBCAB", "HBVDNA", "HCVAB", "HCVRNA", "HIV12AB", "HBA1C", "HCG"}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"units": {"g/L": []}, "colour": {}}, "colour: unknown key"),
        ({"units": {"g/L": []}, "tests": {"LB": {"HGB": {"unit": "g/L", "accepted": {"g/L": 1},
                                                         "colour": 1}}}}, "HGB.colour: unknown key"),
        ({"units": {"g/L": []}, "tests": {"LB": {"HGB": {"unit": "g/dL", "accepted": {"g/dL": 1}}}}},
         "unit 'g/dL' is not declared"),
        ({"units": {"mm": [], "mmol/L": ["MM"]}}, "same key"),
        ({"units": {"g/L": []}, "tests": {"LB": {"HGB": {"unit": "g/L", "accepted": {"g/L": -1}}}}},
         "g/L: Input should be greater than 0"),
        ({"units": {"g/L": []}, "tests": {"LB": {"HGB": {"unit": "g/L", "accepted": {"g/L": {"times": 2}}}}}},
         "g/L.times: unknown key"),
    ],
)
def test_catalog_rejects_bad_documents(doc, message):
    with pytest.raises(UnitCatalogError, match=message):
        parse_units(yaml.safe_load(yaml.safe_dump(doc)))


def test_per_distinct_equals_the_row_wise_expression():
    """A value looked up from its distinct texts is what the row-wise expression gives, nulls included."""
    frame = pl.DataFrame({"CODE": [" y", "Y", None, "", "not  done", " Not Done ", "y", None, "x\tz"]})
    expected = frame.select(coded_value(pl.col("CODE")).alias("C"))["C"].to_list()
    assert expected == ["Y", "Y", None, None, "NOT DONE", "NOT DONE", "Y", None, "X Z"]
    assert frame.select(per_distinct(frame, "CODE", coded_value).alias("C"))["C"].to_list() == expected


def test_per_distinct_reads_a_missing_column_as_null():
    frame = pl.DataFrame({"OTHER": ["a", "b"]})
    assert frame.with_columns(per_distinct(frame, "CODE", coded_value).alias("C"))["C"].to_list() == [None, None]
