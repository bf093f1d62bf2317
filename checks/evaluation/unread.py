"""Leaves that read a domain whose file the subject's site delivered but ingestion rejected as a whole.

The absence of a record means "none" only when the file was read: with cm.csv rejected, "no antiviral therapy" is
unknown, not NOT_MET (a user trial: nine false ineligible enrolments and no steroid use for anyone at one site).
Such a leaf is undecided (RESULT null) with FILE_NOT_READ naming the file; the roll-up's three-valued logic then
decides what it can without it (an `any` another part makes true stays true).
"""

from __future__ import annotations

import polars as pl

from checks.evaluation.rulebase import Leaf
from contracts.enums import ReasonCode
from contracts.rule_kinds import leaf_inputs
from core.source import RECORD_SEPARATOR


def _domains(leaf: Leaf) -> set[str]:
    """The domains (upper case) a leaf reads: its own `domain`, and those its tests or derived value read."""
    own = {str(leaf.params["domain"]).upper()} if leaf.params.get("domain") else set()
    return own | {domain.upper() for domain in leaf_inputs(leaf.kind, leaf.params)}


def _reads(leaves: list[Leaf]) -> pl.DataFrame:
    """LEAF_ID x DOMAIN of every domain each leaf reads."""
    pairs = [(leaf.id, domain) for leaf in leaves for domain in sorted(_domains(leaf))]
    return pl.DataFrame(pairs, schema={"LEAF_ID": pl.Int64, "DOMAIN": pl.String}, orient="row")


def not_read_reason(sources: str) -> pl.Expr:
    """Why something is undecided when the files whose keys column `sources` holds (joined by "; ") were not read:
    "the site's cm.csv was rejected as a whole and not read, so this cannot be decided without it", "the site's
    files cm.csv and lb.csv were rejected ..." (two files read "cm.csv;lb.csv was rejected", helper-48)."""
    names = pl.col(sources).str.split(RECORD_SEPARATOR).list.eval(pl.element().str.extract(r"([^/]+)$", 1))
    several = names.list.len() > 1
    files = (pl.when(several).then(pl.format("files {} and {} were", names.list.head(names.list.len() - 1)
                                              .list.join(", "), names.list.last()))
             .otherwise(pl.format("{} was", names.list.first())))
    return pl.format("the site's {} rejected as a whole and not read, so this cannot be decided without {}", files,
                     pl.when(several).then(pl.lit("them")).otherwise(pl.lit("it")))


def without_unread(rows: pl.DataFrame, leaves: list[Leaf], reference: pl.DataFrame,
                   unread: pl.DataFrame | None) -> pl.DataFrame:
    """`rows` (one per subject x leaf, rulebase.LEAF_SCHEMA) with the leaves that read a domain of an `unread` file
    (ingestion.unread.unread_files: SITEID, DOMAIN, SOURCE) of the subject's site undecided, FILE_NOT_READ."""
    if unread is None or unread.height == 0 or rows.height == 0:
        return rows
    hit = (reference.select("USUBJID", "SITEID").join(unread, on="SITEID")
           .join(_reads(leaves), on="DOMAIN")
           .group_by("USUBJID", "LEAF_ID")
           .agg(pl.col("SOURCE").unique().sort().str.join(RECORD_SEPARATOR).alias("_UNREAD")))
    if hit.height == 0:
        return rows
    marked = rows.join(hit, on=["USUBJID", "LEAF_ID"], how="left", maintain_order="left")
    unread_here = pl.col("_UNREAD").is_not_null()
    return marked.with_columns(
        pl.when(unread_here).then(pl.lit(None, pl.Boolean)).otherwise(pl.col("RESULT")).alias("RESULT"),
        *[pl.when(unread_here).then(pl.lit(None, pl.String)).otherwise(pl.col(c)).alias(c)
          for c in ("VALUE", "UNIT", "DTC")],
        pl.when(unread_here).then(pl.col("_UNREAD")).otherwise(pl.col("SOURCE")).alias("SOURCE"),
        pl.when(unread_here).then(pl.lit(ReasonCode.FILE_NOT_READ.value)).otherwise(pl.col("REASON_CODE"))
        .alias("REASON_CODE"),
        pl.when(unread_here).then(not_read_reason("_UNREAD")).otherwise(pl.col("REASON")).alias("REASON"),
    ).drop("_UNREAD")
