"""The checks of one domain: which expectation, on which prepared column, with what meaning.

Every check is generated from the sources of truth (contracts/domains.yaml, checks/units.yaml, the
protocol) by a small builder registered under its kind in `BUILDERS`. A builder returns `Piece`s:
the expectation (a GE type and kwargs, plain data so that the suites can be listed without importing
Great Expectations), the derived columns it needs in the prepared polars frame, and the columns of
the frame handed to GE. Per-row work (parsing, unit lookup, plausibility) is a polars expression, so
a suite has a handful of expectations per domain whatever the number of tests or sites.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from checks.units import TestKind, UnitCatalog
from checks.values import (
    blank_to_null,
    canonical_unit,
    coded_value,
    format_number,
    parse_number,
    qualitative_result,
    unit_problem,
)
from contracts.domains import DomainSpec
from expectations.spec import Action, CheckKind, SuiteConfig

IGNORE_MISSING = "either_value_is_missing"


@dataclass(frozen=True)
class Check:
    """One expectation of a suite and how its failures read."""

    domain: str  # upper-case domain code
    kind: CheckKind
    variable: str  # the delivered variable a finding names
    expectation: str  # Great Expectations type, e.g. expect_column_values_to_not_be_null
    kwargs: dict  # GE kwargs; column names are those of the GE frame
    meaning: str
    action: Action
    message: str  # template: {COLUMN} of the prepared frame (constants already filled in)
    observed: str  # template, same rules
    private: tuple[str, ...] = ()  # columns never quoted (shown as WITHHELD)
    excludes: tuple[str, ...] = ()  # variables whose value evaluation must not use (action exclude)
    reject_when: str | None = None  # boolean prepared column narrowing which failing rows are rejected
    explode: str | None = None  # list column: one finding per item (as X_ITEM)
    finding_domain: str | None = None  # DOMAIN of the findings when not `domain` (subject-level needs)
    finding_variable: str | None = None  # VARIABLE of the findings when not `variable`
    variable_column: str | None = None  # prepared column naming VARIABLE per row (checks over many variables)

    @property
    def id(self) -> str:
        return f"{self.domain}.{self.kind.value}.{self.variable}"

    def describe(self) -> dict:
        """The reviewable form (list_expectations, saved with the run)."""
        return {"id": self.id, "domain": self.domain, "kind": self.kind.value, "variable": self.variable,
                "expectation": self.expectation, "kwargs": self.kwargs, "meaning": self.meaning,
                "action": self.action.value}


@dataclass
class Piece:
    """A check and the columns it needs.

    `derived` are row-wise expressions (a row's value depends on that row only), so `prepare` may
    compute them once per distinct input; `windowed` look at other rows (counts over a key) and are
    computed on the whole frame after them; `after` are row-wise again, reading windowed columns.
    A column whose name ends in `_TEXT` only feeds messages: it is computed for failing rows only.
    """

    check: Check
    derived: dict[str, pl.Expr] = field(default_factory=dict)
    windowed: dict[str, pl.Expr] = field(default_factory=dict)
    after: dict[str, pl.Expr] = field(default_factory=dict)
    ge: dict[str, pl.Expr] = field(default_factory=dict)  # GE-frame columns (from the prepared frame)


@dataclass(frozen=True)
class Context:
    """Everything a builder may read; no data."""

    spec: DomainSpec
    config: SuiteConfig
    catalog: UnitCatalog
    study: str
    protocol_id: str
    criteria: dict[str, str]  # criterion id -> INCLUSION / EXCLUSION
    needs: dict[str, tuple[tuple[str, ...], ...]]  # upper domain -> groups of test codes (any one enough)
    columns: frozenset[str]  # columns present in the delivered frame

    @property
    def domain(self) -> str:
        return self.spec.code


def fill(template: str, constants: dict[str, str]) -> str:
    """Fill the lower-case placeholders of a template; upper-case ones stay for per-row filling."""
    out = template
    for name, value in constants.items():
        out = out.replace("{" + name + "}", value)
    return out


def _check(ctx: Context, kind: CheckKind, variable: str, expectation: str, kwargs: dict, **extra) -> Check:
    text = ctx.config.checks[kind]
    constants = {"variable": variable, "domain": ctx.domain, "study": ctx.study, "protocol": ctx.protocol_id,
                 "allowed": ", ".join(ctx.spec.allowed.get(variable, ())),
                 "decisions": " / ".join(ctx.config.needed_decisions), **extra.pop("constants", {})}
    action = Action(extra.pop("action", text.action))
    return Check(domain=ctx.domain, kind=kind, variable=variable, expectation=expectation, kwargs=kwargs,
                 meaning=fill(text.meaning, constants), action=action, message=fill(text.message, constants),
                 observed=fill(text.observed, constants), private=ctx.config.private, **extra)


#: what a private variable's value is replaced with wherever it would be shown or handed to GE
WITHHELD = "(withheld)"


def value_of(variable: str, ctx: Context) -> pl.Expr:
    """The GE-frame form of a delivered variable: stripped, blank as null, coded values upper-cased.

    A private variable (a birth date) reaches GE only as "present" or null.
    """
    if variable in ctx.config.private:
        return pl.when(blank_to_null(variable).is_not_null()).then(pl.lit("present"))
    if variable in ctx.spec.allowed:
        return coded_value(variable)
    return blank_to_null(variable)


def _in_set(column: str, values: list) -> tuple[str, dict]:
    return "expect_column_values_to_be_in_set", {"column": column, "value_set": values}


def _true(column: str) -> tuple[str, dict]:
    """A prepared boolean must be True where it is not null (null = the check does not apply)."""
    return _in_set(column, [True])


# ------------------------------------------------------------------------------------ DTS structure


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
            check = _check(ctx, CheckKind.REQUIRED_UNLESS_NOT_DONE, variable, *_true(column),
                           constants={"status": roles.status or ""})
            done = ~_not_done(ctx)
            pieces.append(Piece(check, ge={column: pl.when(done).then(blank_to_null(variable).is_not_null())}))
            continue
        else:
            kind = CheckKind.REQUIRED
        check = _check(ctx, kind, variable, "expect_column_values_to_not_be_null", {"column": variable})
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
        pieces.append(Piece(_check(ctx, CheckKind.ALLOWED, variable, *_in_set(variable, expected)),
                            ge={variable: value_of(variable, ctx)}))
    return pieces


def build_formula(ctx: Context) -> list[Piece]:
    """No delivered value would run as a spreadsheet formula (the rule reports use to neutralise it)."""
    from reporting.safety import neutralise_expr

    variables = list(ctx.spec.variables)
    risky = {v: blank_to_null(v).is_not_null() & (neutralise_expr(v) != pl.col(v)) for v in variables}
    derived = {f"X_FORMULA_{v}": expr.fill_null(False) for v, expr in risky.items()}
    first = pl.coalesce([pl.when(pl.col(f"X_FORMULA_{v}")).then(pl.lit(v)) for v in variables])
    check = _check(ctx, CheckKind.FORMULA_TEXT, "*", *_true("NO_FORMULA"),
                   variable_column="X_FORMULA_VARIABLE")
    value = pl.coalesce([pl.when(pl.col(f"X_FORMULA_{v}"))
                         .then(pl.lit(WITHHELD) if v in ctx.config.private else pl.col(v)) for v in variables])
    after = {"X_FORMULA_VARIABLE": first, "X_FORMULA_VALUE_TEXT": value}
    return [Piece(check, derived=derived, after=after,
                  ge={"NO_FORMULA": pl.col("X_FORMULA_VARIABLE").is_null()})]


def build_study(ctx: Context) -> list[Piece]:
    check = _check(ctx, CheckKind.STUDY, "STUDYID", *_in_set("STUDYID", [ctx.study]))
    return [Piece(check, ge={"STUDYID": blank_to_null("STUDYID")})]


def build_site(ctx: Context) -> list[Piece]:
    if "SITEID" not in ctx.spec.variables and "SITEID" not in ctx.columns:
        return []
    check = _check(ctx, CheckKind.SITE, "SITEID", "expect_column_pair_values_to_be_equal",
                   {"column_A": "SITEID", "column_B": "DELIVERY_SITEID", "ignore_row_if": IGNORE_MISSING})
    return [Piece(check, ge={"SITEID": blank_to_null("SITEID"), "DELIVERY_SITEID": pl.col("DELIVERY_SITEID")})]


def build_subject(ctx: Context) -> list[Piece]:
    """Rows of other domains: the subject is in DM, at the site that delivered the row."""
    if ctx.domain == "DM":
        return []
    in_dm = _check(ctx, CheckKind.IN_DM, "USUBJID", *_true("IN_DM"))
    site = _check(ctx, CheckKind.SUBJECT_SITE, "USUBJID", "expect_column_pair_values_to_be_equal",
                  {"column_A": "DM_SITEID", "column_B": "DELIVERY_SITEID", "ignore_row_if": IGNORE_MISSING})
    return [Piece(in_dm, ge={"IN_DM": pl.col("X_IN_DM")}),
            Piece(site, ge={"DM_SITEID": pl.col("X_DM_SITEID"), "DELIVERY_SITEID": pl.col("DELIVERY_SITEID")})]


def build_dates(ctx: Context) -> list[Piece]:
    from checks.values import partial_date

    pieces = []
    for variable in ctx.spec.dates:
        column = f"ISO_{variable}"
        text = blank_to_null(variable)
        check = _check(ctx, CheckKind.ISO_DATE, variable, *_true(column), excludes=(variable,))
        valid = pl.when(text.is_not_null()).then(~partial_date(variable).struct.field("invalid"))
        pieces.append(Piece(check, derived={column: valid}, ge={column: pl.col(column)}))
    return pieces


def build_key(ctx: Context) -> list[Piece]:
    """One row per key; exact copies keep their first row, conflicting rows are all rejected."""
    key = list(ctx.spec.key)
    if not key:
        return []
    values = [f"X_KEY_{v}" for v in key]
    count = pl.len().over(values)
    identical = pl.len().over([*values, "X_ROW_HASH"]) == count
    first = pl.struct(values).is_first_distinct()
    derived = {f"X_KEY_{v}": value_of(v, ctx) for v in key}
    derived["X_KEY_TEXT"] = pl.concat_str([pl.concat_str([pl.lit(f"{v}="), value_of(v, ctx).fill_null("(blank)")])
                                      for v in key], separator=", ")
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
    }
    if len(key) == 1:
        expectation, kwargs = "expect_column_values_to_be_unique", {"column": key[0]}
    else:
        expectation, kwargs = "expect_compound_columns_to_be_unique", {"column_list": key}
    check = _check(ctx, CheckKind.UNIQUE_KEY, "+".join(key), expectation, kwargs, reject_when="X_DUP_REJECT")
    return [Piece(check, derived=derived, windowed=windowed, after=after,
                  ge={v: pl.col(f"X_KEY_{v}") for v in key})]


# ------------------------------------------------------------------------------------ results & units


def _not_done(ctx: Context) -> pl.Expr:
    roles = ctx.config.results.get(ctx.domain)
    if roles is None or roles.status is None:
        return pl.lit(False)
    return coded_value(roles.status).is_in(list(ctx.config.not_done)).fill_null(False)


def _test_map(ctx: Context, value: Callable[[object], object]) -> dict[str, object]:
    out = {}
    for code, entry in ctx.catalog.domain_tests(ctx.domain).items():
        mapped = value(entry)
        if mapped is not None:
            out[code] = mapped
    return out


def _lookup(ctx: Context, value: Callable[[object], object], dtype: pl.DataType) -> pl.Expr:
    test = coded_value(ctx.config.results[ctx.domain].test)
    return test.replace_strict(_test_map(ctx, value), default=None, return_dtype=dtype)


def _conversion(ctx: Context, unit: pl.Expr, part: str) -> pl.Expr:
    """One parameter of the catalog conversion of (test, canonical unit): factor, divide, offset, log10.

    Looked up from checks/units.yaml per (test, unit) pair; a blank unit converts only for tests the
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
    """number -> protocol unit with the joined conversion columns, exactly as checks.values.to_protocol_unit."""
    base = pl.when(pl.col(f"{prefix}LOG10") == 1.0).then(pl.lit(10.0).pow(number)).otherwise(number)
    converted = base * pl.col(f"{prefix}FACTOR") / pl.col(f"{prefix}DIVIDE") + pl.col(f"{prefix}OFFSET")
    return pl.when(converted.is_finite()).then(converted.round_sig_figs(12)).otherwise(converted)


def _result_columns(ctx: Context) -> dict[str, pl.Expr]:
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
    applies = blank_to_null(roles.result).is_not_null() & ~_not_done(ctx)
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
    base = _result_columns(ctx)
    positive_above = _lookup(ctx, lambda e: True if e.positive_above is not None else None, pl.Boolean)
    numeric = pl.col("X_KIND") == TestKind.NUMERIC.value
    qualitative = pl.col("X_KIND") == TestKind.QUALITATIVE.value
    coded_ok = (qualitative_result(roles.result, ctx.catalog).is_not_null()
                | (positive_above.fill_null(False) & pl.col("X_NUMBER").is_not_null()))
    result = (roles.result,)
    return [
        Piece(_check(ctx, CheckKind.NUMERIC_RESULT, roles.result, *_true("RESULT_NUMERIC"), excludes=result),
              derived=base, ge={"RESULT_NUMERIC": pl.when(numeric & pl.col("X_APPLIES"))
                                .then(pl.col("X_NUMBER").is_not_null())}),
        Piece(_check(ctx, CheckKind.CODED_RESULT, roles.result, *_true("RESULT_CODED"), excludes=result),
              derived={**base, "X_CODED_OK": coded_ok},
              ge={"RESULT_CODED": pl.when(qualitative & pl.col("X_APPLIES")).then(pl.col("X_CODED_OK"))}),
        Piece(_check(ctx, CheckKind.UNIT_KNOWN, roles.unit, *_true("UNIT_KNOWN"), excludes=result),
              derived=base, ge={"UNIT_KNOWN": pl.when(pl.col("X_NEEDS_UNIT"))
                                .then(pl.col("X_UNIT_PROBLEM").is_null())}),
        Piece(_check(ctx, CheckKind.PLAUSIBLE_LOW, roles.result, "expect_column_pair_values_a_to_be_greater_than_b",
                     {"column_A": "VALUE", "column_B": "PLAUSIBLE_LOW", "or_equal": True,
                      "ignore_row_if": IGNORE_MISSING}, excludes=result),
              derived=base, ge={"VALUE": pl.col("X_VALUE"), "PLAUSIBLE_LOW": pl.col("X_PLO")}),
        Piece(_check(ctx, CheckKind.PLAUSIBLE_HIGH, roles.result, "expect_column_pair_values_a_to_be_greater_than_b",
                     {"column_A": "PLAUSIBLE_HIGH", "column_B": "VALUE", "or_equal": True,
                      "ignore_row_if": IGNORE_MISSING}, excludes=result),
              derived=base, ge={"VALUE": pl.col("X_VALUE"), "PLAUSIBLE_HIGH": pl.col("X_PHI")}),
    ]


def build_ranges(ctx: Context) -> list[Piece]:
    roles = ctx.config.results.get(ctx.domain)
    if roles is None or roles.low is None or roles.high is None:
        return []
    base = _result_columns(ctx)
    limits = {code: ctx.config.reference_limits.get((ctx.domain, code), entry.plausible)
              for code, entry in ctx.catalog.domain_tests(ctx.domain).items()}
    limits = {code: pair for code, pair in limits.items() if pair}
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
        check = _check(ctx, CheckKind.RANGE_NUMERIC, variable, *_true(column), excludes=(variable,))
        pieces.append(Piece(check, derived=derived, ge={
            column: pl.when(numeric & blank_to_null(variable).is_not_null()).then(number.is_not_null())}))
    both = (roles.low, roles.high)
    order = _check(ctx, CheckKind.RANGE_ORDER, roles.high, "expect_column_pair_values_a_to_be_greater_than_b",
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
    unit = _check(ctx, CheckKind.RANGE_UNIT, roles.high, *_true("RANGE_UNIT"), excludes=both)
    pieces.append(Piece(unit, derived=derived, ge={"RANGE_UNIT": pl.col("X_RANGE_FITS")}))
    return pieces


# ------------------------------------------------------------------------------------ protocol


def build_ie(ctx: Context) -> list[Piece]:
    if ctx.domain != "IE" or not ctx.criteria:
        return []
    known = _check(ctx, CheckKind.IE_CRITERION, "IETESTCD", *_in_set("IETESTCD", sorted(ctx.criteria)))
    expected = coded_value("IETESTCD").replace_strict(ctx.criteria, default=None, return_dtype=pl.String)
    category = _check(ctx, CheckKind.IE_CATEGORY, "IECAT", "expect_column_pair_values_to_be_equal",
                      {"column_A": "IECAT", "column_B": "IECAT_PROTOCOL", "ignore_row_if": IGNORE_MISSING})
    return [Piece(known, ge={"IETESTCD": value_of("IETESTCD", ctx)}),
            Piece(category, derived={"X_IECAT_EXPECTED": expected},
                  ge={"IECAT": value_of("IECAT", ctx), "IECAT_PROTOCOL": pl.col("X_IECAT_EXPECTED")})]


def build_needs(ctx: Context) -> list[Piece]:
    """DM rows: the subject has every result the protocol needs and the full IE checklist.

    The per-subject lists (`X_MISSING_<DOMAIN>`, a list of missing tests) are joined onto DM by
    expectations.subjects; here they become one "must be null" expectation per domain.
    """
    if ctx.domain != "DM":
        return []
    pieces = []
    for domain, groups in sorted(ctx.needs.items()):
        column = f"MISSING_{domain}"
        tests = ", ".join(" or ".join(group) for group in groups)
        check = _check(ctx, CheckKind.NEEDED_RESULTS, column, "expect_column_values_to_be_null",
                       {"column": column}, explode=f"X_{column}", finding_domain=domain,
                       finding_variable=_test_variable(ctx, domain),
                       constants={"domain": domain, "tests": tests})
        pieces.append(Piece(check, ge={column: _joined_list(f"X_{column}")}))
    if ctx.criteria:
        check = _check(ctx, CheckKind.IE_CHECKLIST, "MISSING_IE", "expect_column_values_to_be_null",
                       {"column": "MISSING_IE"}, explode="X_MISSING_IE", finding_domain="IE",
                       finding_variable="IETESTCD",
                       constants={"decisions": " / ".join(ctx.config.ie_decisions)})
        pieces.append(Piece(check, ge={"MISSING_IE": _joined_list("X_MISSING_IE")}))
    return pieces


def _test_variable(ctx: Context, domain: str) -> str:
    roles = ctx.config.results.get(domain)
    return (roles or ctx.config.test_variables[domain]).test


def _joined_list(column: str) -> pl.Expr:
    items = pl.col(column)
    return pl.when(items.list.len() > 0).then(items.list.join(", "))


#: check builders, in suite order; each reads only the Context
BUILDERS: dict[str, Callable[[Context], list[Piece]]] = {
    "required": build_required,
    "allowed": build_allowed,
    "formula": build_formula,
    "study": build_study,
    "site": build_site,
    "subject": build_subject,
    "dates": build_dates,
    "key": build_key,
    "results": build_results,
    "ranges": build_ranges,
    "ie": build_ie,
    "needs": build_needs,
}


def build(ctx: Context) -> list[Piece]:
    """Every piece of one domain's suite, in a stable order."""
    return [piece for builder in BUILDERS.values() for piece in builder(ctx)]
