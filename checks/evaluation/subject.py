"""The `subject` rule kind: a demographic fact of the subject (DM), e.g. SEX = F, or a consent date.

Only variables that may appear in outputs are readable here (contracts.rule_kinds.SUBJECT_VARIABLES):
the birth date never leaves the landing area, so it is reachable only through the AGE_AT_CONSENT
derived value.
"""

from __future__ import annotations

import polars as pl

from checks.evaluation.rulebase import EvalContext, Leaf, finish
from contracts.enums import ReasonCode
from contracts.rule_kinds import SUBJECT_VARIABLES


def _one_leaf(leaf: Leaf, ctx: EvalContext) -> pl.LazyFrame:
    variable = leaf.params["variable"]
    column, excluded, is_date = SUBJECT_VARIABLES[variable]
    value = pl.col(column)
    if "present" in leaf.params:
        invalid = pl.col("CONSENT_INVALID") if is_date else pl.lit(False)
        result = pl.when(pl.col(excluded).is_not_null() | invalid).then(None).otherwise(value.is_not_null())
        code = (pl.when(pl.col(excluded).is_not_null()).then(pl.lit(ReasonCode.EXCLUDED_BY_VALIDATION.value))
                .when(invalid).then(pl.lit(ReasonCode.INVALID_DATE.value)))
        limit = pl.lit("present")
    else:
        wanted = [str(v).upper() for v in leaf.params["values"]]
        unknown = [str(v).upper() for v in leaf.params.get("unknown", [])]  # e.g. SEX = U: cannot tell
        known = pl.col(excluded).is_null() & value.is_not_null() & ~value.is_in(unknown)
        result = pl.when(known).then(value.is_in(wanted))
        code = (pl.when(pl.col(excluded).is_not_null()).then(pl.lit(ReasonCode.EXCLUDED_BY_VALIDATION.value))
                .when(value.is_null() | value.is_in(unknown)).then(pl.lit(ReasonCode.MISSING.value)))
        limit = pl.lit("/".join(wanted))
    reason = (pl.when(pl.col(excluded).is_not_null()).then(pl.col(excluded))
              .when(code == ReasonCode.INVALID_DATE.value).then(pl.lit(f"{variable} is not an ISO 8601 date"))
              .when(code == ReasonCode.MISSING.value)
              .then(pl.when(value.is_null()).then(pl.lit(f"no {variable}"))
                    .otherwise(pl.format("{} is {} (unknown)", pl.lit(variable), value))))
    return finish(ctx.reference.select(
        "USUBJID", pl.lit(leaf.id).alias("LEAF_ID"), result.alias("RESULT"),
        pl.lit(leaf.params.get("label", variable)).alias("LABEL"),
        pl.when(pl.col(excluded).is_null()).then(value).alias("VALUE"), pl.lit(None, pl.String).alias("UNIT"),
        limit.alias("LIMIT"), pl.col("CONSENT_DTC").alias("DTC") if is_date else pl.lit(None, pl.String).alias("DTC"),
        pl.col("DM_SOURCE").alias("SOURCE"), code.alias("REASON_CODE"), reason.alias("REASON"),
    ))


def build_subject(leaves: list[Leaf], ctx: EvalContext) -> pl.LazyFrame:
    return pl.concat([_one_leaf(leaf, ctx) for leaf in leaves], how="vertical")
