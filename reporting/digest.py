"""The morning digest: what a sponsor's data manager must know about last night's run, in one message.

It says what is new and important, not everything: the headline numbers, the important deviations
found tonight (subject, criterion, one line of evidence), the findings reopened tonight, the sites not
audited and the deliveries rejected, the review backlog, and links to the full report. A night with
no new or reopened finding says so in one line (which still counts the open findings and the site
problems that continue). The same facts are rendered three ways: a plain-text and an
HTML email part (templates/digest.*.j2) and a JSON-ready dict a chat webhook posts. Subjects are
named by USUBJID only; the evidence sentences never quote birth dates or names (checks.comparison).
"""

from __future__ import annotations

from typing import Any

import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from contracts.enums import FindingStatus
from contracts.records import Digest, RunOutputs
from ingestion.codes import DeliveryStatus
from reporting.manifest import protocol_change
from reporting.review_summary import reopened_tonight, review_backlog
from reporting.summary import headline, important_deviations, not_audited_table

#: how many items a list in the message shows before "and N more" (the report has them all)
SHOWN = 25
#: one line of evidence: longer sentences are cut at a word boundary
EVIDENCE_CHARS = 220


def _env() -> Environment:
    """HTML templates (`*.html.j2`) escape every value; the plain-text one (`*.txt.j2`) does not."""
    return Environment(loader=PackageLoader("reporting", "templates"),
                       autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _one_line(column: str) -> pl.Expr:
    text = pl.col(column).cast(pl.String).fill_null("").str.replace_all(r"\s+", " ").str.strip_chars()
    cut = text.str.slice(0, EVIDENCE_CHARS).str.replace(r"\s+\S*$", "")
    return pl.when(text.str.len_chars() > EVIDENCE_CHARS).then(cut + pl.lit(" …")).otherwise(text).alias(column)


def new_important(discrepancies: pl.DataFrame) -> pl.DataFrame:
    """Important deviations first found tonight: SITEID, USUBJID, CHECK_ID, CLASS, EVIDENCE (one line); an
    ineligible enrolment once, as in DV (a second user trial: "2 new important deviation(s)" for one subject)."""
    columns = ["SITEID", "USUBJID", "CHECK_ID", "CLASS", "EVIDENCE"]
    if "STATUS" not in discrepancies.columns:
        return pl.DataFrame(schema=dict.fromkeys(columns, pl.String))
    # of the deviations present tonight, as dv and the report count them: an IE_MISMATCH new tonight whose open
    # ineligible enrolment was already listed is no new deviation (helper-35)
    new = important_deviations(discrepancies).filter(pl.col("STATUS") == FindingStatus.NEW)
    return new.select(*columns[:-1], _one_line("EVIDENCE")).sort(columns[:-1], nulls_last=True)


def reopened(outputs: RunOutputs) -> pl.DataFrame:
    """Findings reopened since the last run (review.night: changed evidence, or a reviewer), with the
    reason: SITEID, USUBJID, CHECK_ID, CLASS, SEVERITY, BY, TEXT (one line)."""
    columns = ["SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "BY", "TEXT"]
    return reopened_tonight(outputs).select(*columns[:-1], _one_line("TEXT"))


def backlog(outputs: RunOutputs) -> pl.DataFrame:
    """The review backlog summed over ages and sites: REVIEW_STATE, N (reporting.review_summary)."""
    per = review_backlog(outputs)
    return (per.group_by("REVIEW_STATE", maintain_order=True).agg(pl.col("N").sum().cast(pl.Int64))
            if per.height else pl.DataFrame(schema={"REVIEW_STATE": pl.String, "N": pl.Int64}))


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return frame.head(SHOWN).to_dicts()


#: what tells one site or delivery problem from another night's: the same site, delivery, status and reason
PROBLEM_KEY = ["SITEID", "DELIVERY", "STATUS", "REASON"]


def _problems(manifest: dict[str, Any]) -> pl.DataFrame:
    """The sites not audited and the deliveries rejected or incomplete: the report's Not audited rows without the
    fallbacks (a site audited on an older delivery is the other half of a rejection that is listed: counted
    apart, one rejection was "2 new site/delivery problem(s)", helper-34)."""
    return not_audited_table(manifest).filter(~pl.col("STATUS").str.starts_with(DeliveryStatus.USED.value))


def site_problems(manifest: dict[str, Any], previous: dict[str, Any] | None) -> pl.DataFrame:
    """Tonight's sites not audited and deliveries rejected or incomplete (`_problems`), each with NEW: true
    when the previous published night's manifest (`previous`) did not have the same problem (site, delivery,
    status and reason), new ones first. A delivery rejected three weeks ago was news once: a digest that
    repeated it every morning hid tonight's new rejection among the old ones. Without a previous night
    every problem is new, as with a previous manifest of a shape this version does not read (one edited by
    hand): a problem told twice is better than one never told.

    A folder still without its manifest (INCOMPLETE) is never news here: most are uploads in progress when
    the audit runs, done by the next night; one left for a day is a data-quality finding of its own
    (ingest.delivery_incomplete), which the digest counts among the new data-quality findings."""
    tonight = _problems(manifest)
    try:
        earlier = _problems(previous) if previous is not None else None
    except (KeyError, TypeError, AttributeError, pl.exceptions.PolarsError):
        earlier = None
    if earlier is None:
        return (tonight.with_columns((pl.col("STATUS") != DeliveryStatus.INCOMPLETE).alias("NEW"))
                .sort("NEW", descending=True, maintain_order=True))
    earlier = earlier.select(PROBLEM_KEY).unique().with_columns(pl.lit(False).alias("NEW"))
    return (tonight.join(earlier, on=PROBLEM_KEY, how="left", nulls_equal=True, maintain_order="left")
            .with_columns(pl.col("NEW").fill_null(True) & (pl.col("STATUS") != DeliveryStatus.INCOMPLETE))
            .sort("NEW", descending=True, maintain_order=True))


def digest_facts(outputs: RunOutputs, links: dict[str, str], previous_manifest: dict[str, Any] | None = None,
                 ) -> dict[str, Any]:
    """The message as data: every number and list the digest shows (JSON-ready); `previous_manifest`: the
    previous published night's run manifest (site_problems), None for a first night."""
    head = headline(outputs)
    new = new_important(outputs.discrepancies)
    reopened_rows = reopened(outputs)
    not_audited = site_problems(outputs.run_manifest, previous_manifest)
    waiting = backlog(outputs)
    return {
        "study": outputs.study,
        "as_of": outputs.as_of.isoformat(),
        "protocol": head.protocol,
        "protocol_change": protocol_change(previous_manifest, outputs.run_manifest),
        "headline": {
            "sites_audited": head.sites_audited, "sites_not_audited": head.sites_not_audited,
            "subjects_screened": head.subjects_screened, "enrolled": head.enrolled,
            "ineligible_enrolled": head.ineligible_enrolled,
            "ineligible_enrolled_carried": head.ineligible_enrolled_carried, "important_open": head.important,
            "confirmed_not_in_data": head.confirmed_not_in_data,
            "confirmed_left_data_tonight": head.confirmed_left_data_tonight,
            "queries_open": head.query_discrepancies, "new": head.new, "resolved": head.resolved,
            "data_findings": head.data_findings, "new_data_findings": head.new_data_findings,
            "resolved_data_findings": head.resolved_data_findings,
            "rows_reconcile": head.balanced,
        },
        "new_important": _records(new), "new_important_total": new.height,
        "reopened": _records(reopened_rows), "reopened_total": reopened_rows.height,
        "not_audited": _records(not_audited), "not_audited_total": not_audited.height,
        "not_audited_new_total": int(not_audited["NEW"].sum()),
        "backlog": waiting.to_dicts(), "backlog_total": int(waiting["N"].sum()) if waiting.height else 0,
        "links": dict(links),
    }


def _nothing_new(facts: dict[str, Any]) -> bool:
    """No finding new or reopened tonight (discrepancy or data-quality finding: a night with 45 new data-quality
    findings said "nothing new"), no site or delivery problem new tonight, and the rows reconcile. The problems
    of earlier nights that continue are not news: the one-line message still counts them."""
    head = facts["headline"]
    return (head["new"] == 0 and head["new_data_findings"] == 0 and facts["reopened_total"] == 0
            and facts["not_audited_new_total"] == 0 and head["rows_reconcile"] and not facts.get("protocol_change")
            and not head.get("confirmed_left_data_tonight"))


def _subject(facts: dict[str, Any], nothing_new: bool) -> str:
    prefix = f"[{facts['study']}] Screening audit {facts['as_of']}"
    if nothing_new:
        return f"{prefix}: nothing new"
    parts = [f"{facts['new_important_total']} new important deviation(s)"]
    if facts["reopened_total"]:
        parts.append(f"{facts['reopened_total']} reopened")
    if facts["not_audited_new_total"]:
        parts.append(f"{facts['not_audited_new_total']} new site/delivery problem(s)")
    parts.append(f"{facts['headline']['new']} new discrepancy(ies) in all")
    if facts["headline"]["new_data_findings"]:
        parts.append(f"{facts['headline']['new_data_findings']} new data-quality finding(s)")
    return f"{prefix}: " + ", ".join(parts)


def build_digest(outputs: RunOutputs, links: dict[str, str], previous_manifest: dict[str, Any] | None = None,
                 ) -> Digest:
    """The digest of one published run; `links` names each link (report.html, report.xlsx) and its URL;
    `previous_manifest` the previous published night's run manifest (None: every site problem is new)."""
    facts = digest_facts(outputs, links, previous_manifest)
    nothing_new = _nothing_new(facts)
    context = {"facts": facts, "nothing_new": nothing_new, "shown": SHOWN}
    return Digest(
        study=outputs.study,
        as_of=facts["as_of"],
        subject=_subject(facts, nothing_new),
        text=_env().get_template("digest.txt.j2").render(**context),
        html=_env().get_template("digest.html.j2").render(**context),
        facts=facts,
        nothing_new=nothing_new,
    )
