"""Checks of the DTS structure: required and controlled values, dates, keys, study, site, subject."""

from __future__ import annotations

import polars as pl

from core.dates import partial_date
from core.values import blank_to_null
from expectations.model import (
    IGNORE_MISSING,
    WITHHELD,
    Context,
    Piece,
    in_set,
    make_check,
    not_done,
    true_set,
    value_of,
)
from expectations.spec import CheckKind


def build_required(ctx: Context) -> list[Piece]:
    exceptions = ctx.config.required_exceptions.get(ctx.domain, {})
    pieces = []
    for variable in ctx.spec.required():
        if variable in ctx.config.identifying:
            kind = CheckKind.IDENTIFYING
        elif exceptions.get(variable) == "unit":
            continue  # the unit check covers it
        elif exceptions.get(variable) == "not_done":
            roles = ctx.config.results[ctx.domain]
            column = f"REQUIRED_{variable}"
            check = make_check(ctx, CheckKind.REQUIRED_UNLESS_NOT_DONE, variable, *true_set(column),
                               constants={"status": roles.status or ""})
            done = ~not_done(ctx)
            pieces.append(Piece(check, ge={column: pl.when(done).then(blank_to_null(variable).is_not_null())}))
            continue
        else:
            kind = CheckKind.REQUIRED
        check = make_check(ctx, kind, variable, "expect_column_values_to_not_be_null", {"column": variable})
        pieces.append(Piece(check, ge={variable: value_of(variable, ctx)}))
    return pieces


def build_allowed(ctx: Context) -> list[Piece]:
    """Controlled values, compared like evaluation reads them (trimmed, upper case).

    A result unit is left to the unit check: the catalog knows its synonyms (`millimetre` is mm).
    """
    roles = ctx.config.results.get(ctx.domain)
    pieces = []
    for variable, values in ctx.spec.allowed.items():
        if roles is not None and variable == roles.unit:
            continue
        expected = list(dict.fromkeys(v.upper() for v in values))
        pieces.append(Piece(make_check(ctx, CheckKind.ALLOWED, variable, *in_set(variable, expected)),
                            ge={variable: value_of(variable, ctx)}))
    return pieces


def build_formula(ctx: Context) -> list[Piece]:
    """No delivered value would run as a spreadsheet formula (the rule reports use to neutralise it)."""
    from core.safety import neutralise_expr

    variables = list(ctx.spec.variables)
    risky = {v: blank_to_null(v).is_not_null() & (neutralise_expr(v) != pl.col(v)) for v in variables}
    derived = {f"X_FORMULA_{v}": expr.fill_null(False) for v, expr in risky.items()}
    first = pl.coalesce([pl.when(pl.col(f"X_FORMULA_{v}")).then(pl.lit(v)) for v in variables])
    check = make_check(ctx, CheckKind.FORMULA_TEXT, "*", *true_set("NO_FORMULA"),
                       variable_column="X_FORMULA_VARIABLE")
    value = pl.coalesce([pl.when(pl.col(f"X_FORMULA_{v}"))
                         .then(pl.lit(WITHHELD) if v in ctx.config.private else pl.col(v)) for v in variables])
    after = {"X_FORMULA_VARIABLE": first, "X_FORMULA_VALUE_TEXT": value}
    return [Piece(check, derived=derived, after=after,
                  ge={"NO_FORMULA": pl.col("X_FORMULA_VARIABLE").is_null()})]


def build_study(ctx: Context) -> list[Piece]:
    check = make_check(ctx, CheckKind.STUDY, "STUDYID", *in_set("STUDYID", [ctx.study]))
    return [Piece(check, ge={"STUDYID": blank_to_null("STUDYID")})]


def build_site(ctx: Context) -> list[Piece]:
    if "SITEID" not in ctx.spec.variables and "SITEID" not in ctx.columns:
        return []
    check = make_check(ctx, CheckKind.SITE, "SITEID", "expect_column_pair_values_to_be_equal",
                       {"column_A": "SITEID", "column_B": "DELIVERY_SITEID", "ignore_row_if": IGNORE_MISSING})
    return [Piece(check, ge={"SITEID": blank_to_null("SITEID"), "DELIVERY_SITEID": pl.col("DELIVERY_SITEID")})]


def build_subject(ctx: Context) -> list[Piece]:
    """Rows of other domains: the subject is in DM, at the site that delivered the row."""
    if ctx.domain == "DM":
        return []
    in_dm = make_check(ctx, CheckKind.IN_DM, "USUBJID", *true_set("IN_DM"))
    site = make_check(ctx, CheckKind.SUBJECT_SITE, "USUBJID", "expect_column_pair_values_to_be_equal",
                      {"column_A": "DM_SITEID", "column_B": "DELIVERY_SITEID", "ignore_row_if": IGNORE_MISSING})
    return [Piece(in_dm, ge={"IN_DM": pl.col("X_IN_DM")}),
            Piece(site, ge={"DM_SITEID": pl.col("X_DM_SITEID"), "DELIVERY_SITEID": pl.col("DELIVERY_SITEID")})]


def build_dates(ctx: Context) -> list[Piece]:
    pieces = []
    for variable in ctx.spec.dates:
        column = f"ISO_{variable}"
        text = blank_to_null(variable)
        check = make_check(ctx, CheckKind.ISO_DATE, variable, *true_set(column), excludes=(variable,))
        valid = pl.when(text.is_not_null()).then(~partial_date(variable).struct.field("invalid"))
        pieces.append(Piece(check, derived={column: valid}, ge={column: pl.col(column)}))
    return pieces


def build_key(ctx: Context) -> list[Piece]:
    """One row per natural key; exact copies keep their first row, conflicting rows are none of them used.

    Conflicting rows are rejected, but in a domain of results (LB, VS, FA, TR: `results` of the suites'
    configuration) each stays a record whose result is excluded: a measurement was made that day and nobody
    knows its value, so a component that would read it says so (EXCLUDED_BY_VALIDATION, asked by this
    finding's query) instead of "no result", and a mean of the day's replicates is not taken over the others
    (a user trial: the mean of one replicate of three read 2.6 for a WBC of 2.3 or 2.4, MET for NOT_MET).

    The key is the domain's `key` plus the SDTM qualifiers the delivery has (`--TPTNUM`, `--POS`,
    `--REPNUM`...): rows that differ in any of them are separate measurements, not duplicates. A
    blank qualifier is a value of its own (GE sees it as "(blank)", polars groups nulls together).
    The failing rows of one key become one finding naming all of them (`one_per`).
    """
    key = ctx.spec.natural_key(ctx.columns)
    if not key:
        return []
    qualifiers = set(key) - set(ctx.spec.key)
    values = [f"X_KEY_{v}" for v in key]
    count = pl.len().over(values)
    identical = pl.len().over([*values, "X_ROW_HASH"]) == count
    first = pl.struct(values).is_first_distinct()
    derived = {f"X_KEY_{v}": value_of(v, ctx) for v in key}
    # the key in words: its variables, and the qualifiers that hold a value on the row
    shown = {v: value_of(v, ctx) if v in qualifiers else value_of(v, ctx).fill_null("(blank)") for v in key}
    derived["X_KEY_TEXT"] = pl.concat_str([pl.concat_str([pl.lit(f"{v}="), shown[v]]) for v in key],
                                          separator=", ", ignore_nulls=True)
    windowed = {
        "X_KEY_COUNT": count,
        "X_DUP_IDENTICAL": identical,
        "X_DUP_FIRST": first,
    }
    after = {
        "X_DUP_KIND_TEXT": pl.when(pl.col("X_DUP_IDENTICAL")).then(pl.lit("identical copies"))
        .otherwise(pl.lit("conflicting values")),
        "X_DUP_ACTION_TEXT": pl.when(pl.col("X_DUP_IDENTICAL")).then(pl.lit("only the first copy is used"))
        .otherwise(pl.lit("none of them is used")),
        "X_DUP_REJECT": (pl.col("X_KEY_COUNT") > 1) & ~(pl.col("X_DUP_IDENTICAL") & pl.col("X_DUP_FIRST")),
        "X_DUP_COPY": (pl.col("X_KEY_COUNT") > 1) & pl.col("X_DUP_IDENTICAL") & ~pl.col("X_DUP_FIRST"),
        "X_DUP_CONFLICT": (pl.col("X_KEY_COUNT") > 1) & ~pl.col("X_DUP_IDENTICAL"),
    }
    roles = ctx.config.results.get(ctx.domain)
    # a result domain keeps its conflicting rows as records with their result excluded (see above)
    handling = (dict(reject_when="X_DUP_COPY", exclude_when="X_DUP_CONFLICT", excludes=(roles.result,))
                if roles is not None else dict(reject_when="X_DUP_REJECT"))
    kwargs: dict[str, object]
    if len(key) == 1:
        expectation, kwargs = "expect_column_values_to_be_unique", {"column": key[0]}
    else:
        expectation, kwargs = "expect_compound_columns_to_be_unique", {"column_list": key}
    check = make_check(ctx, CheckKind.UNIQUE_KEY, "+".join(ctx.spec.key), expectation, kwargs,
                       one_per=tuple(values), **handling)
    return [Piece(check, derived=derived, windowed=windowed, after=after,
                  ge={v: pl.col(f"X_KEY_{v}").fill_null("(blank)") if v in qualifiers else pl.col(f"X_KEY_{v}")
                      for v in key})]
