"""Property tests of the value parser (core/values.py): any text a site may type into a result or
a date field is read as a number / interval / date range or as missing, never a crash, and what
it does read agrees with the obvious reading.

The parser is vectorised, so each example is a whole column of texts parsed in one polars call.
"""

from __future__ import annotations

import math
import os
from datetime import date, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from core.dates import partial_date
from core.values import bounds, decide, parse_number

LONG_RUN = int(os.environ.get("FUZZ_EXAMPLES", "0"))
PROPS = settings(max_examples=LONG_RUN or 150, derandomize=not LONG_RUN, deadline=None, database=None)
NOISE = st.lists(st.sampled_from([*list("0123456789.,-+<>=≤≥eE T:Z/ µ\x00"), "NaN", "inf", "1e308", "2024-"]),
                 max_size=12).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=30), NOISE)


def _parse(texts: list[str | None], decimal: str = ".") -> pl.DataFrame:
    frame = pl.DataFrame({"T": texts, "D": [decimal] * len(texts)}, schema={"T": pl.String, "D": pl.String})
    return frame.select(parse_number("T", "D").alias("p")).unnest("p")


@PROPS
@given(st.lists(st.one_of(st.none(), ANY_TEXT), min_size=1, max_size=60), st.sampled_from([".", ","]))
def test_any_text_parses_to_a_number_or_missing(texts: list[str | None], decimal: str) -> None:
    parsed = _parse(texts, decimal)
    assert parsed.height == len(texts)
    for text, number, censor in zip(texts, parsed["number"], parsed["censor"], strict=True):
        if number is None:
            assert censor is None
            continue
        assert not math.isnan(number), text
        assert censor in (None, "<", "<=", ">", ">=")


@PROPS
@given(st.lists(st.tuples(st.sampled_from(["", "<", "<=", ">", ">=", "≤", "≥"]),
                          st.decimals(min_value=-10**6, max_value=10**6, places=3, allow_nan=False,
                                      allow_infinity=False)), min_size=1, max_size=40),
       st.sampled_from([".", ","]))
def test_a_plain_decimal_with_optional_censor_reads_exactly(values: list, decimal: str) -> None:
    texts = [f"{sign}{value}".replace(".", decimal) for sign, value in values]
    parsed = _parse(texts, decimal)
    for (sign, value), number, censor in zip(values, parsed["number"], parsed["censor"], strict=True):
        assert number == float(value)
        assert censor == ({"≤": "<=", "≥": ">="}.get(sign, sign) or None)


@PROPS
@given(st.lists(st.tuples(st.sampled_from(["", "<", "<=", ">", ">="]), st.integers(-1000, 1000)),
                min_size=1, max_size=40),
       st.integers(-1000, 1000), st.sampled_from([">=", ">", "<=", "<"]))
def test_a_decided_threshold_holds_for_every_value_the_result_allows(values: list, limit: int, op: str) -> None:
    frame = pl.DataFrame({"n": [float(v) for _, v in values], "c": [s or None for s, _ in values]},
                         schema={"n": pl.Float64, "c": pl.String})
    b = frame.select(bounds("n", "c").alias("b")).unnest("b")
    decided = b.select(decide(pl.col("lo"), pl.col("hi"), pl.col("lo_open"), pl.col("hi_open"), op,
                              pl.lit(float(limit))).alias("d"))["d"].to_list()
    compare = {">=": lambda x: x >= limit, ">": lambda x: x > limit, "<=": lambda x: x <= limit,
               "<": lambda x: x < limit}[op]
    for (sign, value), outcome in zip(values, decided, strict=True):
        # the values the result allows, sampled on a fine grid around the limit and the value
        allowed = {"": [value], "<": [value - 0.5, value - 1000], "<=": [value, value - 0.5, value - 1000],
                   ">": [value + 0.5, value + 1000], ">=": [value, value + 0.5, value + 1000]}[sign]
        truths = {compare(x) for x in allowed}
        if outcome is not None:
            assert truths == {outcome}, (sign, value, op, limit)
        if sign == "":
            assert outcome is compare(value)


@PROPS
@given(st.lists(st.one_of(st.none(), ANY_TEXT), min_size=1, max_size=60))
def test_any_date_text_is_a_range_missing_or_invalid_never_a_crash(texts: list[str | None]) -> None:
    frame = pl.DataFrame({"T": texts}, schema={"T": pl.String})
    parsed = frame.select(partial_date("T").alias("p")).unnest("p")
    for text, earliest, latest, invalid in parsed.select(pl.lit(None).alias("x"), "earliest", "latest",
                                                           "invalid").with_columns(
            pl.Series("x", texts)).iter_rows():
        if earliest is None:
            assert latest is None
            assert invalid is (text is not None and text.strip() != "")
        else:
            assert invalid is False
            assert earliest <= latest


@PROPS
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
       st.sampled_from(["day", "month", "year", "time"]))
def test_iso_dates_and_partial_dates_become_the_interval_they_mean(day: date, precision: str) -> None:
    text = {"day": day.isoformat(), "month": day.isoformat()[:7], "year": day.isoformat()[:4],
            "time": f"{day.isoformat()}T08:30:00"}[precision]
    parsed = pl.DataFrame({"T": [text]}).select(partial_date("T").alias("p")).unnest("p").row(0, named=True)
    if precision in ("day", "time"):
        assert parsed["earliest"] == parsed["latest"] == day
    elif precision == "month":
        nxt = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        assert (parsed["earliest"], parsed["latest"]) == (day.replace(day=1), nxt - timedelta(days=1))
    else:
        assert (parsed["earliest"], parsed["latest"]) == (date(day.year, 1, 1), date(day.year, 12, 31))
    assert parsed["invalid"] is False


@PROPS
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
       st.sampled_from(["{d:%d/%m/%Y}", "{d:%m/%d/%Y}", "{d:%d.%m.%Y}", "{d:%Y%m%d}", "{d:%d-%b-%Y}", "{d:%Y/%m/%d}"]))
def test_non_iso_dates_are_invalid_never_reinterpreted(day: date, pattern: str) -> None:
    text = pattern.format(d=day)
    parsed = pl.DataFrame({"T": [text]}).select(partial_date("T").alias("p")).unnest("p").row(0, named=True)
    assert parsed == {"earliest": None, "latest": None, "invalid": True}, text
