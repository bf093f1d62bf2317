"""Compare the recomputed eligibility with the site's checklist (IE) and decision (DS), and classify
every difference (SZ003 criteria spec, "Discrepancy classes").

One row per finding, all classes in one table (contracts.DISCREPANCIES):

* INELIGIBLE_ENROLLED - enrolled subject x component NOT_MET / APPLIES (one row per component, so that
  each maps to one SDTM DV record and quotes the value that failed).
* IE_MISMATCH - subject x criterion where the site's decided answer and the decided recomputed
  outcome differ (graded apart when it hides an ineligible enrolment).
* UNVERIFIABLE - enrolled subject x component UNVERIFIABLE.
* SCREEN_FAIL_UNSUPPORTED - screen failure whose recorded failing criteria all recompute as met /
  not applying (one row per subject, CHECK_ID = those criteria).
* PROCESS - PC01..PC06 (checks.comparison.process; severity from the process-check file).

Severities are the policy's (contracts/policy.yaml, or the study's own file): defaults IMPORTANT for
INELIGIBLE_ENROLLED and for an IE_MISMATCH hiding an ineligible enrolment, QUERY otherwise.

Everything is joins and expressions over all subjects at once; the output is sorted by
(SITEID, USUBJID, CHECK_ID, CLASS) so the same inputs always give the same bytes.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from checks.comparison import evidence
from checks.comparison.identity import with_identity
from checks.comparison.process import OWN_COLUMNS, ProcessCheck, ProcessContext, run_process_checks
from checks.comparison.site_checklist import SiteSource, site_checklist
from checks.evaluation.exclusions import drop_rejected, normalise
from contracts import DISCREPANCIES, SUBJECTS, check_table
from contracts.enums import DiscrepancyClass, Outcome, Recomputed, SiteDecision
from contracts.policy import HIDES_INELIGIBLE_ENROLMENT, Policy, load_policy
from contracts.protocol import Protocol
from contracts.records import Comparison, EligibilityResult
from contracts.tables import IDENTITY
from contracts.units import UnitCatalog
from core.source import SOURCE_COLUMNS, SOURCE_KEY

_FAILED = ("NOT_MET", "APPLIES")
_PASSED = ("MET", "NOT_APPLICABLE")
_DECIDED = _FAILED + _PASSED
_ENROLLED = SiteDecision.ENROLLED.value
_SCREEN_FAILURE = SiteDecision.SCREEN_FAILURE.value
_FINDING = ["USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "SITE_ASSESSMENT", "RECOMPUTED", "EVIDENCE"]
_SORT = ["SITEID", "USUBJID", "CHECK_ID", "CLASS", "EVIDENCE"]


def _subjects(reference: pl.DataFrame) -> pl.DataFrame:
    """One row per subject: STUDYID, SITEID, USUBJID, SITE_DECISION, TREATMENT_START, TIVERS."""
    columns = ["STUDYID", "SITEID", "USUBJID", "SITE_DECISION", "TREATMENT_START", "TIVERS"]
    return (
        reference.select(
            [pl.col(c).cast(pl.String) if c in reference.columns else pl.lit(None, pl.String).alias(c)
             for c in columns]
        )
        .with_columns(pl.col("SITE_DECISION").fill_null(SiteDecision.IN_SCREENING.value))
        .sort("SITEID", "USUBJID", "STUDYID", nulls_last=True)
        .unique(subset="USUBJID", keep="first", maintain_order=True)
    )


def _usable(domains: dict[str, pl.DataFrame], exclusions: pl.DataFrame | None,
            rejected: pl.DataFrame | None) -> dict[str, pl.DataFrame]:
    """The domains as evaluation read them: rows validation rejected dropped, and every value it
    excluded (contracts.EXCLUSIONS: SOURCE x VARIABLE) blanked, so that a process check never
    decides on a value the eligibility was not allowed to use. One pass per excluded column."""
    excluded, dropped = normalise(exclusions), normalise(rejected)
    usable = {}
    for name, frame in domains.items():
        frame = drop_rejected(frame, dropped)
        rows = excluded.filter(pl.col("DOMAIN") == name.upper())
        if rows.height and SOURCE_KEY in frame.columns:
            for variable in sorted(set(rows["VARIABLE"].drop_nulls().to_list()) & set(frame.columns)):
                hit = (rows.filter(pl.col("VARIABLE") == variable).select(*SOURCE_COLUMNS, pl.lit(True).alias("_HIT"))
                       .unique())
                frame = frame.join(hit, on=list(SOURCE_COLUMNS), how="left", maintain_order="left").with_columns(
                    pl.when(pl.col("_HIT")).then(None).otherwise(pl.col(variable)).alias(variable)
                ).drop("_HIT")
        usable[name.lower()] = frame
    return usable


def _comparators(protocol: Protocol) -> pl.DataFrame:
    """TIVERS x CHECK_ID -> OP for components whose rule is one comparison leaf (`{kind: threshold, op:
    ">="}`), so that evidence reads `limit >= 60 10^9/L` rather than a bare number. Per version (an
    amendment may change the comparison); a subject whose consent spans versions (TIVERS `1.0 or 2.0`)
    gets the comparison only when every version has the same. Components built from several leaves keep
    the evaluation's own LIMIT text."""
    rows: list[tuple[str, str, str]] = []
    for edition in protocol.editions():
        for _, component in edition.components():
            op = component.rule.params.get("op")
            if isinstance(op, str) and not component.rule.children:
                rows.append((edition.tivers, component.id, op))
    per_version = pl.DataFrame(rows, schema={"TIVERS": pl.String, "CHECK_ID": pl.String, "OP": pl.String},
                               orient="row").unique(subset=["TIVERS", "CHECK_ID"], keep="first", maintain_order=True)
    agreed = (per_version.group_by("CHECK_ID").agg(pl.col("OP").n_unique().alias("_N"), pl.col("OP").first())
              .filter(pl.col("_N") == 1).drop("_N"))
    return pl.concat([per_version, agreed.select(pl.lit(None, pl.String).alias("TIVERS"), "CHECK_ID", "OP")])


def _components(eligibility: pl.DataFrame, protocol: Protocol) -> pl.DataFrame:
    """The eligibility rows with the columns compare reads (REASON_CODE, DELIVERED, SOURCE, TIVERS optional); LIMIT
    carries the comparator when the protocol gives one (evidence text only: the eligibility table is untouched)."""
    frame = eligibility
    frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in ("REASON_CODE", "DELIVERED", "SOURCE")
                               if c not in frame.columns)
    comparators = _comparators(protocol)
    own, agreed = comparators.filter(pl.col("TIVERS").is_not_null()), comparators.filter(pl.col("TIVERS").is_null())
    # the comparator looked up per row rather than joined: a join copied every column of the ~500k rows
    version = pl.col("TIVERS") if "TIVERS" in frame.columns else pl.lit(protocol.tivers)
    op = pl.concat_str([version, pl.lit("\x1f"), pl.col("CHECK_ID")]).replace_strict(
        own.select(pl.concat_str([pl.col("TIVERS"), pl.lit("\x1f"), pl.col("CHECK_ID")]))["TIVERS"], own["OP"],
        default=None, return_dtype=pl.String,
    ).fill_null(pl.col("CHECK_ID").replace_strict(agreed["CHECK_ID"], agreed["OP"], default=None,
                                                  return_dtype=pl.String))
    # a subject whose consent spans versions with different limits has them per version (`1.0: 60; 2.0: 50`)
    per_version = pl.col("LIMIT").str.contains(r"^[^ :;]+: ").fill_null(False)
    return frame.select(
        "USUBJID", "CRITERION_ID", "CHECK_ID", "OUTCOME", "VALUE", "UNIT", "DELIVERED",
        pl.when(op.is_not_null() & pl.col("LIMIT").is_not_null() & ~per_version)
        .then(pl.format("{} {}", op, pl.col("LIMIT")))
        .otherwise(pl.col("LIMIT"))
        .alias("LIMIT"),
        "DTC", "REASON", "REASON_CODE", "SOURCE",  # SOURCE: the records PC03 names
    )


def _site_columns(checklist: pl.DataFrame) -> pl.DataFrame:
    return checklist.select("USUBJID", "CRITERION_ID", "SITE_TEXT", "SITE_PHRASE", "SITE_OUTCOME",
                            "SITE_SOURCE")


def _site_assessment() -> pl.Expr:
    return pl.format("{}; {}", pl.col("SITE_TEXT"), pl.col("SITE_DECISION")).alias("SITE_ASSESSMENT")


def _component_findings(components: pl.DataFrame, subjects: pl.DataFrame,
                        checklist: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """INELIGIBLE_ENROLLED and UNVERIFIABLE: enrolled subject x component."""
    enrolled = (  # only the components these two classes report (a small part of all subject x component rows)
        components.filter(pl.col("OUTCOME").is_in([*_FAILED, Outcome.UNVERIFIABLE]))
        .join(subjects.filter(pl.col("SITE_DECISION") == _ENROLLED), on="USUBJID")
        .join(_site_columns(checklist), on=["USUBJID", "CRITERION_ID"], how="left")
        .with_columns(
            pl.col("SITE_TEXT").fill_null(pl.format("{} not recorded", pl.col("CRITERION_ID"))),
            pl.col("SITE_PHRASE").fill_null(pl.format("no IE answer for {}", pl.col("CRITERION_ID"))),
        )
    )
    ineligible = enrolled.filter(pl.col("OUTCOME").is_in(_FAILED)).select(
        "USUBJID",
        "CHECK_ID",
        pl.lit(DiscrepancyClass.INELIGIBLE_ENROLLED.value).alias("CLASS"),
        pl.lit(policy.severity(DiscrepancyClass.INELIGIBLE_ENROLLED)).alias("SEVERITY"),
        _site_assessment(),
        pl.col("OUTCOME").alias("RECOMPUTED"),
        evidence.ineligible_enrolled(),
    )
    unverifiable = enrolled.filter(pl.col("OUTCOME") == Outcome.UNVERIFIABLE).select(
        "USUBJID",
        "CHECK_ID",
        pl.lit(DiscrepancyClass.UNVERIFIABLE.value).alias("CLASS"),
        pl.lit(policy.severity(DiscrepancyClass.UNVERIFIABLE)).alias("SEVERITY"),
        _site_assessment(),
        pl.col("OUTCOME").alias("RECOMPUTED"),
        evidence.unverifiable(),
    )
    return pl.concat([ineligible, unverifiable])


def _criterion_frame(criteria: pl.DataFrame, subjects: pl.DataFrame, checklist: pl.DataFrame) -> pl.DataFrame:
    """Subject x criterion with the site's answer and the recomputed outcome."""
    return (
        criteria.select("USUBJID", "CRITERION_ID", "OUTCOME")
        .join(subjects.select("USUBJID", "SITE_DECISION"), on="USUBJID")
        .join(_site_columns(checklist), on=["USUBJID", "CRITERION_ID"], how="left")
    )


def _disagreements(frame: pl.DataFrame, components: pl.DataFrame) -> pl.DataFrame:
    """The subject x criterion rows where both sides are decided and differ, with DETAILS: the facts
    of the components that decide the recomputed outcome (built only for these rows).

    An implied answer (absent from a not-met-only checklist) counts only once the site has decided:
    before that, absent means "not assessed yet"."""
    decided_subject = pl.col("SITE_DECISION").is_in([_ENROLLED, _SCREEN_FAILURE])
    site_counts = (pl.col("SITE_SOURCE") == SiteSource.RECORDED.value) | decided_subject
    differing = frame.filter(
        pl.col("SITE_OUTCOME").is_in(_DECIDED)
        & pl.col("OUTCOME").is_in(_DECIDED)
        & (pl.col("SITE_OUTCOME") != pl.col("OUTCOME"))
        & site_counts
    )
    details = (
        components.join(
            differing.select("USUBJID", "CRITERION_ID", pl.col("OUTCOME").alias("CRITERION_OUTCOME")),
            on=["USUBJID", "CRITERION_ID"],
        )
        .filter(pl.col("OUTCOME") == pl.col("CRITERION_OUTCOME"))
        .with_columns(evidence.component_fact().alias("FACT"))
        .group_by("USUBJID", "CRITERION_ID")
        .agg(pl.col("FACT").sort_by("CHECK_ID").str.join(" and ").alias("DETAILS"))
    )
    return differing.join(details, on=["USUBJID", "CRITERION_ID"], how="left").with_columns(
        pl.col("DETAILS").fill_null("no component detail")
    )


def _ie_mismatch(differing: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """IE_MISMATCH rows; graded apart (IMPORTANT by default) when the checklist hides an ineligible enrolment."""
    hides_ineligible = (pl.col("SITE_DECISION") == _ENROLLED) & pl.col("OUTCOME").is_in(_FAILED)
    return differing.select(
        "USUBJID",
        pl.col("CRITERION_ID").alias("CHECK_ID"),
        pl.lit(DiscrepancyClass.IE_MISMATCH.value).alias("CLASS"),
        pl.when(hides_ineligible)
        .then(pl.lit(policy.severity(DiscrepancyClass.IE_MISMATCH, HIDES_INELIGIBLE_ENROLMENT)))
        .otherwise(pl.lit(policy.severity(DiscrepancyClass.IE_MISMATCH)))
        .alias("SEVERITY"),
        _site_assessment(),
        pl.col("OUTCOME").alias("RECOMPUTED"),
        evidence.ie_mismatch(),
    )


def _screen_fail_unsupported(frame: pl.DataFrame, differing: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Screen failures whose explicitly recorded failing criteria all recompute as passed.

    Every such criterion is then also a disagreement, so the evidence reuses its DETAILS."""
    recorded_failure = (
        (pl.col("SITE_DECISION") == _SCREEN_FAILURE)
        & (pl.col("SITE_SOURCE") == SiteSource.RECORDED.value)
        & pl.col("SITE_OUTCOME").is_in(_FAILED)
    )
    unsupported = (
        frame.filter(recorded_failure)
        .group_by("USUBJID")
        .agg(pl.col("OUTCOME").is_in(_PASSED).all().alias("ALL_PASSED"))
        .filter(pl.col("ALL_PASSED"))
    )
    per_subject = (
        differing.filter(recorded_failure)
        .join(unsupported, on="USUBJID", how="semi")
        .sort("USUBJID", "CRITERION_ID")
        .group_by("USUBJID", maintain_order=True)
        .agg(
            pl.col("CRITERION_ID").str.join(",").alias("CHECK_ID"),
            pl.col("SITE_TEXT").str.join(" and ").alias("RECORDED_FAILURES"),
            evidence.criterion_summary().str.join("; ").alias("SUMMARIES"),
            pl.format("{}={}", pl.col("CRITERION_ID"), pl.col("OUTCOME")).str.join("; ").alias("RECOMPUTED"),
        )
    )
    return per_subject.select(
        "USUBJID",
        "CHECK_ID",
        pl.lit(DiscrepancyClass.SCREEN_FAIL_UNSUPPORTED.value).alias("CLASS"),
        pl.lit(policy.severity(DiscrepancyClass.SCREEN_FAIL_UNSUPPORTED)).alias("SEVERITY"),
        pl.format("{}; {}", pl.col("RECORDED_FAILURES"), pl.lit(_SCREEN_FAILURE)).alias("SITE_ASSESSMENT"),
        "RECOMPUTED",
        evidence.screen_fail_unsupported(),
    )


def recomputed(subjects: pl.DataFrame, criteria: pl.DataFrame) -> pl.DataFrame:
    """`subjects` with RECOMPUTED from their criteria: INELIGIBLE when any inclusion NOT_MET / exclusion
    APPLIES, else UNVERIFIABLE when any criterion is, else ELIGIBLE. A subject without any criterion row
    was not evaluated at all, so it is UNVERIFIABLE, never ELIGIBLE. (Also what-if's verdict.)"""
    verdict = criteria.group_by("USUBJID").agg(
        pl.col("OUTCOME").is_in(_FAILED).any().alias("ANY_FAILED"),
        (pl.col("OUTCOME") == Outcome.UNVERIFIABLE).any().alias("ANY_UNVERIFIABLE"),
    )
    return subjects.join(verdict, on="USUBJID", how="left").with_columns(
        pl.when(pl.col("ANY_FAILED"))
        .then(pl.lit(Recomputed.INELIGIBLE.value))
        .when(pl.col("ANY_UNVERIFIABLE") | pl.col("ANY_FAILED").is_null())
        .then(pl.lit(Recomputed.UNVERIFIABLE.value))
        .otherwise(pl.lit(Recomputed.ELIGIBLE.value))
        .alias("RECOMPUTED"),
    ).drop("ANY_FAILED", "ANY_UNVERIFIABLE")


def _subject_table(criteria: pl.DataFrame, subjects: pl.DataFrame, findings: pl.DataFrame) -> pl.DataFrame:
    """contracts.SUBJECTS: each subject's RECOMPUTED verdict (`recomputed`) and its number of findings."""
    counts = findings.group_by("USUBJID").agg(pl.len().cast(pl.Int64).alias("N_DISCREPANCIES"))
    table = (
        recomputed(subjects, criteria)
        .join(counts, on="USUBJID", how="left")
        .with_columns(pl.col("N_DISCREPANCIES").fill_null(0))
        .sort("SITEID", "USUBJID")
        .select(list(SUBJECTS))
    )
    return check_table(table, SUBJECTS, "subjects")


def compare(
    result: EligibilityResult,
    domains: dict[str, pl.DataFrame],
    protocol: Protocol,
    as_of: date,
    process_checks: tuple[ProcessCheck, ...] | None = None,
    *,
    exclusions: pl.DataFrame | None = None,
    rejected: pl.DataFrame | None = None,
    policy: Policy | None = None,
    catalog: UnitCatalog | None = None,
    unread: pl.DataFrame | None = None,
) -> Comparison:
    """Classify every difference between the recomputed eligibility and the site's assessment.

    `result` is checks.evaluate()'s EligibilityResult (eligibility, reference, criteria); `domains`
    the delivered frames (IE and DM are read here, LB/VS/FA/TR by the process checks); `as_of` is
    the audit date (treatment start of subjects still in screening is already in the reference).
    `process_checks` overrides the bundled process_checks.yaml (a study's own file, tests), `policy` the
    bundled contracts/policy.yaml (severities) and `catalog` the bundled unit catalog (PC06 converts the
    site's number with it). `exclusions` / `rejected` are validation's (ValidationResult): pass the same
    tables as to evaluate() so that the site's IE, DM and results are read exactly as the evaluation
    read them, and `unread` the files ingestion rejected as a whole (ingestion.unread.unread_in), as to evaluate():
    a process check does not report the absence of records from a file nobody read.
    """
    policy = policy or load_policy()
    del as_of  # the reference dates already carry it; kept for the flow's stable signature
    domains = _usable(domains, exclusions, rejected)
    subjects = _subjects(result.reference)
    components = _components(result.eligibility, protocol)
    evaluated = result.criteria
    criteria = evaluated.select("USUBJID", "CRITERION_ID", "OUTCOME")
    checklist = site_checklist(domains.get("ie"), subjects, protocol,
                               evaluated if "CATEGORY" in evaluated.columns else None)

    per_criterion = _criterion_frame(criteria, subjects, checklist)
    differing = _disagreements(per_criterion, components)
    context = ProcessContext(
        subjects=subjects.select("USUBJID", "SITE_DECISION", "TREATMENT_START", "TIVERS"),
        dm=result.subject_dm,
        derived=result.derived,
        protocol=protocol,
        eligibility=components,
        checklist=checklist,
        domains=domains,
        catalog=catalog,
        unread=(subjects.select("USUBJID", "SITEID").join(unread.select("SITEID", "DOMAIN"), on="SITEID")
                .drop("SITEID") if unread is not None else None),
    )
    findings = pl.concat(
        [
            _component_findings(components, subjects, checklist, policy).select(_FINDING),
            _ie_mismatch(differing, policy).select(_FINDING),
            _screen_fail_unsupported(per_criterion, differing, policy).select(_FINDING),
            run_process_checks(context, process_checks)
            .with_columns(pl.lit(DiscrepancyClass.PROCESS.value).alias("CLASS"))
            .select(*_FINDING, *OWN_COLUMNS),
        ],
        how="diagonal_relaxed",  # a component's findings have no date or record of their own (OWN_COLUMNS null)
    )
    discrepancies = (
        findings.join(subjects.select("STUDYID", "SITEID", "USUBJID"), on="USUBJID")
        .with_columns(
            pl.lit(None, dtype=pl.String).alias("STATUS"),
            pl.lit(None, dtype=pl.String).alias("FIRST_SEEN"),
            pl.lit(None, dtype=pl.Int64).alias("DAYS_OPEN"),
        )
        .sort(_SORT, nulls_last=True)
        .select([c for c in DISCREPANCIES if c not in IDENTITY])
    )
    return Comparison(
        subjects=_subject_table(criteria, subjects, discrepancies),
        # FINDING_ID and EVIDENCE_HASH after the contracted columns (checks.comparison.identity)
        discrepancies=check_table(with_identity(discrepancies, result.eligibility), DISCREPANCIES, "discrepancies"),
        checklist=checklist,
    )
