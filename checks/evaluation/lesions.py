"""The `lesion` rule kind: at least one measurable target lesion (RECIST 1.1), from TU joined to TR.

A target lesion (TU `TUORRES` = TARGET) is measurable when its in-window measurement reaches the
minimum: the longest diameter (`LDIAM`) for a non-nodal lesion, the short axis (`LPERP`) for a
lesion whose `TULOC` marks a lymph node. Measurements are converted to mm by the unit catalog
(`cm` x 10). True when any target lesion is measurable; null when none is but some lesion's
measurement cannot be used; False when no target lesion was identified or none is big enough; a
subject without any TU record is MISSING.
"""

from __future__ import annotations

import polars as pl

from checks.evaluation.exclusions import excluded_messages
from checks.evaluation.rulebase import EvalContext, Leaf, finish
from contracts.enums import ReasonCode
from core.source import SOURCE_SCHEMA, source_order, source_text, typed_source
from core.values import blank_to_null, coded_value, decide, format_number


def _tu(ctx: EvalContext) -> pl.LazyFrame:
    frame = ctx.domains.get("tu")
    columns = ["USUBJID", "TULNKID", "TUTESTCD", "TUORRES", "TULOC"]
    if frame is None:
        frame = pl.DataFrame(schema={**dict.fromkeys(columns, pl.String), **SOURCE_SCHEMA})
    rows = frame.lazy().select([
        *[(blank_to_null(pl.col(c).cast(pl.String)) if c in frame.columns else pl.lit(None, pl.String)).alias(c)
          for c in columns],
        *typed_source(frame),
    ])
    rows = excluded_messages(rows, ctx.exclusions, "TU", {"TU": ["TULNKID", "TUTESTCD", "TUORRES", "TULOC"]})
    return rows.filter(coded_value(pl.col("TUTESTCD")).fill_null("TUMIDENT") == "TUMIDENT")


def _one_leaf(leaf: Leaf, ctx: EvalContext) -> pl.LazyFrame:
    p = leaf.params
    tu = _tu(ctx).join(ctx.reference.select("USUBJID"), on="USUBJID")
    nodal = coded_value(pl.col("TULOC")) == str(p["nodal_location"]).upper()
    targets = tu.filter(coded_value(pl.col("TUORRES")) == str(p["target"]).upper()).with_columns(
        pl.when(nodal).then(pl.lit("LPERP")).otherwise(pl.lit("LDIAM")).alias("TESTCD"),
        pl.when(nodal).then(float(p["nodal_min_mm"])).otherwise(float(p["min_mm"])).alias("_MIN"),
        pl.col("TULNKID").fill_null("").alias("KEY"),
    )
    measured = targets.join(
        ctx.facts.filter(pl.col("DOMAIN") == "TR").rename({"SOURCE": "TR_SOURCE"}),
        on=["USUBJID", "KEY", "TESTCD"], how="left",
    ).with_columns(
        pl.when(pl.col("_X_TU").is_not_null()).then(pl.lit(ReasonCode.EXCLUDED_BY_VALIDATION.value))
        .when(pl.col("DOMAIN").is_null()).then(pl.lit(ReasonCode.MISSING.value))
        .otherwise(pl.col("N_REASON")).alias("REASON_CODE"),
        pl.when(pl.col("_X_TU").is_not_null()).then(pl.col("_X_TU"))
        .when(pl.col("DOMAIN").is_null()).then(pl.format("target lesion {}: no {} measurement", pl.col("KEY"),
                                                         pl.col("TESTCD")))
        .otherwise(pl.format("target lesion {}: {}", pl.col("KEY"), pl.col("N_REASON_TEXT"))).alias("REASON"),
    ).with_columns(
        pl.when(pl.col("REASON_CODE").is_null()).then(
            decide(pl.col("LO"), pl.col("HI"), pl.col("LO_OPEN"), pl.col("HI_OPEN"), ">=", pl.col("_MIN")))
        .alias("RESULT"),
    ).with_columns(
        pl.when(pl.col("RESULT").is_null() & pl.col("REASON_CODE").is_null())
        .then(pl.lit(ReasonCode.CENSORED_UNDECIDABLE.value)).otherwise(pl.col("REASON_CODE")).alias("REASON_CODE"),
        pl.when(pl.col("RESULT").is_null() & pl.col("REASON_CODE").is_null())
        .then(pl.format("target lesion {}: {} {} mm cannot decide >= {}", pl.col("KEY"), pl.col("TESTCD"),
                        pl.col("VALUE_TEXT"), format_number(pl.col("_MIN"))))
        .otherwise(pl.col("REASON")).alias("REASON"),
        pl.when(pl.col("RESULT").is_null()).then(1).when(pl.col("RESULT")).then(2).otherwise(0).alias("_RANK"),
    )
    best = (  # the deciding lesion; the TU row's SOURCE breaks ties between duplicated lesions
        measured.sort("USUBJID", "_RANK", "LO", "KEY", *source_order(), nulls_last=False)
        .unique(subset="USUBJID", keep="last", maintain_order=True)
        .with_columns(pl.coalesce(["TR_SOURCE", source_text()]).alias("SOURCE"))  # the measurement used
    )
    has_tu = tu.select("USUBJID").unique().with_columns(pl.lit(True).alias("_HAS_TU"))
    return finish(
        ctx.reference.select("USUBJID").join(has_tu, on="USUBJID", how="left").join(best, on="USUBJID", how="left")
        .with_columns(
            pl.lit(leaf.id).alias("LEAF_ID"), pl.lit(leaf.params.get("label", "TARGET LESION")).alias("LABEL"),
            pl.when(pl.col("_HAS_TU").is_null()).then(None).when(pl.col("_RANK").is_null()).then(False)
            .otherwise(pl.col("RESULT")).alias("RESULT"),
            pl.when(pl.col("_HAS_TU").is_null()).then(pl.lit(ReasonCode.MISSING.value))
            .otherwise(pl.col("REASON_CODE")).alias("REASON_CODE"),
            pl.when(pl.col("_HAS_TU").is_null()).then(pl.lit("no tumour identification (TU) record"))
            .otherwise(pl.col("REASON")).alias("REASON"),
            pl.when(pl.col("_RANK").is_not_null())
            .then(pl.format("{} {} {}", pl.col("KEY"), pl.col("TESTCD"), pl.col("VALUE_TEXT").fill_null("-")))
            .when(pl.col("_HAS_TU")).then(pl.lit("no target lesion")).alias("VALUE"),
            pl.when(pl.col("_RANK").is_not_null()).then(pl.lit("mm")).alias("UNIT"),
            pl.when(pl.col("_RANK").is_not_null()).then(format_number(pl.col("_MIN"))).alias("LIMIT"),
        )
    )


def build_lesions(leaves: list[Leaf], ctx: EvalContext) -> pl.LazyFrame:
    return pl.concat([_one_leaf(leaf, ctx) for leaf in leaves], how="vertical")
