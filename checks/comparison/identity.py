"""Every discrepancy's identity across nights (FINDING_ID) and the fingerprint of its facts (EVIDENCE_HASH).

A reviewer's decision refers to a finding by FINDING_ID, so the id is made of what the finding *is*:
study, subject, check and class (docs/review.md). The EVIDENCE_HASH says whether the finding still
rests on the facts the reviewer saw; a closed finding whose facts changed is reopened by the next run.
It rests on structured facts, never on the EVIDENCE sentence, so that a release which rewords a
sentence reopens nothing:

* the site's answer and the recomputed outcome (SITE_ASSESSMENT, RECOMPUTED), for every class; for
  process checks these hold their facts (the dates, ages and values they compare);
* for a finding about a component or a criterion (every class but PROCESS), the eligibility rows it
  names: the component itself (`IN10.PLT`), or the components that decide each named criterion
  (`IN10`, `EX07,IN07`): the failing ones when any fails, else all of them. Of each: VALUE, UNIT,
  LIMIT, DTC and REASON_CODE (the reason's code, not its sentence).
"""

from __future__ import annotations

import polars as pl

from contracts.tables import EVIDENCE_HASH, FINDING_ID
from core.identity import fingerprint, stable_id

#: the prefix of a discrepancy's FINDING_ID (validation findings' ids start with "V-")
PREFIX = "D"
_FAILED = ("NOT_MET", "APPLIES")
_FACT_COLUMNS = ("VALUE", "UNIT", "LIMIT", "DTC", "REASON_CODE")
#: separate the parts of one component's facts and the components of one finding; neither occurs in
#: delivered text, and a missing part is written as NUL, never as empty text
_PART, _COMPONENT, _MISSING = "\x1f", "\x1e", "\x00"


def discrepancy_id() -> pl.Expr:
    """FINDING_ID of a discrepancy: study, subject, check and class (the site is not part of it)."""
    return stable_id(PREFIX, "STUDYID", "USUBJID", "CHECK_ID", "CLASS").alias(FINDING_ID)


def _component_facts(discrepancies: pl.DataFrame, eligibility: pl.DataFrame) -> pl.DataFrame:
    """USUBJID, CHECK_ID (the finding's), _FACTS: the facts of the eligibility rows the check names."""
    named = (discrepancies.select("USUBJID", "CHECK_ID").unique()
             .with_columns(pl.col("CHECK_ID").str.split(",").alias("_PART")).explode("_PART"))
    if named.height == 0:
        return pl.DataFrame(schema={"USUBJID": pl.String, "CHECK_ID": pl.String, "_FACTS": pl.String})
    columns = ["USUBJID", "CRITERION_ID", "CHECK_ID", "OUTCOME", *_FACT_COLUMNS]
    rows = (eligibility.join(named.select("USUBJID").unique(), on="USUBJID", how="semi")
            .select([pl.col(c).cast(pl.String) if c in eligibility.columns else pl.lit(None, pl.String).alias(c)
                     for c in columns])
            .rename({"CHECK_ID": "_COMPONENT"}))
    by_component = named.join(rows, left_on=["USUBJID", "_PART"], right_on=["USUBJID", "_COMPONENT"],
                              how="inner").with_columns(pl.col("_PART").alias("_COMPONENT"))
    by_criterion = named.join(rows, left_on=["USUBJID", "_PART"], right_on=["USUBJID", "CRITERION_ID"],
                              how="inner").with_columns(pl.col("_PART").alias("CRITERION_ID"))
    keys = ["USUBJID", "CHECK_ID", "_COMPONENT"]
    matched = pl.concat([by_component.select(*keys, "CRITERION_ID", "OUTCOME", *_FACT_COLUMNS),
                         by_criterion.select(*keys, "CRITERION_ID", "OUTCOME", *_FACT_COLUMNS)],
                        how="vertical").unique(keys, keep="first", maintain_order=True)
    failing = pl.col("OUTCOME").is_in(_FAILED)
    decisive = matched.filter(failing | ~failing.any().over("USUBJID", "CHECK_ID", "CRITERION_ID"))
    one = pl.concat_str([pl.col(c).fill_null(_MISSING) for c in ("_COMPONENT", *_FACT_COLUMNS)], separator=_PART)
    return (decisive.sort("USUBJID", "CHECK_ID", "_COMPONENT")
            .group_by("USUBJID", "CHECK_ID", maintain_order=True)
            .agg(one.str.join(_COMPONENT).alias("_FACTS")))


def with_identity(discrepancies: pl.DataFrame, eligibility: pl.DataFrame) -> pl.DataFrame:
    """`discrepancies` with FINDING_ID and EVIDENCE_HASH added last (rows and their order unchanged)."""
    facts = _component_facts(discrepancies, eligibility)
    return (discrepancies.join(facts, on=["USUBJID", "CHECK_ID"], how="left", nulls_equal=True, maintain_order="left")
            .with_columns(discrepancy_id(),
                          fingerprint("SITE_ASSESSMENT", "RECOMPUTED", "_FACTS").alias(EVIDENCE_HASH))
            .drop("_FACTS"))
