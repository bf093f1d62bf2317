"""Polars expression builders that read delivered text: numbers, units, coded results (dates: core.dates).

Everything a site delivers is text. These builders turn it into typed values without ever guessing:
a result that is not a number, a unit the catalog does not know, or a date that is not ISO 8601
becomes null plus a flag, so that the caller can say exactly why a value was not used. They are
pure expressions (no frame, no Python loop over rows) and are shared by evaluation and by the
Great Expectations suites.

Numbers keep their censoring as an interval: `<0.5` is (-inf, 0.5), `>=1000` is [1000, inf), and a
threshold is decided only when the whole interval is on one side of it (`bounds`, `decide`).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from contracts.enums import ReasonCode
from contracts.units import TestKind, UnitCatalog

#: an optional comparator, then a decimal number (point or comma), optional exponent
_NUMBER = r"^\s*(<=|>=|<|>|≤|≥)?\s*([+-]?(?:\d+(?:[.,]\d+)?|[.,]\d+)(?:[eE][+-]?\d+)?)\s*$"

def _as_expr(value: pl.Expr | str) -> pl.Expr:
    return pl.col(value) if isinstance(value, str) else value


def blank_to_null(text: pl.Expr | str) -> pl.Expr:
    """Strip the text and read an empty string as missing (CSV and Excel deliver both)."""
    stripped = _as_expr(text).str.strip_chars()
    return pl.when(stripped.str.len_chars() > 0).then(stripped)


def column_text(frame: pl.DataFrame | pl.LazyFrame, column: str | None) -> pl.Expr:
    """A delivered column as text, blanks read as missing (`blank_to_null`), named after the column;
    null text when the frame has no such column (a DTS expected variable a site did not deliver)."""
    names = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
    if column is None or column not in names:
        return pl.lit(None, dtype=pl.String).alias(column or "literal")
    return blank_to_null(pl.col(column).cast(pl.String)).alias(column)


# ---------------------------------------------------------------------------------------------- numbers


def parse_number(text: pl.Expr | str, decimal: pl.Expr | str | None = None) -> pl.Expr:
    """Result text -> struct {number: Float64, censor: String}; null number when not a number.

    `censor` is one of `<`, `<=`, `>`, `>=` (`≤`/`≥` read as `<=`/`>=`) or null for an exact value.
    `decimal` is the row's DECIMAL column (`.` or `,`): with `,` the text `9,5` is 9.5; a separator
    that is not the row's decimal mark (`1.234,5`, or `9,5` in a `.` file) makes the result not a
    number rather than a guess between thousands separator and decimal mark.
    """
    text = _as_expr(text)
    dec = pl.lit(".") if decimal is None else _as_expr(decimal).fill_null(".")
    censor = text.str.extract(_NUMBER, 1).replace({"≤": "<=", "≥": ">="})
    digits = text.str.extract(_NUMBER, 2)
    wrong_mark = pl.when(dec == ",").then(digits.str.contains(".", literal=True)).otherwise(
        digits.str.contains(",", literal=True))
    number = pl.when(~wrong_mark).then(digits.str.replace(",", ".", literal=True).cast(pl.Float64, strict=False))
    return pl.struct(number.alias("number"), pl.when(number.is_not_null()).then(censor).alias("censor"))


def decimal_hint(text: pl.Expr | str, decimal: pl.Expr | str) -> pl.Expr:
    """Why a result text with the other decimal mark is not a number, for its message ("" otherwise).

    A site that declared `"decimal": ","` in manifest.json (at its top level: the default of every file) while its
    files use "." got one "8.0 is not a number" per value, and a site asked to check each against the source would
    confirm them: the one-line fix, the manifest's setting, was named nowhere (a user trial). The hint names it;
    the value is still not read. A mark followed by exactly three digits (`1,234`, `1.234`) may be a thousands
    separator: naming the other decimal mark there would steer the site into a value a thousand times too small
    (a review), so the hint asks for the file's own mark and no separator instead."""
    text, dec = _as_expr(text), _as_expr(decimal).fill_null(".")
    digits = text.str.extract(_NUMBER, 2)
    other = pl.when(dec == ",").then(pl.lit(".")).otherwise(pl.lit(","))
    has_other = digits.str.contains(".", literal=True) & (dec == ",") | digits.str.contains(",", literal=True) & (
        dec != ",")
    grouped = digits.str.contains(r"^[+-]?\d{1,3}[.,]\d{3}$")
    return (pl.when(has_other & grouped)
            .then(pl.format(", because '{}' is not this file's decimal mark ('{}', from manifest.json) and a thousands "
                            "separator is not read: write it with the file's decimal mark and no separator",
                            other, dec))
            .when(has_other & (dec == ","))
            .then(pl.lit(", because manifest.json declares the decimal comma for this file (its own entry, or the "
                         "manifest's top-level \"decimal\") and '.' is not read as one"))
            .when(has_other)
            .then(pl.lit(", because this file's decimal mark is '.' (manifest.json declares no \"decimal\": \",\" "
                         "for it) and ',' is not read as one"))
            .otherwise(pl.lit("")))


def bounds(number: pl.Expr | str, censor: pl.Expr | str) -> pl.Expr:
    """(number, censor) -> struct {lo, hi, lo_open, hi_open}: the interval the true value lies in."""
    number, censor = _as_expr(number), _as_expr(censor)
    upper_only = censor.is_in(["<", "<="]).fill_null(False)
    lower_only = censor.is_in([">", ">="]).fill_null(False)
    return pl.struct(
        pl.when(upper_only).then(float("-inf")).otherwise(number).alias("lo"),
        pl.when(lower_only).then(float("inf")).otherwise(number).alias("hi"),
        (censor == ">").fill_null(False).alias("lo_open"),
        (censor == "<").fill_null(False).alias("hi_open"),
    )


def decide(lo: pl.Expr, hi: pl.Expr, lo_open: pl.Expr, hi_open: pl.Expr, op: str, limit: pl.Expr) -> pl.Expr:
    """Is `value <op> limit` true for every value of the interval (True), for none (False), or undecided (null)?

    This is what lets a censored result decide a threshold only when its bound does: `<10` passes
    `< 200` and fails `>= 20`, while `<50` against `>= 20` stays null (CENSORED_UNDECIDABLE).
    """
    at_lo_excl = (lo == limit) & lo_open
    at_hi_excl = (hi == limit) & hi_open
    rules = {
        ">=": (lo >= limit, (hi < limit) | at_hi_excl),
        ">": ((lo > limit) | at_lo_excl, hi <= limit),
        "<=": (hi <= limit, (lo > limit) | at_lo_excl),
        "<": ((hi < limit) | at_hi_excl, lo >= limit),
    }
    if op not in rules:
        raise ValueError(f"unknown comparison {op!r}")
    all_true, none_true = rules[op]
    return pl.when(all_true).then(True).when(none_true).then(False).otherwise(None)


def format_number(value: pl.Expr | str, significant: int = 6) -> pl.Expr:
    """Float -> text with at most `significant` digits and no float noise (`9.000000000000002` -> `9`)."""
    rounded = _as_expr(value).round_sig_figs(significant)
    text = rounded.cast(pl.String).str.strip_suffix(".0")  # plain string ops: this runs on millions of rows
    return pl.when(text == "-0").then(pl.lit("0")).otherwise(text)


# ------------------------------------------------------------------------------------------------ units


def unit_key(text: pl.Expr | str) -> pl.Expr:
    """The matching key of a unit text (see units.normalise_unit_text): no spaces, micro as `u`, upper."""
    return (_as_expr(text).str.replace_all("[µμ]", "u").str.replace_all(r"\s+", "").str.to_uppercase())


def canonical_unit(text: pl.Expr | str, catalog: UnitCatalog) -> pl.Expr:
    """Unit text -> canonical catalog spelling (`K/uL` -> `10^3/uL`), null when blank or unknown."""
    return unit_key(blank_to_null(text)).replace_strict(catalog.synonyms, default=None, return_dtype=pl.String)


def _conversion_maps(catalog: UnitCatalog, domain: str) -> dict[str, dict[str, float]]:
    maps: dict[str, dict[str, float]] = {"factor": {}, "divide": {}, "offset": {}, "log10": {}}
    for code, entry in catalog.domain_tests(domain).items():
        for unit, conv in entry.accepted.items():
            key = f"{code}|{unit}"
            maps["factor"][key] = conv.factor
            maps["divide"][key] = conv.divide
            maps["offset"][key] = conv.offset
            maps["log10"][key] = 1.0 if conv.log10 else 0.0
        if entry.unitless and entry.unit:
            conv = entry.accepted[entry.unit]
            key = f"{code}|"
            maps["factor"][key], maps["divide"][key], maps["offset"][key] = conv.factor, conv.divide, conv.offset
            maps["log10"][key] = 0.0
    return maps


def _conversion_key(testcd: pl.Expr | str, unit_text: pl.Expr | str, catalog: UnitCatalog) -> pl.Expr:
    return pl.concat_str([_as_expr(testcd), pl.lit("|"), canonical_unit(unit_text, catalog).fill_null("")])


def to_protocol_unit(value: pl.Expr | str, testcd: pl.Expr | str, unit_text: pl.Expr | str,
                     catalog: UnitCatalog, domain: str) -> pl.Expr:
    """A number in the delivered unit -> the test's protocol unit; null when the unit is not accepted.

    Works on interval bounds too (every conversion is increasing, so `<x` stays `<y`). The result is
    rounded to 12 significant digits so that 90 g/L is exactly 9 g/dL at a threshold of 9.0.
    A blank unit converts only for tests the catalog marks `unitless` (scores, percentages).
    """
    maps = _conversion_maps(catalog, domain)
    key = _conversion_key(testcd, unit_text, catalog)

    def lookup(name: str) -> pl.Expr:
        return key.replace_strict(maps[name], default=None, return_dtype=pl.Float64)

    value = _as_expr(value)
    base = pl.when(lookup("log10") == 1.0).then(pl.lit(10.0).pow(value)).otherwise(value)
    converted = base * lookup("factor") / lookup("divide") + lookup("offset")
    return pl.when(converted.is_finite()).then(converted.round_sig_figs(12)).otherwise(converted)


def unit_problem(testcd: pl.Expr | str, unit_text: pl.Expr | str, catalog: UnitCatalog, domain: str) -> pl.Expr:
    """Why a numeric result's unit cannot be used (a ReasonCode value), or null when it converts.

    MISSING_UNIT (blank, for a test that needs a unit), UNKNOWN_UNIT (not in the catalog at all),
    UNIT_NOT_CONVERTIBLE (a known unit with no fixed factor to this test's protocol unit).
    """
    accepted = {f"{code}|{u}" for code, e in catalog.domain_tests(domain).items() for u in e.accepted}
    unitless = [code for code, e in catalog.domain_tests(domain).items() if e.unitless]
    unit = blank_to_null(unit_text)
    canon = canonical_unit(unit_text, catalog)
    key = pl.concat_str([_as_expr(testcd), pl.lit("|"), canon])
    return (
        pl.when(unit.is_null() & _as_expr(testcd).is_in(unitless)).then(None)
        .when(unit.is_null()).then(pl.lit(ReasonCode.MISSING_UNIT.value))
        .when(canon.is_null()).then(pl.lit(ReasonCode.UNKNOWN_UNIT.value))
        .when(key.is_in(sorted(accepted))).then(None)
        .otherwise(pl.lit(ReasonCode.UNIT_NOT_CONVERTIBLE.value))
    )


def numeric_tests(catalog: UnitCatalog, domain: str) -> list[str]:
    return [code for code, e in catalog.domain_tests(domain).items() if e.kind is TestKind.NUMERIC]


# ---------------------------------------------------------------------------------------- coded results


def coded_value(text: pl.Expr | str) -> pl.Expr:
    """A coded answer (`y`, ` Positive `) -> its upper-case, space-collapsed form; blank -> null."""
    return blank_to_null(text).str.replace_all(r"\s+", " ").str.to_uppercase()


def per_distinct(frame: pl.DataFrame, column: str, build: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    """`build(text)` computed once per distinct text of `frame[column]` and looked up for every row.

    For per-value text functions (coded_value, blank_to_null) over low-cardinality columns (test
    codes, Y/N flags, terms): a study has millions of rows but a few dozen distinct codes, and the
    regex is the expensive part. `build` must map null to null (a null row stays null); a column the
    frame lacks reads as null, as the row-wise expressions do.
    """
    if column not in frame.columns:
        return pl.lit(None, dtype=pl.String)
    text = pl.col(column).cast(pl.String)
    distinct = frame.select(text.drop_nulls().unique().alias("_IN"))
    mapped = distinct.select(build(pl.col("_IN")).cast(pl.String).alias("_OUT"))["_OUT"]
    return text.replace_strict(distinct["_IN"], mapped, default=None, return_dtype=pl.String)


def qualitative_result(text: pl.Expr | str, catalog: UnitCatalog) -> pl.Expr:
    """`REACTIVE` / `Not detected` / `neg` -> POSITIVE / NEGATIVE via the catalog; null when not a known code."""
    return coded_value(text).replace_strict(catalog.qualitative, default=None, return_dtype=pl.String)


# ------------------------------------------------------------------------- frame-level unit handling


def unit_table(catalog: UnitCatalog, domain: str | None = None) -> pl.DataFrame:
    """DOMAIN, TESTCD, UNIT (canonical; "" for a unitless test's blank unit) -> conversion columns.

    All domains when `domain` is None.
    """
    rows = []
    for (dom, code), entry in catalog.tests.items():
        if domain is not None and dom != domain.upper():
            continue
        accepted = dict(entry.accepted)
        if entry.unitless and entry.unit:
            accepted[""] = entry.accepted[entry.unit]
        for unit, conv in accepted.items():
            rows.append((dom, code, unit, conv.factor, conv.divide, conv.offset, conv.log10))
    return pl.DataFrame(rows, schema={"DOMAIN": pl.String, "TESTCD": pl.String, "_UNIT": pl.String,
                                      "_FACTOR": pl.Float64, "_DIVIDE": pl.Float64, "_OFFSET": pl.Float64,
                                      "_LOG10": pl.Boolean}, orient="row")


def synonym_table(catalog: UnitCatalog) -> pl.DataFrame:
    """Normalised unit spelling -> canonical spelling, for a join instead of a large literal mapping."""
    return pl.DataFrame({"_UNIT_KEY": list(catalog.synonyms), "_UNIT_CANON": list(catalog.synonyms.values())},
                        schema={"_UNIT_KEY": pl.String, "_UNIT_CANON": pl.String})


def attach_units(frame: pl.LazyFrame, catalog: UnitCatalog, domain: str | None = None, test: str = "TESTCD",
                 unit: str = "UNIT_TEXT") -> pl.LazyFrame:
    """Add ROW_UNIT (canonical spelling), UNIT_PROB (a ReasonCode value or null) and the conversion
    columns `_FACTOR`, `_DIVIDE`, `_OFFSET`, `_LOG10` that `convert_with_units` reads.

    Same rules as `canonical_unit` / `unit_problem` / `to_protocol_unit`, done with two small joins so
    that large frames and large catalogs keep a small query plan. With `domain` None the frame's own
    DOMAIN column (LB, VS, TR, FA) says which catalog entries apply.
    """
    unitless = [f"{dom}|{code}" for (dom, code), e in catalog.tests.items() if e.unitless]
    conversions = unit_table(catalog, domain).lazy().rename({"TESTCD": test})
    if domain is None:
        keys, domain_expr = ["DOMAIN", test, "_UNIT"], pl.col("DOMAIN")
    else:
        conversions, keys, domain_expr = conversions.drop("DOMAIN"), [test, "_UNIT"], pl.lit(domain.upper())
    blank = blank_to_null(pl.col(unit)).is_null()
    is_unitless = pl.concat_str([domain_expr, pl.lit("|"), pl.col(test)]).is_in(unitless)
    frame = frame.cache()  # read twice below: computed once
    spellings = (  # each distinct unit text normalised once
        frame.select(pl.col(unit).alias("_UNIT_TEXT_KEY")).unique()
        .with_columns(unit_key(blank_to_null(pl.col("_UNIT_TEXT_KEY"))).alias("_UNIT_KEY"))
        .join(synonym_table(catalog).lazy(), on="_UNIT_KEY", how="left")
        .drop("_UNIT_KEY")
    )
    return (
        frame.join(spellings, left_on=unit, right_on="_UNIT_TEXT_KEY", how="left", nulls_equal=True)
        .with_columns(pl.lit(None, dtype=pl.String).alias("_UNIT_KEY"))
        .with_columns(pl.when(blank).then(pl.lit("")).otherwise(pl.col("_UNIT_CANON")).alias("_UNIT"))
        .join(conversions, on=keys, how="left", nulls_equal=False)
        .with_columns(
            pl.col("_UNIT_CANON").alias("ROW_UNIT"),
            pl.when(blank & is_unitless).then(None)
            .when(blank).then(pl.lit(ReasonCode.MISSING_UNIT.value))
            .when(pl.col("_UNIT_CANON").is_null()).then(pl.lit(ReasonCode.UNKNOWN_UNIT.value))
            .when(pl.col("_FACTOR").is_not_null()).then(None)
            .otherwise(pl.lit(ReasonCode.UNIT_NOT_CONVERTIBLE.value)).alias("UNIT_PROB"),
        )
        .drop("_UNIT_KEY", "_UNIT_CANON", "_UNIT")
    )


def convert_with_units(value: pl.Expr | str) -> pl.Expr:
    """A number (or interval bound) -> protocol unit, using the columns `attach_units` added."""
    value = _as_expr(value)
    base = pl.when(pl.col("_LOG10")).then(pl.lit(10.0).pow(value)).otherwise(value)
    converted = base * pl.col("_FACTOR") / pl.col("_DIVIDE") + pl.col("_OFFSET")
    return pl.when(converted.is_finite()).then(converted.round_sig_figs(12)).otherwise(converted)


def with_parsed_numbers(frame: pl.LazyFrame, column: str, decimal: str, prefix: str) -> pl.LazyFrame:
    """Add `<prefix>_NUM` and `<prefix>_CENSOR` (see `parse_number`) for a text column.

    Like `with_partial_dates`: each distinct (text, decimal mark) is parsed once and joined back.
    """
    frame = frame.cache()  # read twice below: computed once
    parsed = (
        frame.select(pl.col(column).alias("_NUM_TEXT"), pl.col(decimal).alias("_NUM_DECIMAL")).unique()
        .with_columns(parse_number(pl.col("_NUM_TEXT"), pl.col("_NUM_DECIMAL")).alias("_PN"))
        .select("_NUM_TEXT", "_NUM_DECIMAL", pl.col("_PN").struct.field("number").alias(f"{prefix}_NUM"),
                pl.col("_PN").struct.field("censor").alias(f"{prefix}_CENSOR"))
    )
    return frame.join(parsed, left_on=[column, decimal], right_on=["_NUM_TEXT", "_NUM_DECIMAL"], how="left",
                      nulls_equal=True)
