"""What a draft amendment would change: the delivered data judged by the protocol in force and by the draft.

The question behind every amendment is "how many screen failures would this change have saved, and
where?", and its twin "which enrolled subjects would it make ineligible?". The audit answers it from the
data it already has: every subject is evaluated twice, by the version in force at its consent (the
night's evaluation) and by the draft (every subject, whatever its consent date: what if this text had
applied to everyone screened so far), and the two verdicts are compared per subject and criterion:

- WOULD_BE_ELIGIBLE: a screen failure, not recomputed eligible now, eligible under the draft;
- WOULD_BE_INELIGIBLE: an enrolled subject, not recomputed ineligible now, ineligible under the draft;
- NO_LONGER_INELIGIBLE: an enrolled subject ineligible now (a deviation), not under the draft;
- NEWLY_UNVERIFIABLE: decided now, undecidable under the draft;
- OTHER: any other change of the verdict (subjects still in screening...).

Newly UNVERIFIABLE components are listed apart with their reason: data the amendment needs that the
sites do not collect (a new test: MISSING). Everything is joins over all subjects at once.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from checks.comparison.compare import recomputed
from contracts.enums import Outcome, Recomputed, SiteDecision, WhatIfChange
from contracts.protocol import Protocol
from contracts.records import EligibilityResult, WhatIfResult

_KEYS = ["STUDYID", "SITEID", "USUBJID"]
#: the outcome shown for a criterion one side does not have (it counts as passing)
ABSENT_NOW = "(not in force)"
ABSENT_DRAFT = "(not in the draft)"


def _verdicts(now: EligibilityResult, draft: EligibilityResult) -> pl.DataFrame:
    """One row per subject: SITE_DECISION, TIVERS (now), RECOMPUTED_NOW, RECOMPUTED_DRAFT."""
    subjects = now.reference.select(*_KEYS, pl.col("SITE_DECISION").fill_null(SiteDecision.IN_SCREENING.value),
                                    "TIVERS")
    before = recomputed(subjects, now.criteria.select("USUBJID", "OUTCOME"))
    after = recomputed(subjects.select("USUBJID"), draft.criteria.select("USUBJID", "OUTCOME"))
    return before.rename({"RECOMPUTED": "RECOMPUTED_NOW"}).join(
        after.rename({"RECOMPUTED": "RECOMPUTED_DRAFT"}), on="USUBJID", how="left")


def _change() -> pl.Expr:
    decision, now, draft = pl.col("SITE_DECISION"), pl.col("RECOMPUTED_NOW"), pl.col("RECOMPUTED_DRAFT")
    eligible, ineligible = Recomputed.ELIGIBLE.value, Recomputed.INELIGIBLE.value
    return (
        pl.when(now == draft).then(None)
        .when((decision == SiteDecision.SCREEN_FAILURE.value) & (draft == eligible))
        .then(pl.lit(WhatIfChange.WOULD_BE_ELIGIBLE.value))
        .when((decision == SiteDecision.ENROLLED.value) & (draft == ineligible))
        .then(pl.lit(WhatIfChange.WOULD_BE_INELIGIBLE.value))
        .when((decision == SiteDecision.ENROLLED.value) & (now == ineligible))
        .then(pl.lit(WhatIfChange.NO_LONGER_INELIGIBLE.value))
        .when(draft == Recomputed.UNVERIFIABLE.value).then(pl.lit(WhatIfChange.NEWLY_UNVERIFIABLE.value))
        .otherwise(pl.lit(WhatIfChange.OTHER.value))
    ).alias("CHANGE")


def _criterion_changes(now: EligibilityResult, draft: EligibilityResult, changed: pl.DataFrame) -> pl.DataFrame:
    """Subject x criterion whose outcome differs (a criterion one side does not have reads as passing)."""
    def outcomes(result: EligibilityResult, name: str) -> pl.DataFrame:
        return result.criteria.select("USUBJID", "CRITERION_ID", "CATEGORY", pl.col("OUTCOME").alias(name))

    passing = (pl.when(pl.col("CATEGORY") == "INCLUSION").then(pl.lit(Outcome.MET.value))
               .otherwise(pl.lit(Outcome.NOT_APPLICABLE.value)))
    both = (outcomes(now, "OUTCOME_NOW")
            .join(outcomes(draft, "OUTCOME_DRAFT"), on=["USUBJID", "CRITERION_ID"], how="full", coalesce=True)
            .with_columns(pl.coalesce("CATEGORY", "CATEGORY_right").alias("CATEGORY"))
            .filter(pl.col("OUTCOME_NOW").fill_null(passing) != pl.col("OUTCOME_DRAFT").fill_null(passing))
            .with_columns(pl.col("OUTCOME_NOW").fill_null(pl.lit(ABSENT_NOW)),
                          pl.col("OUTCOME_DRAFT").fill_null(pl.lit(ABSENT_DRAFT))))
    return (changed.select(*_KEYS, "SITE_DECISION", "CHANGE")
            .join(both.select("USUBJID", "CRITERION_ID", "OUTCOME_NOW", "OUTCOME_DRAFT"), on="USUBJID")
            .sort("SITEID", "USUBJID", "CRITERION_ID", nulls_last=True))


def _newly_unverifiable(now: EligibilityResult, draft: EligibilityResult, verdicts: pl.DataFrame) -> pl.DataFrame:
    """Subject x component UNVERIFIABLE under the draft, decided (or absent) now: what the draft needs."""
    unverifiable = Outcome.UNVERIFIABLE.value
    before = now.eligibility.select("USUBJID", "CHECK_ID", pl.col("OUTCOME").alias("_NOW"))
    return (
        draft.eligibility.filter(pl.col("OUTCOME") == unverifiable)
        .select("USUBJID", "CRITERION_ID", "CHECK_ID", "REASON_CODE", "REASON")
        .join(before, on=["USUBJID", "CHECK_ID"], how="left")
        .filter(pl.col("_NOW").is_null() | (pl.col("_NOW") != unverifiable))
        .join(verdicts.select(*_KEYS, "SITE_DECISION"), on="USUBJID")
        .select(*_KEYS, "SITE_DECISION", "CRITERION_ID", "CHECK_ID",
                pl.col("_NOW").fill_null(pl.lit(ABSENT_NOW)).alias("OUTCOME_NOW"),
                "REASON_CODE", "REASON")
        .sort("SITEID", "USUBJID", "CHECK_ID", nulls_last=True)
    )


def _by_site(criteria: pl.DataFrame, unverifiable: pl.DataFrame) -> pl.DataFrame:
    """Per criterion x site: subjects of each change, and subjects with a newly undecidable component."""
    columns = [c.value for c in WhatIfChange]
    changed = criteria.group_by("CRITERION_ID", "SITEID").agg(
        *[(pl.col("CHANGE") == c).sum().cast(pl.Int64).alias(c) for c in columns])
    undecided = (unverifiable.group_by("CRITERION_ID", "SITEID")
                 .agg(pl.col("USUBJID").n_unique().cast(pl.Int64).alias("N_UNVERIFIABLE")))
    return (changed.join(undecided, on=["CRITERION_ID", "SITEID"], how="full", coalesce=True)
            .with_columns([pl.col(c).fill_null(0) for c in [*columns, "N_UNVERIFIABLE"]])
            .select("CRITERION_ID", "SITEID", *columns, "N_UNVERIFIABLE")
            .sort("CRITERION_ID", "SITEID", nulls_last=True))


def same_version_warning(draft: Protocol, in_force: Protocol) -> tuple[str, ...]:
    """A warning when the draft carries a version the study is already audited with: its what-if then
    compares that version with itself (no change at all when it is the very file), which reads as "the
    amendment changes nothing" unless it is said."""
    versions = [edition.tivers for edition in in_force.editions()]
    if draft.tivers not in versions:
        return ()
    return (f"the draft's version {draft.tivers} is a version {in_force.id} is already audited with "
            f"({', '.join(versions)}): the what-if compares it with itself, so an unchanged file shows no "
            "change; give the amendment a version of its own",)


def whatif(now: EligibilityResult, draft: EligibilityResult, *, study: str, as_of: date, protocol: Protocol,
           draft_protocol: Protocol) -> WhatIfResult:
    """Compare the night's evaluation (`now`, each subject by its version) with the draft's (`draft`, every
    subject by the draft alone) over the same delivered data."""
    verdicts = _verdicts(now, draft).with_columns(_change())
    criteria = _criterion_changes(now, draft, verdicts.filter(pl.col("CHANGE").is_not_null()))
    behind = (criteria.sort("USUBJID", "CRITERION_ID").group_by("USUBJID", maintain_order=True)
              .agg(pl.format("{}: {} -> {}", "CRITERION_ID", "OUTCOME_NOW", "OUTCOME_DRAFT").str.join("; ")
                   .alias("CRITERIA")))
    changes = (verdicts.filter(pl.col("CHANGE").is_not_null()).join(behind, on="USUBJID", how="left")
               .select(*_KEYS, "SITE_DECISION", "TIVERS", "RECOMPUTED_NOW", "RECOMPUTED_DRAFT", "CHANGE", "CRITERIA")
               .sort("SITEID", "USUBJID", nulls_last=True))
    unverifiable = _newly_unverifiable(now, draft, verdicts)
    return WhatIfResult(
        study=study, as_of=as_of, baseline=f"{protocol.id} {protocol.versions_text()}",
        draft=f"{draft_protocol.id} {draft_protocol.tivers}" + (" (draft)" if draft_protocol.draft else ""),
        subjects=verdicts.height, changes=changes, criteria=criteria, unverifiable=unverifiable,
        by_site=_by_site(criteria, unverifiable), warnings=same_version_warning(draft_protocol, protocol),
    )
