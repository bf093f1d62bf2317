"""The site's own eligibility checklist (IE) as one subject x criterion table.

The comparison needs to know, for every screened subject and every protocol criterion, what the site
said: met / not met (inclusion), applies / does not apply (exclusion), unknown, or nothing. The DTS
accepts two delivery styles and the same absent row means different things in each:

* FULL checklist: the site answers every criterion; an absent criterion is *missing* (PC04).
* NOT_MET_ONLY (SDTM IE style): only criteria not met / exclusions that apply are delivered; an absent
  criterion counts as met (inclusion) / not applying (exclusion) by the site.

The style is decided per subject from the answers themselves: a subject with at least one "passing"
answer (inclusion `Y` or exclusion `N`) has a FULL checklist, because a not-met-only delivery never
contains such a row; a subject with rows but no passing answer is NOT_MET_ONLY. A subject without any
IE row is ambiguous on its own (an SDTM site's eligible subject looks exactly like a FULL site's
missing checklist), so the site decides: when every subject of the site that has IE rows is
NOT_MET_ONLY, the empty checklist is read as "all met"; otherwise (some FULL subject at the site, or
no IE row at the site at all) it is MISSING.
"""

from __future__ import annotations

import polars as pl

from contracts.enums import Category, ChecklistStyle, Outcome, SiteSource
from contracts.protocol import Protocol
from core import values

#: SITE_OUTCOME values besides the decided contracts.Outcome ones
UNKNOWN = "UNKNOWN"
#: SITE_ANSWER of an IE row whose IEORRES is blank (or was excluded by validation)
BLANK = "(blank)"

CHECKLIST_COLUMNS = [
    "USUBJID",
    "CRITERION_ID",
    "CATEGORY",
    "ORDER",
    "STYLE",
    "SITE_ANSWER",
    "SITE_SOURCE",
    "SITE_OUTCOME",
    "SITE_TEXT",
    "SITE_PHRASE",
]


def criteria_frame(protocol: Protocol) -> pl.DataFrame:
    """CRITERION_ID, CATEGORY (INCLUSION / EXCLUSION), ORDER from the criteria of every protocol version
    (which of them a subject's checklist must answer comes from what it was evaluated with: `_grid`)."""
    ids = [ident for ident, _ in protocol.all_criteria()]
    categories = [category.value for _, category in protocol.all_criteria()]
    return pl.DataFrame(
        {"CRITERION_ID": ids, "CATEGORY": categories, "ORDER": list(range(len(ids)))},
        schema={"CRITERION_ID": pl.String, "CATEGORY": pl.String, "ORDER": pl.Int64},
    )


def _ie_answers(ie: pl.DataFrame | None, criteria: pl.DataFrame) -> pl.DataFrame:
    """One row per subject x protocol criterion the site answered: SITE_ANSWER.

    Duplicate rows that agree collapse into one answer; rows that disagree give "Y/N" (not decided).
    Codes outside the protocol are ignored here (validation reports them).
    """
    schema = {"USUBJID": pl.String, "CRITERION_ID": pl.String, "SITE_ANSWER": pl.String}
    if ie is None or ie.height == 0 or not {"USUBJID", "IETESTCD", "IEORRES"} <= set(ie.columns):
        return pl.DataFrame(schema=schema)
    rows = ie.select(
        pl.col("USUBJID").str.strip_chars().alias("USUBJID"),
        pl.col("IETESTCD").str.strip_chars().str.to_uppercase().alias("CRITERION_ID"),
        values.coded_value("IEORRES").fill_null(BLANK).alias("ANSWER"),
    ).join(criteria.select("CRITERION_ID"), on="CRITERION_ID", how="semi")
    # almost every subject x criterion has one row: its answer as it is, found without per-group list
    # work (slow over hundreds of thousands of groups); the few with several rows get theirs merged
    keys = ["USUBJID", "CRITERION_ID"]
    answers = rows.group_by(keys).agg(pl.col("ANSWER").first().alias("SITE_ANSWER"), pl.len().alias("_N"))
    several = answers.filter(pl.col("_N") > 1).select(keys)
    if several.height:
        merged = (rows.join(several, on=keys, how="semi").group_by(keys)
                  .agg(pl.col("ANSWER").unique().sort().str.join("/").alias("_MERGED")))
        answers = answers.join(merged, on=keys, how="left").with_columns(
            pl.coalesce("_MERGED", "SITE_ANSWER").alias("SITE_ANSWER"))
    return answers.select(*keys, "SITE_ANSWER")


def _styles(answers: pl.DataFrame, subjects: pl.DataFrame, criteria: pl.DataFrame) -> pl.DataFrame:
    """USUBJID -> STYLE (see the module docstring for the rule)."""
    per_subject = (
        answers.join(criteria.select("CRITERION_ID", "CATEGORY"), on="CRITERION_ID")
        .group_by("USUBJID")
        .agg(
            (
                ((pl.col("CATEGORY") == Category.INCLUSION) & (pl.col("SITE_ANSWER") == "Y"))
                | ((pl.col("CATEGORY") == Category.EXCLUSION) & (pl.col("SITE_ANSWER") == "N"))
            )
            .any()
            .alias("HAS_PASS")
        )
    )
    own = subjects.select("SITEID", "USUBJID").join(per_subject, on="USUBJID", how="left")
    site = own.group_by("SITEID").agg(
        pl.col("HAS_PASS").fill_null(False).any().alias("SITE_HAS_FULL"),
        (pl.col("HAS_PASS") == False).any().fill_null(False).alias("SITE_HAS_NMO"),  # noqa: E712
    )
    return own.join(site, on="SITEID", how="left").select(
        "USUBJID",
        pl.when(pl.col("HAS_PASS"))
        .then(pl.lit(ChecklistStyle.FULL.value))
        .when(pl.col("HAS_PASS").not_())
        .then(pl.lit(ChecklistStyle.NOT_MET_ONLY.value))
        .when(pl.col("SITE_HAS_NMO") & pl.col("SITE_HAS_FULL").not_())
        .then(pl.lit(ChecklistStyle.NOT_MET_ONLY.value))
        .otherwise(pl.lit(ChecklistStyle.MISSING.value))
        .alias("STYLE"),
    )


def _site_outcome() -> pl.Expr:
    inclusion = pl.col("CATEGORY") == Category.INCLUSION
    recorded = pl.col("SITE_SOURCE") == SiteSource.RECORDED.value
    answer = pl.col("SITE_ANSWER")
    return (
        pl.when(recorded & (answer == "Y"))
        .then(pl.when(inclusion).then(pl.lit(Outcome.MET)).otherwise(pl.lit(Outcome.APPLIES)))
        .when(recorded & (answer == "N"))
        .then(pl.when(inclusion).then(pl.lit(Outcome.NOT_MET)).otherwise(pl.lit(Outcome.NOT_APPLICABLE)))
        .when(recorded)
        .then(pl.lit(UNKNOWN))
        .when(pl.col("SITE_SOURCE") == SiteSource.IMPLIED.value)
        .then(pl.when(inclusion).then(pl.lit(Outcome.MET)).otherwise(pl.lit(Outcome.NOT_APPLICABLE)))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("SITE_OUTCOME")
    )


def _site_text() -> pl.Expr:
    """Short form for SITE_ASSESSMENT: `IN10=Y`, `IN10=Y (implied)`, `IN10 not recorded`."""
    criterion = pl.col("CRITERION_ID")
    implied = pl.when(pl.col("CATEGORY") == Category.INCLUSION).then(pl.lit("Y")).otherwise(pl.lit("N"))
    return (
        pl.when(pl.col("SITE_SOURCE") == SiteSource.RECORDED.value)
        .then(pl.format("{}={}", criterion, pl.col("SITE_ANSWER")))
        .when(pl.col("SITE_SOURCE") == SiteSource.IMPLIED.value)
        .then(pl.format("{}={} (implied)", criterion, implied))
        .otherwise(pl.format("{} not recorded", criterion))
        .alias("SITE_TEXT")
    )


def _site_phrase() -> pl.Expr:
    """Words for EVIDENCE: `IN10 as met (IN10=Y)`, `no IE answer for IN10`, ..."""
    criterion = pl.col("CRITERION_ID")
    words = (
        pl.when(pl.col("SITE_OUTCOME") == Outcome.MET)
        .then(pl.lit("met"))
        .when(pl.col("SITE_OUTCOME") == Outcome.NOT_MET)
        .then(pl.lit("not met"))
        .when(pl.col("SITE_OUTCOME") == Outcome.APPLIES)
        .then(pl.lit("applying"))
        .when(pl.col("SITE_OUTCOME") == Outcome.NOT_APPLICABLE)
        .then(pl.lit("not applying"))
        .otherwise(pl.lit("unknown"))
    )
    return (
        pl.when(pl.col("SITE_SOURCE") == SiteSource.RECORDED.value)
        .then(pl.format("{} as {} ({}={})", criterion, words, criterion, pl.col("SITE_ANSWER")))
        .when(pl.col("SITE_SOURCE") == SiteSource.IMPLIED.value)
        .then(pl.format("{} as {} (no IE row in a not-met-only checklist)", criterion, words))
        .otherwise(pl.format("no IE answer for {}", criterion))
        .alias("SITE_PHRASE")
    )


def _grid(subjects: pl.DataFrame, criteria: pl.DataFrame, evaluated: pl.DataFrame | None) -> pl.DataFrame:
    """Subject x criterion pairs to fill: the criteria evaluated for each subject (a subject screened
    under another protocol version has that version's criteria), and the protocol's criteria for a
    subject that has no evaluated criterion at all."""
    everyone = subjects.select("USUBJID").join(criteria.select("CRITERION_ID", "CATEGORY"), how="cross")
    if evaluated is None:
        return everyone
    own = evaluated.select(
        pl.col("USUBJID"), pl.col("CRITERION_ID"), pl.col("CATEGORY").str.to_uppercase()
    ).unique(subset=["USUBJID", "CRITERION_ID"], keep="first")
    own = own.join(subjects.select("USUBJID"), on="USUBJID", how="semi")
    return pl.concat([own, everyone.join(own, on="USUBJID", how="anti")]).sort("USUBJID", "CRITERION_ID")


def site_checklist(ie: pl.DataFrame | None, subjects: pl.DataFrame, protocol: Protocol,
                   evaluated: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every subject x criterion with the site's answer (CHECKLIST_COLUMNS).

    `subjects` needs SITEID and USUBJID (one row per screened subject); `ie` is the IE domain as
    delivered (all columns text) or None when no site delivered IE; `evaluated` (optional) is the
    EligibilityResult.criteria table (USUBJID, CRITERION_ID, CATEGORY), whose criteria win over the
    protocol's for the subjects it covers.
    """
    criteria = criteria_frame(protocol)
    grid = _grid(subjects, criteria, evaluated)
    known = grid.select("CRITERION_ID", "CATEGORY").unique(subset="CRITERION_ID", keep="first")
    answers = _ie_answers(ie, known)
    styles = _styles(answers, subjects, known)
    return (
        grid.join(criteria.select("CRITERION_ID", "ORDER"), on="CRITERION_ID", how="left")
        .with_columns(pl.col("ORDER").fill_null(len(criteria)))
        .join(answers, on=["USUBJID", "CRITERION_ID"], how="left")
        .join(styles, on="USUBJID", how="left")
        .with_columns(
            pl.when(pl.col("SITE_ANSWER").is_not_null())
            .then(pl.lit(SiteSource.RECORDED.value))
            .when(pl.col("STYLE") == ChecklistStyle.NOT_MET_ONLY.value)
            .then(pl.lit(SiteSource.IMPLIED.value))
            .otherwise(pl.lit(SiteSource.ABSENT.value))
            .alias("SITE_SOURCE")
        )
        .with_columns(_site_outcome())
        .with_columns(_site_text(), _site_phrase())
        .select(CHECKLIST_COLUMNS)  # before the sort: only the published columns are reordered
        .sort("USUBJID", "ORDER", "CRITERION_ID")
    )
