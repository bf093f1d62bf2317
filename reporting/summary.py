"""Aggregates the report, the workbook and the Prefect artifacts share (per site, per criterion).

All computed with polars group-bys over the full tables; the report then shows these summaries and
the top of each listing, so it stays readable at 10,000 subjects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from contracts import is_open
from contracts.enums import DiscrepancyClass, FindingStatus, Recomputed, Severity, SiteDecision
from contracts.records import RunOutputs
from ingestion.codes import without_notes
from reporting.dv import confirmed_not_in_data, is_deviation, left_the_data_tonight
from reporting.history import partly_read
from reporting.risk import inputs_table, older_delivery_notes, site_risk

_CRITERION_RANK = {"IN": 0, "EX": 1, "PC": 2}
OUTCOME_ORDER = ["NOT_MET", "APPLIES", "UNVERIFIABLE", "MET", "NOT_APPLICABLE"]


def current(discrepancies: pl.DataFrame) -> pl.DataFrame:
    """Findings present tonight (NEW or OPEN), without the RESOLVED ones."""
    if "STATUS" not in discrepancies.columns:
        return discrepancies
    return discrepancies.filter(is_open())


def important_deviations(discrepancies: pl.DataFrame) -> pl.DataFrame:
    """The important findings present tonight, an ineligible enrolment once (dv.is_deviation): the rows behind
    every count and listing of important deviations, so that they agree with `dv`."""
    return discrepancies.filter(is_deviation(discrepancies))


def _with_deviation(discrepancies: pl.DataFrame) -> pl.DataFrame:
    return discrepancies.with_columns(is_deviation(discrepancies).alias("_DEVIATION"))


def criterion_expr(check: str = "CHECK_ID") -> pl.Expr:
    """The criteria (`[IN10]`) of a check id (`IN10.PLT`; `EX07,IN07` for a screen failure)."""
    return pl.col(check).str.split(",").list.eval(pl.element().str.extract(r"^([^.]+)", 1)).alias("CRITERION")


def criterion_sort_key(criterion: str) -> tuple[int, str]:
    return _CRITERION_RANK.get(criterion[:2], 3), criterion


@dataclass(frozen=True)
class Headline:
    study: str
    as_of: str
    protocol: str
    sites_audited: int
    sites_not_audited: int
    deliveries_rejected_or_incomplete: int  # the deliveries the report's Not audited section lists
    subjects_screened: int
    enrolled: int
    screen_failures: int
    in_screening: int
    ineligible_enrolled: int  # enrolled subjects tonight's recomputation finds ineligible
    # enrolled subjects whose earlier ineligible enrolment is carried open (reporting.history: not evaluated tonight,
    # or not verifiable on tonight's data): dv lists their deviation, tonight's recomputation does not count them
    ineligible_enrolled_carried: int
    # confirmed deviations that tonight's data no longer show, which dv keeps (reporting.dv.confirmed_not_in_data)
    confirmed_not_in_data: int
    confirmed_left_data_tonight: int  # of those, the ones the night before still found in its data
    important: int
    query_discrepancies: int  # open discrepancies of QUERY severity (not the site queries, one per problem)
    new: int
    resolved: int
    data_findings: int
    new_data_findings: int  # data-quality findings first reported tonight (validation FIRST_SEEN = as-of date)
    resolved_data_findings: int  # earlier data-quality findings gone tonight (RunOutputs.validation_resolved)
    balanced: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _new_data_findings(outputs: RunOutputs) -> int:
    """Validation findings first reported tonight; all of them when the table has no history (FIRST_SEEN)."""
    validation = without_notes(outputs.validation)  # a note (a manifest setting ignored) is no problem, and no news
    if "FIRST_SEEN" not in validation.columns:
        return validation.height
    return validation.filter(pl.col("FIRST_SEEN").cast(pl.String) == outputs.as_of.isoformat()).height


def _carried_ineligible_enrolments(present: pl.DataFrame, counted: pl.Series) -> int:
    """Subjects with an ineligible enrolment carried open from an earlier night (CARRIED) whom tonight's
    recomputation does not count (not evaluated tonight, or not verifiable on tonight's data): without them the
    headline was one below dv's count."""
    if "CARRIED" not in present.columns:
        return 0
    carried = present.filter(pl.col("CARRIED").is_not_null()
                             & (pl.col("CLASS") == DiscrepancyClass.INELIGIBLE_ENROLLED)
                             & ~pl.col("USUBJID").is_in(counted.implode()))
    return carried["USUBJID"].n_unique()


def headline(outputs: RunOutputs) -> Headline:
    subjects, disc = outputs.subjects, outputs.discrepancies
    now = current(disc)
    manifest = outputs.run_manifest
    decision = pl.col("SITE_DECISION")
    status = pl.col("STATUS") if "STATUS" in disc.columns else pl.lit(None, pl.String)
    sites = set(manifest.get("sites_audited") or subjects["SITEID"].drop_nulls().unique().to_list())
    ineligible = subjects.filter((decision == SiteDecision.ENROLLED) & (pl.col("RECOMPUTED") == Recomputed.INELIGIBLE))
    earlier = outputs.review.confirmed_earlier if outputs.review is not None else None
    return Headline(
        study=outputs.study,
        as_of=outputs.as_of.isoformat(),
        protocol=f"{outputs.protocol_id} {outputs.protocol_version}".strip(),
        sites_audited=len(sites),
        sites_not_audited=len(manifest.get("sites_not_audited") or []),
        # not the routine ones (superseded by a newer delivery, or made after the as-of date): the report lists
        # these, and a count that included the routine ones disagreed with it
        deliveries_rejected_or_incomplete=sum(d.get("status") in ("REJECTED", "INCOMPLETE")
                                              for d in manifest.get("deliveries_not_used") or []),
        subjects_screened=subjects.height,
        enrolled=subjects.filter(decision == SiteDecision.ENROLLED).height,
        screen_failures=subjects.filter(decision == SiteDecision.SCREEN_FAILURE).height,
        in_screening=subjects.filter(decision == SiteDecision.IN_SCREENING).height,
        ineligible_enrolled=ineligible.height,
        ineligible_enrolled_carried=_carried_ineligible_enrolments(now, ineligible["USUBJID"]),
        confirmed_not_in_data=confirmed_not_in_data(disc, earlier).height,
        confirmed_left_data_tonight=left_the_data_tonight(disc, earlier),
        important=important_deviations(disc).height,
        query_discrepancies=now.filter(pl.col("SEVERITY") == Severity.QUERY).height,
        new=disc.filter(status == FindingStatus.NEW).height,
        resolved=disc.filter(status == FindingStatus.RESOLVED).height,
        data_findings=without_notes(outputs.validation).height,
        new_data_findings=_new_data_findings(outputs),
        resolved_data_findings=outputs.validation_resolved.height if outputs.validation_resolved is not None else 0,
        balanced=bool(manifest.get("balanced", True)),
    )


def all_sites(outputs: RunOutputs) -> list[str]:
    """The sites audited tonight (and those with subjects): the sites the risk indicators compare."""
    manifest = outputs.run_manifest
    sites = set(manifest.get("sites_audited") or [])
    sites |= set(outputs.subjects["SITEID"].drop_nulls().to_list())
    return sorted(sites)


def reported_sites(outputs: RunOutputs) -> list[str]:
    """Every site the outputs speak of: audited tonight, with subjects, not audited (the manifest names why), with
    data-quality findings or with open findings (a site not audited tonight whose findings are carried), so that
    the Sites table adds up to the headline. Not the risk indicators' sites: a site not audited has nothing
    audited to rate, and its rejection's findings would move the study rate every other site is compared with."""
    manifest = outputs.run_manifest
    sites = set(all_sites(outputs))
    sites |= {str(item["site"]) for item in manifest.get("sites_not_audited") or [] if item.get("site") is not None}
    sites |= set(outputs.validation["SITEID"].drop_nulls().to_list()) if "SITEID" in outputs.validation.columns \
        else set()
    sites |= set(current(outputs.discrepancies)["SITEID"].drop_nulls().to_list())
    return sorted(sites)


def evaluated_tonight(discrepancies: pl.DataFrame) -> pl.DataFrame:
    """`discrepancies` without the findings carried from an earlier night (reporting.history: CARRIED)."""
    return discrepancies.filter(pl.col("CARRIED").is_null()) if "CARRIED" in discrepancies.columns else discrepancies


def risk_table(outputs: RunOutputs) -> pl.DataFrame:
    tables = {
        "subjects": outputs.subjects,
        # a rate's numerator counts what tonight's audit evaluated, as its denominator does (a carried finding's
        # subject is not among tonight's subjects: a query rate above 1, a review found)
        "discrepancies": evaluated_tonight(current(outputs.discrepancies)),
        "validation": without_notes(outputs.validation),
        "inputs": inputs_table(outputs.run_manifest),
    }
    deliveries = outputs.run_manifest.get("deliveries") or []
    # a site audited on less than all of its newest delivery says so beside its rates (an older delivery, a file
    # rejected: its rates describe what was read)
    notes = {**partly_read(outputs.validation, deliveries), **older_delivery_notes(deliveries)}
    return site_risk(tables, all_sites(outputs), notes)


def site_table(outputs: RunOutputs, risk: pl.DataFrame) -> pl.DataFrame:
    """One row per site the outputs speak of (reported_sites: audited tonight or not): subjects by decision,
    findings by severity and status, data-quality findings, risk flags."""
    subjects = outputs.subjects.group_by("SITEID").agg(
        pl.len().alias("SCREENED"),
        (pl.col("SITE_DECISION") == SiteDecision.ENROLLED).sum().alias("ENROLLED"),
        (pl.col("SITE_DECISION") == SiteDecision.SCREEN_FAILURE).sum().alias("SCREEN_FAILURES"),
        ((pl.col("SITE_DECISION") == SiteDecision.ENROLLED) & (pl.col("RECOMPUTED") == Recomputed.INELIGIBLE)).sum()
        .alias("INELIGIBLE_ENROLLED"),
    )
    disc = _with_deviation(outputs.discrepancies)
    status, live = pl.col("STATUS"), is_open()
    findings = disc.group_by("SITEID").agg(
        pl.col("_DEVIATION").sum().alias("IMPORTANT"),
        ((pl.col("SEVERITY") == Severity.QUERY) & live).sum().alias("QUERIES"),
        (status == FindingStatus.NEW).sum().alias("NEW"),
        (status == FindingStatus.RESOLVED).sum().alias("RESOLVED"),
    )
    data = without_notes(outputs.validation).group_by("SITEID").agg(pl.len().alias("DATA_FINDINGS"))
    flags = risk.group_by("SITEID").agg(
        (pl.col("FLAG") != 0).sum().alias("RISK_SIGNALS"),
        pl.col("INDICATOR").filter(pl.col("FLAG") != 0).sort().str.join(", ").alias("RISK_INDICATORS"),
    )
    base = pl.DataFrame({"SITEID": reported_sites(outputs)}, schema={"SITEID": pl.String})
    counts = ["SCREENED", "ENROLLED", "SCREEN_FAILURES", "INELIGIBLE_ENROLLED", "IMPORTANT", "QUERIES", "NEW",
              "RESOLVED", "DATA_FINDINGS", "RISK_SIGNALS"]
    table = (base.join(subjects, on="SITEID", how="left").join(findings, on="SITEID", how="left")
             .join(data, on="SITEID", how="left").join(flags, on="SITEID", how="left"))
    return table.with_columns([pl.col(c).fill_null(0).cast(pl.Int64) for c in counts]).select(
        ["SITEID", *counts, "RISK_INDICATORS"]).sort("SITEID")


#: the Protocol versions row of the open findings carried from an earlier night whose subject tonight did not evaluate
CARRIED_VERSION = "(carried: not evaluated tonight)"


def version_table(outputs: RunOutputs) -> pl.DataFrame:
    """One row per protocol version subjects are judged by (TIVERS; `1.0 or 2.0` for subjects whose consent
    date cannot tell): subjects screened, enrolled and recomputed ineligible, and the open findings by
    severity. A protocol amendment shows here how many subjects and findings fall under each version."""
    subjects = outputs.subjects
    tivers = pl.col("TIVERS") if "TIVERS" in subjects.columns else pl.lit(None, pl.String)
    per_subject = subjects.select("USUBJID", tivers.alias("TIVERS"), "SITE_DECISION", "RECOMPUTED")
    counts = per_subject.group_by("TIVERS").agg(
        pl.len().alias("SUBJECTS"),
        (pl.col("SITE_DECISION") == SiteDecision.ENROLLED).sum().alias("ENROLLED"),
        ((pl.col("SITE_DECISION") == SiteDecision.ENROLLED) & (pl.col("RECOMPUTED") == Recomputed.INELIGIBLE)).sum()
        .alias("INELIGIBLE_ENROLLED"),
    )
    carried = pl.col("CARRIED").is_not_null() if "CARRIED" in outputs.discrepancies.columns else pl.lit(False)
    findings = (current(_with_deviation(outputs.discrepancies))
                .join(per_subject.select("USUBJID", "TIVERS", pl.lit(True).alias("_TONIGHT")), on="USUBJID",
                      how="left")
                # a carried finding's subject was not evaluated tonight: no version of tonight's to count it under
                .with_columns(pl.when(pl.col("_TONIGHT").is_null() & carried).then(pl.lit(CARRIED_VERSION))
                              .otherwise(pl.col("TIVERS")).alias("TIVERS"))
                .group_by("TIVERS").agg(pl.col("_DEVIATION").sum().alias("IMPORTANT"),
                                        (pl.col("SEVERITY") == Severity.QUERY).sum().alias("QUERIES")))
    columns = ["SUBJECTS", "ENROLLED", "INELIGIBLE_ENROLLED", "IMPORTANT", "QUERIES"]
    return (counts.join(findings, on="TIVERS", how="full", coalesce=True, nulls_equal=True)
            .with_columns([pl.col(c).fill_null(0).cast(pl.Int64) for c in columns])
            .select("TIVERS", *columns).sort("TIVERS", nulls_last=True))


def site_criterion_counts(outputs: RunOutputs) -> pl.DataFrame:
    """Open findings per site x criterion (SITEID, CRITERION, IMPORTANT, QUERY, N)."""
    now = current(_with_deviation(outputs.discrepancies))
    return (now.with_columns(criterion_expr()).explode("CRITERION").group_by("SITEID", "CRITERION").agg(
        pl.col("_DEVIATION").sum().alias("IMPORTANT"),
        (pl.col("SEVERITY") == Severity.QUERY).sum().alias("QUERY"),
        pl.len().alias("N"),
    ).sort("SITEID", "CRITERION"))


def criterion_counts(outputs: RunOutputs) -> pl.DataFrame:
    """Open findings per criterion, most first (CRITERION, IMPORTANT, QUERY, N)."""
    per = site_criterion_counts(outputs)
    return (per.group_by("CRITERION").agg(pl.col("IMPORTANT").sum(), pl.col("QUERY").sum(), pl.col("N").sum())
            .sort(["N", "CRITERION"], descending=[True, False]))


def eligibility_matrix(subjects: pl.DataFrame, eligibility: pl.DataFrame | Iterable[pl.DataFrame]) -> pl.DataFrame:
    """One row per subject, one column per criterion with its recomputed outcome (worst component:
    NOT_MET / APPLIES, then UNVERIFIABLE, then MET / NOT_APPLICABLE).

    `eligibility` may come in parts (reporting.parted), each holding all rows of its subjects: each
    part is reduced to its subjects' rows of the matrix before the next is read.

    One pivot picks the worst outcome: each outcome is replaced by its rank (OUTCOME_ORDER, then any other outcome
    by its text), the pivot keeps each subject's and criterion's smallest rank, and the rank is turned back into
    its outcome (a component without an outcome, which a published table never has, is left out). A group-by
    that sorted each criterion's outcomes, then a pivot, cost a third more on the dirty benchmark's 500,000 rows;
    a pivot of rank-prefixed texts, 1.6 times the CPU of this one."""
    wides, criteria = [], set()
    for part in [eligibility] if isinstance(eligibility, pl.DataFrame) else eligibility:
        present = sorted(part["CRITERION_ID"].drop_nulls().unique().to_list(), key=criterion_sort_key)
        if present and part.height:
            outcomes = set(part["OUTCOME"].drop_nulls().unique().to_list())
            ranked = [o for o in OUTCOME_ORDER if o in outcomes] + sorted(outcomes - set(OUTCOME_ORDER))
            rank = pl.col("OUTCOME").replace_strict(ranked, list(range(len(ranked))), return_dtype=pl.UInt16)
            keyed = part.select("STUDYID", "SITEID", "USUBJID", "CRITERION_ID", rank.alias("_WORST"))
            wide = keyed.pivot(on="CRITERION_ID", index=["STUDYID", "SITEID", "USUBJID"], values="_WORST",
                               aggregate_function="min", on_columns=present)
            wides.append(wide.with_columns(pl.col(present).replace_strict(list(range(len(ranked))), ranked,
                                                                          return_dtype=pl.String)))
            criteria.update(present)
    head = subjects.select("STUDYID", "SITEID", "USUBJID", "SITE_DECISION", "RECOMPUTED")
    if not wides:
        return head.sort("SITEID", "USUBJID")
    ordered = sorted(criteria, key=criterion_sort_key)
    wide = pl.concat(wides, how="diagonal_relaxed") if len(wides) > 1 else wides[0]
    return (head.join(wide, on=["STUDYID", "SITEID", "USUBJID"], how="full", coalesce=True, nulls_equal=True)
            .select(["STUDYID", "SITEID", "USUBJID", "SITE_DECISION", "RECOMPUTED", *ordered])
            .sort("SITEID", "USUBJID", nulls_last=True))


def reconciliation_table(manifest: dict[str, Any]) -> pl.DataFrame:
    from reporting.manifest import RECONCILIATION_COLUMNS

    rows = manifest.get("reconciliation") or []
    schema = {c: (pl.Boolean if c == "BALANCED" else pl.String if c == "DOMAIN" else pl.Int64)
              for c in RECONCILIATION_COLUMNS}
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def not_audited_table(manifest: dict[str, Any]) -> pl.DataFrame:
    """Sites not audited, deliveries rejected or incomplete, and sites audited on an older delivery
    (USED with a reason: the fallback after a rejected newer one), each with the reason. Superseded
    deliveries (an older complete delivery not needed) and deliveries made after the as-of date (seen
    when a past night is re-run) are routine and left to the manifest."""
    rows = [{"SITEID": r["site"], "DELIVERY": None, "STATUS": "SITE NOT AUDITED", "REASON": r["reason"]}
            for r in manifest.get("sites_not_audited") or []]
    for d in manifest.get("deliveries") or []:
        if d["status"] in ("SUPERSEDED", "AFTER_AS_OF") or (d["status"] == "USED" and not d["reason"]):
            continue
        status = "USED (FALLBACK)" if d["status"] == "USED" else d["status"]
        rows.append({"SITEID": d["site"], "DELIVERY": d["delivery"], "STATUS": status, "REASON": d["reason"]})
    schema = dict.fromkeys(["SITEID", "DELIVERY", "STATUS", "REASON"], pl.String)
    return pl.DataFrame(rows, schema=schema).sort("SITEID", "DELIVERY", nulls_last=True) if rows \
        else pl.DataFrame(schema=schema)
