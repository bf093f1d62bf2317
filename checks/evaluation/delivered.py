"""DELIVERED: a result as the site delivered it, beside the VALUE the audit compared.

A value converted to the protocol unit (`8.8605 g/dL` from `5.5 mmol/L`) or computed from other results
(absolute lymphocytes from `LYMLE 19.6 %` and `WBC 3.5 10^9/L`) is not a figure the site can find in its
source documents; the delivered text is (docs/outputs.md, `eligibility`). The facts carry it
(`DELIVERED_TEXT`, checks.evaluation.facts.delivered_text); it is attached to the eligibility rows after the
roll-up, by the delivered rows each value came from (SOURCE), so that the roll-up carries no extra text
column: carried through it, the column cost about 160 MB of peak memory at 10,000 subjects for a few
megabytes of text (docs/benchmarks.md).
"""

from __future__ import annotations

import polars as pl

#: separates a subject from a source in a lookup key (never in a USUBJID or an object key)
_SEP = "\x1f"
#: how merged evidence joins the sources and values of several results (checks.evaluation.engine)
_MERGED = "; "
DELIVERED_COLUMNS = {"USUBJID": pl.String, "SOURCE": pl.String, "TESTCD": pl.String, "DELIVERED_TEXT": pl.String,
                     "ROW_UNIT": pl.String}


def delivered_facts(facts: pl.LazyFrame) -> pl.DataFrame:
    """DELIVERED_COLUMNS of the facts that have a delivered text (converted or computed values: a small part
    of the facts), one per subject and source."""
    # a value of several records (a mean of replicates, a computed pair) is no figure the site wrote, in whatever
    # unit: no ROW_UNIT, so that `with_delivered` keeps its delivered text beside it
    several = pl.col("SOURCE").str.contains(_MERGED, literal=True)
    return (facts.filter(pl.col("DELIVERED_TEXT").is_not_null() & pl.col("SOURCE").is_not_null())
            .with_columns(pl.when(several).then(None).otherwise(pl.col("ROW_UNIT")).alias("ROW_UNIT"))
            .select(list(DELIVERED_COLUMNS)).collect()
            .unique(["USUBJID", "SOURCE"], keep="first", maintain_order=True))


def _key(subject: pl.Expr, source: pl.Expr) -> pl.Expr:
    return pl.concat_str([subject, pl.lit(_SEP), source])


def with_delivered(table: pl.DataFrame, delivered: pl.DataFrame) -> pl.DataFrame:
    """`table` (eligibility rows: USUBJID, VALUE, UNIT, SOURCE) with DELIVERED: the delivered text of the
    result its VALUE came from, unless VALUE is in the delivered unit; for a VALUE that merges several results
    (SOURCE `a; b`, VALUE `DIABETES MELLITUS: N; HBA1C=5.26`), each of them that has one, as `TESTCD=text`,
    joined by `; `. Null where there is no VALUE or nothing to add, and for a value computed from several
    results (absolute lymphocytes from a differential excepted: their fact names both results)."""
    if delivered.height == 0:
        return table.with_columns(pl.lit(None, pl.String).alias("DELIVERED"))
    keys = delivered.select(_key(pl.col("USUBJID"), pl.col("SOURCE"))).to_series()
    texts = delivered["DELIVERED_TEXT"]
    exact = _key(pl.col("USUBJID"), pl.col("SOURCE")).replace_strict(keys, texts, default=None,
                                                                     return_dtype=pl.String)
    has_value = pl.col("VALUE").is_not_null()
    column = table.select(pl.when(has_value).then(exact).alias("DELIVERED")).to_series()
    # a value reported in the unit it was delivered in (x ULN components compare in the row's own unit) has
    # nothing to add: only the few rows found are looked at again
    found = (table.select("USUBJID", "SOURCE", "UNIT").with_row_index("_I").filter(column.is_not_null())
             .filter(_key(pl.col("USUBJID"), pl.col("SOURCE"))
                     .replace_strict(keys, delivered["ROW_UNIT"], default=None, return_dtype=pl.String)
                     .eq_missing(pl.col("UNIT")) & pl.col("UNIT").is_not_null()))
    if found.height:
        column = column.scatter(found["_I"], None)
    # merged evidence lists several values (`DIABETES MELLITUS: N; HBA1C=6.45`); a value computed from several
    # results (a creatinine clearance) is one figure, and naming one of its inputs would read as if the
    # value had been delivered as that input: it gets none
    merged = (table.select("USUBJID", "SOURCE", "VALUE").with_row_index("_I")
              .filter(pl.col("VALUE").str.contains(_MERGED, literal=True).fill_null(False)
                      & pl.col("SOURCE").str.contains(_MERGED, literal=True) & column.is_null()))
    if merged.height:
        labelled = delivered.select(pl.col("TESTCD") + pl.lit("=") + pl.col("DELIVERED_TEXT"))
        pieces = (merged.select("_I", "USUBJID", pl.col("SOURCE").str.split(_MERGED)).explode("SOURCE")
                  .with_columns(_key(pl.col("USUBJID"), pl.col("SOURCE"))
                                .replace_strict(keys, labelled.to_series(), default=None, return_dtype=pl.String)
                                .alias("_D"))
                  .group_by("_I", maintain_order=True).agg(pl.col("_D").drop_nulls().str.join(_MERGED))
                  .filter(pl.col("_D") != ""))
        if pieces.height:
            column = column.scatter(pieces["_I"], pieces["_D"])
    return table.with_columns(column)
