"""Process checks PC01-PC06: deviations and queries that the screening data reveal beside eligibility.

What each check means, its severity and its parameters are data (`process_checks.yaml`); this
module holds one small vectorised function per check id, each returning one row per subject that
fails it (USUBJID, SITE_ASSESSMENT, RECOMPUTED, EVIDENCE). The wording of the process sentences lives
next to the check that computes their values.

Dates are intervals: `2026-03` is every day of March 2026, and a check decides only when every
possible date gives the same answer (a procedure in `2026-03` is "before" a consent of `2026-04-02`,
but not before a consent of `2026-03-15`). Times are ignored: a procedure on the day of consent is
never "before" it, because sites rarely record the consent time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from checks.comparison import evidence
from checks.comparison.process_config import (
    ProcessCheck,
    ProcessConfigError,
    load_process_checks,
    parse_process_checks,
)
from checks.comparison.site_checklist import ChecklistStyle, SiteSource
from contracts.enums import SiteDecision
from contracts.needs import derived_limit
from contracts.protocol import Protocol
from contracts.units import UnitCatalog, load_units
from core import values
from core.dates import completed_years, date_bounds, with_partial_dates
from core.source import RECORD_SEPARATOR, SOURCE_KEY, source_text, with_distinct_records
from core.values import column_text
from core.versions import span_labels

__all__ = ["CHECKS", "OWN_COLUMNS", "PROCESS_COLUMNS", "ProcessCheck", "ProcessConfigError", "ProcessContext",
           "date_bounds", "load_process_checks", "parse_process_checks", "run_process_checks"]

PROCESS_COLUMNS = ["USUBJID", "SITE_ASSESSMENT", "RECOMPUTED", "EVIDENCE"]
#: what a check may add: the date of what it found and the records it found it in (null where it has none)
OWN_COLUMNS = ["DTC", "SOURCE"]


@dataclass(frozen=True)
class ProcessContext:
    """What the checks read: one row per subject, DM, the eligibility rows, the site checklist."""

    subjects: pl.DataFrame  # USUBJID, SITE_DECISION, TREATMENT_START, TIVERS (the protocol version judged by)
    dm: pl.DataFrame  # DM as the evaluation read it (contracts.SUBJECT_DM: texts and date bounds)
    derived: pl.DataFrame  # the derived values as numbers (contracts.DERIVED_VALUES)
    protocol: Protocol
    eligibility: pl.DataFrame
    checklist: pl.DataFrame  # checks.comparison.site_checklist.site_checklist()
    domains: dict[str, pl.DataFrame]
    catalog: UnitCatalog | None = None  # the study's unit catalog (None: the bundled one)
    #: USUBJID, DOMAIN: the domains whose file each subject's site delivered and ingestion rejected as a whole
    unread: pl.DataFrame | None = None


# --------------------------------------------------------------------------------------------- dates


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=dict.fromkeys([*PROCESS_COLUMNS, *OWN_COLUMNS], pl.String))


# --------------------------------------------------------------------------------------------- checks


def pc01_procedure_before_consent(ctx: ProcessContext, params: dict[str, Any]) -> pl.DataFrame:
    """Any LB / VS / FA / TR record whose whole date interval lies before the consent date."""
    if ctx.dm.height == 0:
        return _empty()
    # the consent date as the evaluation read it; each distinct record date parsed once
    consent = (ctx.dm.select("USUBJID", "RFICDTC", pl.col("CONSENT_LO").alias("C_LO"))
               .filter(pl.col("C_LO").is_not_null()))
    parts = []
    for domain, spec in sorted(params["records"].items()):
        frame = ctx.domains.get(domain)
        if frame is None or frame.height == 0 or spec["date"] not in frame.columns:
            continue
        rows = frame.lazy().select(
            column_text(frame, "USUBJID"),
            pl.lit(domain.upper()).alias("DOMAIN"),
            column_text(frame, spec["test"]).alias("TESTCD"),
            column_text(frame, spec["date"]).alias("DTC"),
            column_text(frame, spec["status"]).alias("STATUS") if spec.get("status") else pl.lit(None,
                                                                                            pl.String).alias(
                "STATUS"),
            (source_text() if SOURCE_KEY in frame.columns else pl.lit(None, pl.String)).alias("SOURCE"),
        ).filter(pl.col("STATUS").fill_null("").str.to_uppercase() != "NOT DONE")
        # one domain at a time: only its records are in memory, and only its early ones are kept
        parts.append(
            with_partial_dates(rows.join(consent.lazy(), on="USUBJID"), "DTC", "R")
            .filter(pl.col("R_HI") < pl.col("C_LO"))
            .collect(engine="in-memory")
        )
    if not parts:
        return _empty()
    early = pl.concat(parts)
    order = ["R_LO", "DOMAIN", "TESTCD", "DTC"]
    first = early.group_by("USUBJID").agg(
        pl.len().alias("N"),
        *[pl.col(c).sort_by(order, nulls_last=True).first() for c in ("DOMAIN", "TESTCD", "DTC", "RFICDTC")],
        # every record dated before consent, earliest first: the site is asked about each (its query's RECORD)
        pl.col("SOURCE").sort_by([*order, "SOURCE"], nulls_last=True).drop_nulls().str.join("; ").alias("SOURCE"),
    )
    more = (
        pl.when(pl.col("N") > 1)
        .then(pl.format("; {} more screening record(s) are also dated before consent", pl.col("N") - 1))
        .otherwise(pl.lit(""))
    )
    return first.join(ctx.subjects, on="USUBJID").select(
        "USUBJID",
        pl.format("RFICDTC={}; {}", pl.col("RFICDTC"), pl.col("SITE_DECISION")).alias("SITE_ASSESSMENT"),
        pl.format("{} record(s) before consent, earliest {} {} {}", pl.col("N"), pl.col("DOMAIN"),
                  pl.col("TESTCD").fill_null("?"), pl.col("DTC")).alias("RECOMPUTED"),
        pl.format(
            "{} {} dated {} precedes informed consent (RFICDTC {}){}; the site {}.",
            pl.col("DOMAIN"),
            pl.col("TESTCD").fill_null("(no test code)"),
            pl.col("DTC"),
            pl.col("RFICDTC"),
            more,
            evidence.decision_clause(),
        ).alias("EVIDENCE"),
        pl.col("DTC"),  # the deviation's own date: the earliest procedure before consent (DV's DVSTDTC)
        pl.when(pl.col("SOURCE") != "").then(pl.col("SOURCE")).alias("SOURCE"),
    )


def pc02_dosed_before_consent(ctx: ProcessContext, params: dict[str, Any]) -> pl.DataFrame:
    """First dose wholly before consent, or enrolled / dosed while DM has no usable consent date."""
    if ctx.dm.height == 0:
        return _empty()
    frame = ctx.dm.select("USUBJID", "RFICDTC", "RFXSTDTC", pl.col("CONSENT_LO").alias("C_LO"),
                          pl.col("DOSE_HI").alias("D_HI"), "SOURCE").join(ctx.subjects, on="USUBJID")
    enrolled = pl.col("SITE_DECISION") == SiteDecision.ENROLLED
    dosed = pl.col("RFXSTDTC").is_not_null()
    no_consent = pl.col("C_LO").is_null()
    before = pl.col("D_HI") < pl.col("C_LO")
    consent_text = pl.when(pl.col("RFICDTC").is_null()).then(pl.lit("missing")).otherwise(
        pl.format("'{}' is not a date", pl.col("RFICDTC"))
    )
    who = pl.when(dosed).then(pl.format("was dosed (RFXSTDTC {})", pl.col("RFXSTDTC"))).otherwise(
        pl.lit("was enrolled")
    )
    return frame.filter(before.fill_null(False) | (no_consent & (enrolled | dosed))).select(
        "USUBJID",
        pl.format("RFICDTC={}; RFXSTDTC={}; {}", pl.col("RFICDTC").fill_null("missing"),
                  pl.col("RFXSTDTC").fill_null("missing"), pl.col("SITE_DECISION")).alias("SITE_ASSESSMENT"),
        pl.when(no_consent).then(pl.lit("no usable consent date")).otherwise(
            pl.lit("first dose before consent")).alias("RECOMPUTED"),
        pl.when(no_consent)
        .then(pl.format("The subject {} but DM has no usable informed consent date (RFICDTC {}).", who,
                        consent_text))
        .otherwise(pl.format("First dose RFXSTDTC {} is before informed consent RFICDTC {}; the site {}.",
                             pl.col("RFXSTDTC"), pl.col("RFICDTC"), evidence.decision_clause()))
        .alias("EVIDENCE"),
        "SOURCE",  # the subject's DM record (subject_dm), which the dates are in: its query's RECORD
    )


def pc03_stale_result(ctx: ProcessContext, params: dict[str, Any]) -> pl.DataFrame:
    """Enrolled subject with a component whose only results predate the screening window."""
    if "REASON_CODE" not in ctx.eligibility.columns:
        return _empty()
    stale = (
        ctx.eligibility.filter(pl.col("REASON_CODE") == params["reason_code"])
        .join(ctx.subjects.filter(pl.col("SITE_DECISION") == SiteDecision.ENROLLED), on="USUBJID")
        .with_columns(
            pl.when(pl.col("REASON").is_not_null())
            .then(pl.format("{}: {}", pl.col("CHECK_ID"), pl.col("REASON")))
            .otherwise(pl.col("CHECK_ID"))
            .alias("ITEM")
        )
    )
    grouped = stale.group_by("USUBJID").agg(
        pl.col("ITEM").sort().str.join("; ").alias("ITEMS"),
        pl.col("CHECK_ID").sort().str.join(", ").alias("IDS"),
        pl.col("TREATMENT_START").first(),
        # the latest stale record of each component (eligibility's SOURCE), in CHECK_ID order, each once (a
        # creatinine and the clearance computed from it name the same record): its query's RECORD
        pl.col("SOURCE").sort_by("CHECK_ID").drop_nulls().str.join(RECORD_SEPARATOR),
    )
    return with_distinct_records(grouped).select(
        "USUBJID",
        pl.lit(SiteDecision.ENROLLED).alias("SITE_ASSESSMENT"),
        pl.format("only pre-window results: {}", pl.col("IDS")).alias("RECOMPUTED"),
        pl.format(
            "Only results dated before the screening window exist ({}); the site enrolled the subject "
            "(treatment start {}), so a stale result was likely relied on.",
            pl.col("ITEMS"),
            pl.col("TREATMENT_START").fill_null("unknown"),
        ).alias("EVIDENCE"),
        pl.when(pl.col("SOURCE") != "").then(pl.col("SOURCE")).alias("SOURCE"),
    )


def not_required_in_span(protocol: Protocol) -> pl.DataFrame:
    """TIVERS x CRITERION_ID: for a consent that spans versions (TIVERS `1.0 or 2.0`), the criteria of only some of
    them, which its checklist need not answer (the same rule as validation's MISSING_IE, docs/criteria.md)."""
    editions = protocol.editions()
    sets = [{criterion.id for criterion in edition.criteria} for edition in editions]
    rows = [(label, criterion)
            for (first, last), label in span_labels([edition.version for edition in editions]).items() if first < last
            for criterion in sorted(set.union(*sets[first:last + 1]) - set.intersection(*sets[first:last + 1]))]
    return pl.DataFrame(rows, schema={"TIVERS": pl.String, "CRITERION_ID": pl.String}, orient="row")


def pc04_checklist_incomplete(ctx: ProcessContext, params: dict[str, Any]) -> pl.DataFrame:
    """A subject with a screening decision whose IE checklist is missing, lacks criteria or says U. A criterion of
    only some of the versions a subject's consent spans is not required (helper-45: PC04 asked 101-0044, consented
    in `2026-06` across an amendment, for the new EX17, which validation rightly did not)."""
    decided = ctx.subjects.filter(pl.col("SITE_DECISION").is_in([SiteDecision.ENROLLED, SiteDecision.SCREEN_FAILURE]))
    absent = pl.col("SITE_SOURCE") == SiteSource.ABSENT.value
    unknown = pl.col("SITE_OUTCOME") == "UNKNOWN"
    checklist = ctx.checklist
    optional = not_required_in_span(ctx.protocol)
    if optional.height and "TIVERS" in decided.columns:
        unasked = (checklist.filter(absent).join(decided.select("USUBJID", "TIVERS"), on="USUBJID")
                   .join(optional, on=["TIVERS", "CRITERION_ID"], how="semi").select("USUBJID", "CRITERION_ID"))
        checklist = checklist.join(unasked, on=["USUBJID", "CRITERION_ID"], how="anti", maintain_order="left")
    per = (
        checklist.join(decided, on="USUBJID")
        .sort("USUBJID", "ORDER")
        .group_by("USUBJID", maintain_order=True)
        .agg(
            pl.col("STYLE").first(),
            pl.col("SITE_DECISION").first(),
            pl.len().alias("N"),
            pl.col("CRITERION_ID").filter(absent).str.join(", ").alias("ABSENT"),
            pl.col("SITE_TEXT").filter(unknown).str.join(", ").alias("UNKNOWN"),
            (absent | unknown).sum().alias("N_BAD"),
        )
    )
    missing = pl.col("STYLE") == ChecklistStyle.MISSING.value
    details = pl.concat_str(
        [
            pl.when(pl.col("ABSENT") != "").then(pl.format("no answer for {}", pl.col("ABSENT"))),
            pl.when(pl.col("UNKNOWN") != "").then(pl.format("answer not Y/N for {}", pl.col("UNKNOWN"))),
        ],
        separator="; ",
        ignore_nulls=True,
    )
    return per.filter(missing | (pl.col("N_BAD") > 0)).select(
        "USUBJID",
        pl.format("IE {} checklist, {} of {} criteria answered Y/N; {}", pl.col("STYLE").str.to_lowercase()
                  .str.replace_all("_", "-"), pl.col("N") - pl.col("N_BAD"), pl.col("N"),
                  pl.col("SITE_DECISION")).alias("SITE_ASSESSMENT"),
        pl.when(missing).then(pl.lit("checklist missing")).otherwise(details).alias("RECOMPUTED"),
        pl.when(missing)
        .then(pl.format("No IE checklist was delivered for this subject, although the site {}.",
                        evidence.decision_clause()))
        .otherwise(pl.format("The site's IE checklist is incomplete although the site {}: {}.",
                             evidence.decision_clause(), details))
        .alias("EVIDENCE"),
    )


def pc05_age_mismatch(ctx: ProcessContext, params: dict[str, Any]) -> pl.DataFrame:
    """DM.AGE outside every age the (possibly partial) birth and consent dates allow."""
    if ctx.dm.height == 0 or "AGE" not in ctx.dm.columns:
        return _empty()
    age = pl.col("AGE").str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
    frame = (
        ctx.dm.join(ctx.subjects, on="USUBJID")
        .with_columns(  # the youngest and oldest age the date bounds allow (as the AGE_AT_CONSENT value)
            age.alias("AGE_N"),
            completed_years(pl.col("BIRTH_HI"), pl.col("CONSENT_LO")).alias("MIN_AGE"),
            completed_years(pl.col("BIRTH_LO"), pl.col("CONSENT_HI")).alias("MAX_AGE"),
        )
        .filter(
            pl.col("MIN_AGE").is_not_null()
            & pl.col("AGE_N").is_not_null()
            & ((pl.col("AGE_N") < pl.col("MIN_AGE")) | (pl.col("AGE_N") > pl.col("MAX_AGE")))
        )
    )
    computed = pl.when(pl.col("MIN_AGE") == pl.col("MAX_AGE")).then(pl.format("{}", pl.col("MIN_AGE"))).otherwise(
        pl.format("{} to {}", pl.col("MIN_AGE"), pl.col("MAX_AGE"))
    )
    return frame.select(
        "USUBJID",
        pl.format("AGE={}", pl.col("AGE")).alias("SITE_ASSESSMENT"),
        pl.format("AGE={}", computed).alias("RECOMPUTED"),
        # the birth date itself never leaves the landing area: the evidence quotes only the ages
        pl.format(
            "DM.AGE {} disagrees with the age computed from the birth date (BRTHDTC) and RFICDTC {}: {} years.",
            pl.col("AGE"),
            pl.col("RFICDTC"),
            computed,
        ).alias("EVIDENCE"),
        "SOURCE",
    )


def _limits_per_version(protocol: Protocol, component_id: str) -> pl.DataFrame:
    """TIVERS -> the derived value, comparison and limit the component has in that version (a subject whose
    consent spans versions: only when they all agree), so a site's number is judged against the limit the
    subject was evaluated with. Read from the protocol, never restated (contracts.needs.derived_limit)."""
    editions = protocol.editions()
    limits = [derived_limit(edition, component_id) for edition in editions]
    rows = []
    for (first, last), label in span_labels([e.version for e in editions]).items():
        found = set(limits[first:last + 1])
        if len(found) == 1 and None not in found:
            name, op, limit = next(iter(found))  # type: ignore[misc]
            rows.append((label, name, op, limit))
    return pl.DataFrame(rows, schema={"TIVERS": pl.String, "NAME": pl.String, "OP": pl.String,
                                      "THRESHOLD": pl.Float64}, orient="row")


def _holds(value: pl.Expr) -> pl.Expr:
    """`value OP THRESHOLD`, the component's own comparison."""
    limit = pl.col("THRESHOLD")
    return (pl.when(pl.col("OP") == ">=").then(value >= limit).when(pl.col("OP") == ">").then(value > limit)
            .when(pl.col("OP") == "<=").then(value <= limit).otherwise(value < limit))


def pc06_creatinine_clearance(ctx: ProcessContext, params: dict[str, Any]) -> pl.DataFrame:
    """Site CREATCLR of the same day as the creatinine used vs the recomputed Cockcroft-Gault value.

    Flagged when they differ by more than `relative_tolerance` of the recomputed value AND fall on
    different sides of the component's limit (IN11.CRCL: `>= 40`, from the protocol version the subject
    was judged by), i.e. when the site's own number would have decided the criterion the other way. The
    site value is converted with the unit catalog (mL/s x 60); a censored, non-numeric or unconvertible
    site value is not compared.
    """
    lb = ctx.domains.get("lb")
    needed = {"USUBJID", "LBTESTCD", "LBORRES", "LBORRESU", "LBDTC"}
    limits = _limits_per_version(ctx.protocol, params["component"])
    if lb is None or lb.height == 0 or not needed <= set(lb.columns) or limits.height == 0:
        return _empty()
    catalog = ctx.catalog or load_units()
    test = params["lb_test"]
    unit = catalog.protocol_unit("LB", test) or ""
    parsed = values.parse_number("LBORRES", "DECIMAL" if "DECIMAL" in lb.columns else None)
    site = (
        lb.filter(values.coded_value("LBTESTCD") == test)
        .with_columns(
            pl.when(parsed.struct.field("censor").is_null())
            .then(values.to_protocol_unit(parsed.struct.field("number"), pl.lit(test), "LBORRESU", catalog, "LB"))
            .alias("SITE_VALUE"),
            date_bounds(pl.col("LBDTC"))[0].alias("DAY"),
            date_bounds(pl.col("LBDTC"))[1].alias("DAY_HI"),
        )
        .filter(pl.col("SITE_VALUE").is_not_null() & (pl.col("DAY") == pl.col("DAY_HI")))
        .sort("USUBJID", "DAY", "SITE_VALUE")
        .unique(subset=["USUBJID", "DAY"], keep="last", maintain_order=True)
        .select("USUBJID", "DAY", "SITE_VALUE", pl.col("LBDTC").str.strip_chars().alias("SITE_DTC"))
    )
    # the recomputed value as the evaluation computed it (a number, not its evidence text): the value it
    # showed, to 6 significant digits, when it is exact or only bounded from below (a censored creatinine)
    exact = (pl.col("LO") == pl.col("HI")) | pl.col("HI").is_infinite()
    subjects = ctx.subjects.join(limits, on="TIVERS")  # the limit of each subject's own protocol version
    recomputed = (
        ctx.derived.join(subjects.select("USUBJID", "NAME"), on=["USUBJID", "NAME"])
        .with_columns(
            pl.when(exact).then(pl.col("LO").round_sig_figs(6)).alias("REC_VALUE"),
            date_bounds(pl.col("DTC"))[0].alias("DAY"),
        )
        .filter(pl.col("REC_VALUE").is_not_null() & (pl.col("REC_VALUE") > 0))
        .select("USUBJID", "DAY", "REC_VALUE")
    )
    tolerance = float(params["relative_tolerance"])
    difference = (pl.col("SITE_VALUE") - pl.col("REC_VALUE")).abs()
    sides = _holds(pl.col("SITE_VALUE")) != _holds(pl.col("REC_VALUE"))
    pct = values.format_number((difference / pl.col("REC_VALUE") * 100).round(1))
    site_text = values.format_number(pl.col("SITE_VALUE"))
    rec_text = values.format_number(pl.col("REC_VALUE").round(1))
    return (
        site.join(recomputed, on=["USUBJID", "DAY"])
        .join(subjects, on="USUBJID")
        .filter(sides & (difference.round(9) > (pl.col("REC_VALUE") * tolerance).round(9)))
        .select(
            "USUBJID",
            pl.format("{}={} {}", pl.lit(test), site_text, pl.lit(unit)).alias("SITE_ASSESSMENT"),
            pl.format("{}={} {}", pl.lit(params["component"]), rec_text, pl.lit(unit)).alias("RECOMPUTED"),
            pl.format(
                "Site-reported {} {} {} on {} differs by {} % from the recomputed Cockcroft-Gault value "
                "{} {} ({}) and falls on the other side of {} {}; the site {}.",
                pl.lit(test),
                site_text,
                pl.lit(unit),
                pl.col("SITE_DTC"),
                pct,
                rec_text,
                pl.lit(unit),
                pl.lit(params["component"]),
                values.format_number(pl.col("THRESHOLD")),
                pl.lit(unit),
                evidence.decision_clause(),
            ).alias("EVIDENCE"),
        )
    )


CheckFunction = Callable[[ProcessContext, dict[str, Any]], pl.DataFrame]

#: check id -> (function, the parameter keys it reads)
CHECKS: dict[str, tuple[CheckFunction, frozenset[str]]] = {
    "PC01": (pc01_procedure_before_consent, frozenset({"records"})),
    "PC02": (pc02_dosed_before_consent, frozenset()),
    "PC03": (pc03_stale_result, frozenset({"reason_code"})),
    "PC04": (pc04_checklist_incomplete, frozenset()),
    "PC05": (pc05_age_mismatch, frozenset()),
    "PC06": (
        pc06_creatinine_clearance,
        frozenset({"component", "lb_test", "relative_tolerance"}),
    ),
}

#: check id -> the domains (upper case) whose missing records its findings report: PC04's "no answer for EX03" is
#: the absence of an IE record. Where the site's file of such a domain was rejected as a whole, the absence says
#: nothing (a site whose ie.csv could not be read was asked to "complete the IE checklist" for every subject)
REPORTS_ABSENCE_IN: dict[str, frozenset[str]] = {"PC04": frozenset({"IE"})}


def _without_unread_absences(found: pl.DataFrame, check_id: str, unread: pl.DataFrame | None) -> pl.DataFrame:
    """`found` (a check's findings) without those of subjects whose site's file of a domain the check reports the
    absence of (REPORTS_ABSENCE_IN) was not read: nothing is known of them tonight. The file's own query asks for the
    file, and the history neither resolves nor renews what the night before found (a site audited without a rejected
    file was not looked at again in full: reporting.history.partly_read); a finding of its own ("not checked") was a
    NEW finding for every decided subject of the site, resolved the next night (helper-48)."""
    domains = REPORTS_ABSENCE_IN.get(check_id)
    if not domains or unread is None or unread.height == 0 or found.height == 0:
        return found
    unknown = unread.filter(pl.col("DOMAIN").is_in(sorted(domains))).select("USUBJID").unique()
    return found.join(unknown, on="USUBJID", how="anti", maintain_order="left")


def run_process_checks(ctx: ProcessContext, checks: tuple[ProcessCheck, ...] | None = None) -> pl.DataFrame:
    """All configured checks as one table: USUBJID, CHECK_ID, SEVERITY + PROCESS_COLUMNS + OWN_COLUMNS (null where
    a check gives none)."""
    def shaped(found: pl.DataFrame) -> pl.DataFrame:
        own = [pl.col(c).cast(pl.String) if c in found.columns else pl.lit(None, pl.String).alias(c)
               for c in OWN_COLUMNS]
        return found.select(*PROCESS_COLUMNS, *own)

    frames = [
        _without_unread_absences(shaped(CHECKS[check.id][0](ctx, check.params)), check.id, ctx.unread)
        .with_columns(pl.lit(check.id).alias("CHECK_ID"), pl.lit(check.severity).alias("SEVERITY"))
        for check in (checks if checks is not None else load_process_checks())
    ]
    if not frames:
        return _empty().with_columns(pl.lit(None, pl.String).alias("CHECK_ID"),
                                     pl.lit(None, pl.String).alias("SEVERITY"))
    return pl.concat(frames, how="vertical_relaxed")
