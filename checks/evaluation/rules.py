"""How each rule kind is evaluated (`RULE_BUILDERS`), and the builders of the kinds that read one value
per subject.

A protocol file names a kind per leaf (declared in contracts.rule_kinds: keys and inputs); adding a
criterion means writing YAML with these kinds, never a new function. Kinds over the facts table
(threshold, derived, uln_multiple, uln_difference, coded) are evaluated in one pass each: subjects x
leaves of the kind, joined with the facts, and a handful of aliased expressions. `event` (MH/CM/PR
with dates), `lesion` (TU/TR) and `subject` (DM) live in their own modules.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from checks.evaluation.events import build_events
from checks.evaluation.lesions import build_lesions
from checks.evaluation.rulebase import EvalContext, Leaf, RuleBuilder, empty_leaf_results, finish, leaf_table
from checks.evaluation.subject import build_subject
from contracts.enums import ReasonCode
from core.values import decide, format_number

# ------------------------------------------------------------------------------------ shared pieces


def _fact_rows(table: pl.DataFrame, ctx: EvalContext) -> pl.LazyFrame:
    """Subjects x leaves, with the subject's fact for the leaf's test (null columns when none)."""
    # only the facts of this kind's tests: the join then hashes those rather than the whole facts table
    wanted = (pl.col("DOMAIN").is_in(table["DOMAIN"].unique().to_list())
              & pl.col("TESTCD").is_in(table["TESTCD"].unique().to_list()))
    facts = ctx.facts.filter(wanted).with_columns(pl.lit(True).alias("_HAS_FACT"))
    return (
        ctx.reference.select("USUBJID").join(table.lazy(), how="cross")
        .join(facts, on=["USUBJID", "DOMAIN", "KEY", "TESTCD"], how="left")
        .with_columns(pl.col("_HAS_FACT").fill_null(False))
    )


def _missing() -> tuple[pl.Expr, pl.Expr]:
    """Reason code and sentence for a subject with no row at all for the leaf's test."""
    return (pl.lit(ReasonCode.MISSING.value),
            pl.when(pl.col("DOMAIN") == "DERIVED").then(pl.format("no {}", pl.col("TESTCD")))
            .otherwise(pl.format("no {} result", pl.col("TESTCD"))))


def _compare(lo: str, hi: str, lo_open: str, hi_open: str, limit: pl.Expr) -> pl.Expr:
    """Three-valued comparison of an interval with LIMIT (op per leaf, or an inclusive range)."""
    args = (pl.col(lo), pl.col(hi), pl.col(lo_open).fill_null(False), pl.col(hi_open).fill_null(False))
    expr: Any = pl.when(pl.col("OP") == "range").then(
        decide(*args, ">=", pl.col("LIMIT")) & decide(*args, "<=", pl.col("LIMIT_HI")))
    for op in (">=", ">", "<=", "<"):
        expr = expr.when(pl.col("OP") == op).then(decide(*args, op, limit))
    return expr.otherwise(None)


def _limit_text(limit: pl.Expr) -> pl.Expr:
    return (pl.when(pl.col("OP") == "range")
            .then(pl.format("{} to {}", format_number(pl.col("LIMIT")), format_number(pl.col("LIMIT_HI"))))
            .otherwise(format_number(limit)))


def _undecidable_text(value: str, unit: str, limit: pl.Expr) -> pl.Expr:
    return pl.format("{} {} {} cannot decide {} {}", pl.col("TESTCD"), pl.col(value), pl.col(unit).fill_null(""),
                     pl.col("OP"), _limit_text(limit))


def _numeric_leaf(rows: pl.LazyFrame, value: str, unit: str, interval: tuple[str, str, str, str],
                  limit: pl.Expr, extra_reason: tuple[pl.Expr, pl.Expr] | None = None) -> pl.LazyFrame:
    """RESULT and evidence of a numeric comparison; a reason is kept when the value cannot be used."""
    missing_code, missing_text = _missing()
    code = pl.when(~pl.col("_HAS_FACT")).then(missing_code).otherwise(pl.col("N_REASON"))
    text = pl.when(~pl.col("_HAS_FACT")).then(missing_text).otherwise(pl.col("N_REASON_TEXT"))
    if extra_reason is not None:
        code = pl.coalesce([code, extra_reason[0]])
        text = pl.coalesce([text, extra_reason[1]])
    rows = rows.with_columns(code.alias("_CODE"), text.alias("_TEXT"), limit.round_sig_figs(12).alias("_LIMIT"))
    result = pl.when(pl.col("_CODE").is_null()).then(_compare(*interval, pl.col("_LIMIT")))
    rows = rows.with_columns(result.alias("RESULT"))
    undecided = pl.col("RESULT").is_null() & pl.col("_CODE").is_null()
    return finish(rows.with_columns(
        # the limit is shown even without a value: "no WBC result" still says what was required
        pl.col(value).alias("VALUE"), pl.coalesce([pl.col(unit), pl.col("_UNIT")]).alias("UNIT"),
        _limit_text(pl.col("_LIMIT")).alias("LIMIT"),
        pl.when(undecided).then(pl.col("U_REASON").fill_null(ReasonCode.CENSORED_UNDECIDABLE.value))
        .otherwise(pl.col("_CODE")).alias("REASON_CODE"),
        pl.when(undecided)
        .then(pl.coalesce([pl.col("U_REASON_TEXT"), _undecidable_text(value, unit, pl.col("_LIMIT"))]))
        .otherwise(pl.col("_TEXT")).alias("REASON"),
    ))


def _comparison_columns(domain_of: Any, test_of: Any) -> tuple[dict, dict]:
    columns = {
        "DOMAIN": domain_of, "KEY": lambda leaf: "", "TESTCD": test_of,
        "OP": lambda leaf: "range" if "range" in leaf.params else leaf.params["op"],
        "LIMIT": lambda leaf: float(leaf.params["range"][0] if "range" in leaf.params else leaf.params["limit"]),
        "LIMIT_HI": lambda leaf: float(leaf.params["range"][1]) if "range" in leaf.params else None,
        "LABEL": lambda leaf: leaf.params.get("label") or test_of(leaf),
    }
    schema = {"DOMAIN": pl.String, "KEY": pl.String, "TESTCD": pl.String, "OP": pl.String, "LIMIT": pl.Float64,
              "LIMIT_HI": pl.Float64, "LABEL": pl.String}
    return columns, schema


# --------------------------------------------------------------------------------------------- kinds


def threshold(leaves: list[Leaf], ctx: EvalContext) -> pl.LazyFrame:
    """A finding test's value in the protocol unit compared with a limit (`op` + `limit`, or `range`)."""
    columns, schema = _comparison_columns(lambda leaf: leaf.params["domain"].upper(),
                                          lambda leaf: leaf.params["test"].upper())
    columns["_UNIT"] = lambda leaf: ctx.catalog.protocol_unit(leaf.params["domain"], leaf.params["test"])
    rows = _fact_rows(leaf_table(leaves, columns, {**schema, "_UNIT": pl.String}), ctx)
    return _numeric_leaf(rows, "VALUE_TEXT", "PUNIT", ("LO", "HI", "LO_OPEN", "HI_OPEN"), pl.col("LIMIT"))


def derived(leaves: list[Leaf], ctx: EvalContext) -> pl.LazyFrame:
    """A derived value (checks.evaluation.derived: AGE_AT_CONSENT, CRCL_CG, LYM_ABS) compared with a limit."""
    columns, schema = _comparison_columns(lambda leaf: "DERIVED", lambda leaf: leaf.params["value"].upper())
    columns["_UNIT"] = lambda leaf: None
    rows = _fact_rows(leaf_table(leaves, columns, {**schema, "_UNIT": pl.String}), ctx)
    return _numeric_leaf(rows, "VALUE_TEXT", "PUNIT", ("LO", "HI", "LO_OPEN", "HI_OPEN"), pl.col("LIMIT"))


def _uln(leaves: list[Leaf], ctx: EvalContext, limit: pl.Expr) -> pl.LazyFrame:
    """Value and limit both in the result's own unit: ULN = LBORNRHI of the same row (never converted)."""
    columns, schema = _comparison_columns(lambda leaf: leaf.params.get("domain", "LB").upper(),
                                          lambda leaf: leaf.params["test"].upper())
    columns["LIMIT"] = lambda leaf: float(leaf.params.get("multiple", leaf.params.get("difference")))
    columns["_UNIT"] = lambda leaf: None  # the row's own unit: unknown without a row
    rows = _fact_rows(leaf_table(leaves, columns, {**schema, "_UNIT": pl.String}), ctx)
    no_uln = (pl.when(pl.col("ULN").is_null()).then(pl.lit(ReasonCode.NO_ULN.value)),
              pl.when(pl.col("ULN").is_null()).then(pl.col("ULN_REASON")))
    return _numeric_leaf(rows, "ROW_VALUE_TEXT", "ROW_UNIT", ("R_LO", "R_HI", "R_LO_OPEN", "R_HI_OPEN"),
                         limit, extra_reason=no_uln)


def uln_multiple(leaves: list[Leaf], ctx: EvalContext) -> pl.LazyFrame:
    """value <op> multiple x ULN (IN11.ALT: ALT <= 5 ULN); LIMIT reports multiple x ULN in the row's unit."""
    return _uln(leaves, ctx, pl.col("LIMIT") * pl.col("ULN"))


def uln_difference(leaves: list[Leaf], ctx: EvalContext) -> pl.LazyFrame:
    """value - ULN <op> difference, i.e. value <op> ULN + difference (IN11.PT: prolongation <= 6 s)."""
    return _uln(leaves, ctx, pl.col("ULN") + pl.col("LIMIT"))


def coded(leaves: list[Leaf], ctx: EvalContext) -> pl.LazyFrame:
    """A coded finding (FA Y/N, BCLC stage, LB qualitative via the catalog) in a set of values."""
    columns = {
        "DOMAIN": lambda leaf: leaf.params["domain"].upper(), "KEY": lambda leaf: "",
        "TESTCD": lambda leaf: leaf.params["test"].upper(),
        "VALUES": lambda leaf: [str(v).upper() for v in leaf.params["values"]],
        "VALID": lambda leaf: [str(v).upper() for v in leaf.params.get("valid", [])],
        "LABEL": lambda leaf: leaf.params.get("label") or leaf.params["test"].upper(),
    }
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "DOMAIN": pl.String, "KEY": pl.String, "TESTCD": pl.String, "VALUES": pl.List(pl.String),
        "VALID": pl.List(pl.String), "LABEL": pl.String}
    rows = _fact_rows(leaf_table(leaves, columns, schema), ctx)
    missing_code, missing_text = _missing()
    invalid = (pl.col("VALID").list.len() > 0) & ~pl.col("VALID").list.contains(pl.col("CODED"))
    code = (pl.when(~pl.col("_HAS_FACT")).then(missing_code)
            .when(pl.col("C_REASON").is_not_null()).then(pl.col("C_REASON"))
            .when(invalid).then(pl.lit(ReasonCode.INVALID_CODE.value)))
    text = (pl.when(~pl.col("_HAS_FACT")).then(missing_text)
            .when(pl.col("C_REASON").is_not_null()).then(pl.col("C_REASON_TEXT"))
            .when(invalid).then(pl.format("{} result '{}' is not one of {}", pl.col("TESTCD"), pl.col("TEXT"),
                                          pl.col("VALID").list.join("/"))))
    return finish(rows.with_columns(code.alias("REASON_CODE"), text.alias("REASON")).with_columns(
        pl.when(pl.col("REASON_CODE").is_null()).then(pl.col("VALUES").list.contains(pl.col("CODED")))
        .alias("RESULT"),
        pl.col("CODED").alias("VALUE"), pl.lit(None, dtype=pl.String).alias("UNIT"),
        pl.col("VALUES").list.join("/").alias("LIMIT"),
    ))


RULE_BUILDERS: dict[str, RuleBuilder] = {
    "threshold": RuleBuilder(threshold),
    "derived": RuleBuilder(derived),
    "uln_multiple": RuleBuilder(uln_multiple),
    "uln_difference": RuleBuilder(uln_difference),
    "coded": RuleBuilder(coded),
    "event": RuleBuilder(build_events, reads_facts=False),
    "lesion": RuleBuilder(build_lesions),
    "subject": RuleBuilder(build_subject, reads_facts=False),
}


def evaluate_leaves(leaves: list[Leaf], ctx: EvalContext) -> pl.DataFrame:
    """All leaves of all components: one builder call per rule kind, the plans collected one by one."""
    parts = []
    for kind, rule_kind in RULE_BUILDERS.items():
        of_kind = [leaf for leaf in leaves if leaf.kind == kind]
        if of_kind:
            parts.append(rule_kind.build(of_kind, ctx))
    if not parts:
        return empty_leaf_results().collect()
    # one kind at a time (only one kind's intermediate tables alive), with the in-memory engine (less CPU
    # than streaming here), each kind's table one chunk per column (later selects then keep the chunks
    # instead of copying the whole table into one): docs/benchmarks.md, "Evaluation engine"
    return pl.concat([part.collect(engine="in-memory").rechunk() for part in parts], how="vertical")
