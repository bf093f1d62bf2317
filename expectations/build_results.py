"""Checks of results read with the unit catalog: numbers, codes, units, plausibility, reference ranges."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from contracts.units import TestKind, TestUnits
from core.values import (
    blank_to_null,
    canonical_unit,
    coded_value,
    format_number,
    parse_number,
    qualitative_result,
    unit_problem,
)
from expectations.model import IGNORE_MISSING, Context, Piece, make_check, not_done, true_set
from expectations.spec import CheckKind


def _test_map(ctx: Context, value: Callable[[TestUnits], object]) -> dict[str, object]:
    out = {}
    for code, entry in ctx.catalog.domain_tests(ctx.domain).items():
        mapped = value(entry)
        if mapped is not None:
            out[code] = mapped
    return out


def _lookup(ctx: Context, value: Callable[[TestUnits], object], dtype: pl.DataType | type[pl.DataType]) -> pl.Expr:
    test = coded_value(ctx.config.results[ctx.domain].test)
    return test.replace_strict(_test_map(ctx, value), default=None, return_dtype=dtype)


def _conversion(ctx: Context, unit: pl.Expr, part: str) -> pl.Expr:
    """One parameter of the catalog conversion of (test, canonical unit): factor, divide, offset, log10.

    Looked up from contracts/units.yaml per (test, unit) pair; a blank unit converts only for tests the
    catalog marks `unitless`. Null when the unit is not accepted for the test.
    """
    table: dict[str, float] = {}
    for code, entry in ctx.catalog.domain_tests(ctx.domain).items():
        pairs = list(entry.accepted.items())
        if entry.unitless and entry.unit:
            pairs.append(("", entry.accepted[entry.unit]))
        for name, conv in pairs:
            table[f"{code}|{name}"] = float(conv.log10) if part == "log10" else getattr(conv, part)
    key = pl.concat_str([coded_value(ctx.config.results[ctx.domain].test), pl.lit("|"), unit.fill_null("")])
    return key.replace_strict(table, default=None, return_dtype=pl.Float64)


def convert(number: pl.Expr, prefix: str) -> pl.Expr:
    """number -> protocol unit with the joined conversion columns, exactly as core.values.to_protocol_unit."""
    base = pl.when(pl.col(f"{prefix}LOG10") == 1.0).then(pl.lit(10.0).pow(number)).otherwise(number)
    converted = base * pl.col(f"{prefix}FACTOR") / pl.col(f"{prefix}DIVIDE") + pl.col(f"{prefix}OFFSET")
    return pl.when(converted.is_finite()).then(converted.round_sig_figs(12)).otherwise(converted)


def result_columns(ctx: Context) -> dict[str, pl.Expr]:
    """Derived columns shared by the result checks (parsed number, unit, protocol unit, plausibility).

    Everything that depends on the test and unit only (kind, protocol unit, conversion, plausible
    range, unit problem) reads two or three columns with few distinct values, so `prepare` computes
    it once per distinct (test, unit) and joins it back: the catalog acts as a joined reference table.
    """
    roles = ctx.config.results[ctx.domain]
    test = coded_value(roles.test)
    number = parse_number(roles.result, "DECIMAL").struct.field("number")
    numeric_reading = (_lookup(ctx, lambda e: True if e.kind is TestKind.NUMERIC or e.positive_above is not None
                               else None, pl.Boolean).fill_null(False))
    applies = blank_to_null(roles.result).is_not_null() & ~not_done(ctx)
    plo = _lookup(ctx, lambda e: e.plausible[0] if e.plausible else None, pl.Float64)
    phi = _lookup(ctx, lambda e: e.plausible[1] if e.plausible else None, pl.Float64)
    punit = _lookup(ctx, lambda e: e.unit, pl.String)
    cunit = canonical_unit(roles.unit, ctx.catalog)
    columns = {f"X_CONV_{part.upper()}": _conversion(ctx, cunit, part) for part in ("factor", "divide", "offset",
                                                                                   "log10")}
    value = convert(pl.col("X_NUMBER"), "X_CONV_")
    return {
        **columns,
        "X_TEST": test,
        "X_KIND": _lookup(ctx, lambda e: e.kind.value, pl.String),
        "X_RESULT_TEXT": blank_to_null(roles.result),
        "X_UNIT_TEXT": blank_to_null(roles.unit).fill_null("(no unit)"),
        "X_NUMBER": number,
        "X_APPLIES": applies,
        "X_NUMERIC_READING": numeric_reading,
        "X_NEEDS_UNIT": pl.col("X_APPLIES") & pl.col("X_NUMBER").is_not_null() & pl.col("X_NUMERIC_READING"),
        "X_UNIT_PROBLEM": unit_problem(test, roles.unit, ctx.catalog, ctx.domain),
        "X_VALUE": pl.when(pl.col("X_NEEDS_UNIT")).then(value),
        "X_CONVERTED_TEXT": pl.when(cunit.fill_null("") != punit.fill_null(""))
        .then(pl.concat_str([pl.lit(" ("), format_number(pl.col("X_VALUE")), pl.lit(" "), pl.col("X_PUNIT"),
                             pl.lit(")")]))
        .otherwise(pl.lit("")),
        "X_PUNIT": punit,
        "X_PLO": plo,
        "X_PHI": phi,
        "X_PLAUSIBLE_TEXT": pl.concat_str([format_number(plo), pl.lit("-"), format_number(phi)]),
        "X_ACCEPTED_TEXT": _lookup(ctx, lambda e: ", ".join(e.accepted) or None, pl.String),
    }


def build_results(ctx: Context) -> list[Piece]:
    roles = ctx.config.results.get(ctx.domain)
    if roles is None:
        return []
    base = result_columns(ctx)
    positive_above = _lookup(ctx, lambda e: True if e.positive_above is not None else None, pl.Boolean)
    numeric = pl.col("X_KIND") == TestKind.NUMERIC.value
    qualitative = pl.col("X_KIND") == TestKind.QUALITATIVE.value
    coded_ok = (qualitative_result(roles.result, ctx.catalog).is_not_null()
                | (positive_above.fill_null(False) & pl.col("X_NUMBER").is_not_null()))
    result = (roles.result,)
    pair = "expect_column_pair_values_a_to_be_greater_than_b"

    def at_least(high: str, low: str) -> dict:
        return {"column_A": high, "column_B": low, "or_equal": True, "ignore_row_if": IGNORE_MISSING}

    return [
        Piece(make_check(ctx, CheckKind.NUMERIC_RESULT, roles.result, *true_set("RESULT_NUMERIC"), excludes=result),
              derived=base, ge={"RESULT_NUMERIC": pl.when(numeric & pl.col("X_APPLIES"))
                                .then(pl.col("X_NUMBER").is_not_null())}),
        Piece(make_check(ctx, CheckKind.CODED_RESULT, roles.result, *true_set("RESULT_CODED"), excludes=result),
              derived={**base, "X_CODED_OK": coded_ok},
              ge={"RESULT_CODED": pl.when(qualitative & pl.col("X_APPLIES")).then(pl.col("X_CODED_OK"))}),
        Piece(make_check(ctx, CheckKind.UNIT_KNOWN, roles.unit, *true_set("UNIT_KNOWN"), excludes=result),
              derived=base, ge={"UNIT_KNOWN": pl.when(pl.col("X_NEEDS_UNIT"))
                                .then(pl.col("X_UNIT_PROBLEM").is_null())}),
        Piece(make_check(ctx, CheckKind.PLAUSIBLE_LOW, roles.result, pair, at_least("VALUE", "PLAUSIBLE_LOW"),
                         excludes=result),
              derived=base, ge={"VALUE": pl.col("X_VALUE"), "PLAUSIBLE_LOW": pl.col("X_PLO")}),
        Piece(make_check(ctx, CheckKind.PLAUSIBLE_HIGH, roles.result, pair, at_least("PLAUSIBLE_HIGH", "VALUE"),
                         excludes=result),
              derived=base, ge={"VALUE": pl.col("X_VALUE"), "PLAUSIBLE_HIGH": pl.col("X_PHI")}),
    ]


def build_ranges(ctx: Context) -> list[Piece]:
    roles = ctx.config.results.get(ctx.domain)
    if roles is None or roles.low is None or roles.high is None:
        return []
    base = result_columns(ctx)
    limits: dict[str, tuple[float, float]] = {}
    for code, entry in ctx.catalog.domain_tests(ctx.domain).items():
        pair = ctx.config.reference_limits.get((ctx.domain, code), entry.plausible)
        if pair is not None:
            limits[code] = pair
    test = pl.col("X_TEST")
    rlo = test.replace_strict({c: p[0] for c, p in limits.items()}, default=None, return_dtype=pl.Float64)
    rhi = test.replace_strict({c: p[1] for c, p in limits.items()}, default=None, return_dtype=pl.Float64)
    numeric = pl.col("X_KIND") == TestKind.NUMERIC.value
    derived: dict[str, pl.Expr] = {**base}
    pieces = []
    for role, variable in (("LOW", roles.low), ("HIGH", roles.high)):
        number = parse_number(variable, "DECIMAL").struct.field("number")
        derived[f"X_{role}_TEXT"] = blank_to_null(variable).fill_null("(blank)")
        derived[f"X_{role}_NUM"] = pl.when(numeric).then(number)
        derived[f"X_{role}_STD"] = convert(number, "X_CONV_")
        column = f"{role}_NUMERIC"
        check = make_check(ctx, CheckKind.RANGE_NUMERIC, variable, *true_set(column), excludes=(variable,))
        pieces.append(Piece(check, derived=derived, ge={
            column: pl.when(numeric & blank_to_null(variable).is_not_null()).then(number.is_not_null())}))
    both = (roles.low, roles.high)
    order = make_check(ctx, CheckKind.RANGE_ORDER, roles.high, "expect_column_pair_values_a_to_be_greater_than_b",
                       {"column_A": "RANGE_HIGH", "column_B": "RANGE_LOW", "or_equal": False,
                        "ignore_row_if": IGNORE_MISSING}, excludes=both)
    pieces.append(Piece(order, derived=derived, ge={"RANGE_HIGH": pl.col("X_HIGH_NUM"),
                                                    "RANGE_LOW": pl.col("X_LOW_NUM")}))
    high, low = pl.col("X_HIGH_STD"), pl.col("X_LOW_STD")
    fits = (high.is_between(rlo, rhi) & (low.is_null() | low.is_between(pl.col("X_PLO"), pl.col("X_PHI"))))
    derived["X_REFLIMITS_TEXT"] = pl.concat_str([format_number(rlo), pl.lit("-"), format_number(rhi)])
    derived["X_RANGE_FITS"] = (pl.when(numeric & high.is_not_null() & rlo.is_not_null()
                                       & unit_problem(coded_value(roles.test), roles.unit, ctx.catalog,
                                                      ctx.domain).is_null())
                               .then(fits))
    unit = make_check(ctx, CheckKind.RANGE_UNIT, roles.high, *true_set("RANGE_UNIT"), excludes=both)
    pieces.append(Piece(unit, derived=derived, ge={"RANGE_UNIT": pl.col("X_RANGE_FITS")}))
    return pieces
