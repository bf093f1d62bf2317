"""An amended protocol: each subject judged by the version in force at its consent, as one table.

The engine evaluates every version over the subjects whose consent date allows it (core.versions) and
hands each version's eligibility rows here. A subject whose consent date allows one version keeps that
version's rows. A subject whose consent date spans an amendment (a partial `2025-03` across a
2025-03-15 amendment, or no usable consent date) has rows from several versions; per component:

- when every version of its span decides it the same way, that is the outcome (PLT 70 meets both
  `>= 60` and `>= 50`). A version without the component counts as passing it (a criterion added by
  2.0 cannot exclude a subject consented under 1.0), so an added criterion the subject passes is MET;
- otherwise it is UNVERIFIABLE: the data's own reason when a version could not decide it, else
  VERSION_UNDECIDABLE naming the versions and what each decides.

Components the versions define alike always agree, so only what differs can be undecided; the
evidence (value, unit, date, source) is the latest version's, and a limit that differs between
versions is shown for each (`1.0: >= 60; 2.0: >= 50`). All of it is polars over all spanning subjects.
"""

from __future__ import annotations

import polars as pl

from contracts.enums import Category, Outcome, ReasonCode
from contracts.protocol import Protocol

_SPAN = ["_V_FIRST", "_V_LAST"]


def _passing() -> pl.Expr:
    """What a version without the component says of it: it does not stop the subject."""
    return (pl.when(pl.col("CATEGORY") == Category.INCLUSION.value).then(pl.lit(Outcome.MET.value))
            .otherwise(pl.lit(Outcome.NOT_APPLICABLE.value)))


def _merge_spanning(rows: pl.DataFrame, editions: tuple[Protocol, ...]) -> pl.DataFrame:
    """One row per spanning subject x component (see the module docstring)."""
    names = {index: edition.tivers for index, edition in enumerate(editions)}
    unverifiable = pl.col("OUTCOME") == Outcome.UNVERIFIABLE.value
    grouped = (
        rows.with_columns(pl.col("_E").replace_strict(names, return_dtype=pl.String).alias("_EDITION"))
        .sort("USUBJID", "CHECK_ID", "_E")
        .group_by("USUBJID", "CHECK_ID", maintain_order=True)
        .agg(
            pl.all().exclude("USUBJID", "CHECK_ID").last(),
            pl.len().alias("_N"),
            pl.col("OUTCOME").n_unique().alias("_DISTINCT"),
            pl.col("LIMIT").n_unique().alias("_LIMITS"),
            pl.format("{}: {}", pl.col("_EDITION"), pl.col("LIMIT").fill_null("-")).str.join("; ")
            .alias("_EACH_LIMIT"),
            pl.format("{}: {}", pl.col("_EDITION"), pl.col("OUTCOME")).str.join("; ").alias("_EACH_OUTCOME"),
            pl.col("REASON_CODE").filter(unverifiable).last().alias("_U_CODE"),
            pl.col("REASON").filter(unverifiable).last().alias("_U_REASON"),
        )
    )
    every_version = pl.col("_N") == pl.col("_V_LAST") - pl.col("_V_FIRST") + 1
    agreed = (pl.col("_DISTINCT") == 1) & (every_version | (pl.col("OUTCOME") == _passing()))
    others = pl.when(every_version).then(pl.lit("")).otherwise(pl.lit("; the other version(s) do not have it"))
    undecided_reason = pl.format(
        "RFICDTC {} does not tell whether version {} applies, and they decide {} differently ({}{})",
        pl.col("CONSENT_DTC").fill_null("(missing)"), pl.col("TIVERS"), pl.col("CHECK_ID"),
        pl.col("_EACH_OUTCOME"), others)
    return grouped.with_columns(
        pl.when(agreed).then(pl.col("OUTCOME")).otherwise(pl.lit(Outcome.UNVERIFIABLE.value)).alias("OUTCOME"),
        pl.when(pl.col("_LIMITS") > 1).then(pl.col("_EACH_LIMIT")).otherwise(pl.col("LIMIT")).alias("LIMIT"),
        pl.when(agreed).then(pl.col("REASON_CODE"))
        .when(pl.col("_U_CODE").is_not_null()).then(pl.col("_U_CODE"))
        .otherwise(pl.lit(ReasonCode.VERSION_UNDECIDABLE.value)).alias("REASON_CODE"),
        pl.when(agreed).then(pl.col("REASON"))
        .when(pl.col("_U_CODE").is_not_null()).then(pl.col("_U_REASON"))
        .otherwise(undecided_reason).alias("REASON"),
    ).select(rows.columns)


def _orders(editions: tuple[Protocol, ...]) -> tuple[dict[str, int], dict[str, int]]:
    """Criterion and component numbers across versions: the latest version's order, then what only
    earlier versions have."""
    criteria: dict[str, int] = {}
    components: dict[str, int] = {}
    for edition in reversed(editions):
        for criterion, component in edition.components():
            criteria.setdefault(criterion.id, len(criteria))
            components.setdefault(component.id, len(components))
    return criteria, components


def merge_editions(tables: list[pl.DataFrame], reference: pl.DataFrame,
                   editions: tuple[Protocol, ...]) -> pl.DataFrame:
    """The versions' eligibility rows (engine `_publishable`, one table per version in `editions`
    order) as one table in the published order, with `_RANK` (subject) and `_C` (criterion) renumbered
    across versions for the criteria roll-up.

    Consumes `tables` (each entry is released once split): most rows belong to subjects of one version
    and are only moved; the few of spanning subjects are merged (`_merge_spanning`). Subjects and
    components are numbered by lookup, not joined (a join would copy every column of every row)."""
    spans = reference.filter(pl.col("_V_FIRST") != pl.col("_V_LAST")).select("USUBJID", *_SPAN, "CONSENT_DTC")
    spanning = pl.col("USUBJID").is_in(spans["USUBJID"].implode())
    kept, merging = [], []
    for index in range(len(tables)):
        table = tables[index].drop("_RANK", "_C")
        tables[index] = pl.DataFrame()  # the caller's copy goes: only the split halves stay alive
        if spans.height:
            merging.append(table.filter(spanning).with_columns(pl.lit(index, dtype=pl.Int32).alias("_E")))
            table = table.filter(~spanning)
        kept.append(table)
    if merging:
        rows = pl.concat(merging, how="vertical").join(spans, on="USUBJID", how="left")
        kept.append(_merge_spanning(rows, editions).drop("_E", *_SPAN, "CONSENT_DTC"))
    table = pl.concat(kept, how="vertical")
    del kept, merging
    criteria, components = _orders(editions)
    ranks = reference.select("USUBJID", "SITEID").sort("SITEID", "USUBJID", nulls_last=True).with_row_index("_RANK")
    return (
        table.with_columns(
            pl.col("USUBJID").replace_strict(ranks["USUBJID"], ranks["_RANK"], return_dtype=pl.UInt32).alias("_RANK"),
            pl.col("CRITERION_ID").replace_strict(criteria, return_dtype=pl.Int64).alias("_C"),
            pl.col("CHECK_ID").replace_strict(components, return_dtype=pl.Int64).alias("_O"),
        )
        .sort("_RANK", "_O")
        .drop("_O")
    )


def edition_derived(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """The derived values each subject was judged with: its version's (every part holds only the subjects
    its version judges); for a subject whose consent spans versions, the latest of them (the values
    differ only when the versions' screening windows do)."""
    rows = pl.concat([part.with_columns(pl.lit(index, dtype=pl.Int32).alias("_E"))
                      for index, part in enumerate(parts)], how="vertical")
    return (rows.sort("USUBJID", "NAME", "_E").unique(subset=["USUBJID", "NAME"], keep="last", maintain_order=True)
            .drop("_E"))
