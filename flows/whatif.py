"""The `whatif` flow: the delivered data judged by a draft amendment as well as by the protocol in force.

Wiring only: the night's ingestion and validation (flows.nightly), two evaluations (each subject by its
version in force; every subject by the draft), the comparison of the two (checks.comparison.whatif) and
its pages (reporting.whatif). It takes no lock and publishes nothing of the night's: its files go to
`<reports>/<STUDYID>/whatif/<AS_OF>/<draft version>/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from prefect import flow, get_run_logger
from prefect.utilities.annotations import quote

from flows.nightly import ingest_study, report_location
from flows.tasks import evaluate_task, validate_study_task


class DraftMismatchError(ValueError):
    """The draft amends another protocol than the one the study audits."""


@dataclass(frozen=True)
class WhatIfSummary:
    """What the command line prints: where the pages are and the headline counts."""

    study: str
    as_of: str
    baseline: str
    draft: str
    subjects: int
    changes: dict[str, int]
    unverifiable_subjects: int
    report: str
    outputs: str
    #: what the person running it should know before reading the counts (a draft that is no amendment)
    warnings: tuple[str, ...] = ()


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"{params.get('study', 'SZ003')}-whatif-{params.get('as_of') or 'today'}"


@flow(name="whatif", flow_run_name=_run_name, log_prints=False, timeout_seconds=6 * 3600)
def whatif_audit(landing: str, reports: str, draft: str, study: str = "SZ003", protocol: str | None = None,
                 as_of: str | None = None, endpoint_url: str | None = None, timezone: str = "UTC",
                 units: str | None = None, process_checks: str | None = None,
                 policy: str | None = None) -> WhatIfSummary:
    """Re-evaluate the study's delivered data as of `as_of` under the draft protocol file `draft`.

    `protocol`, `units`, `process_checks` and `policy` are the study's (as for the nightly audit);
    the draft must carry the same protocol id. The draft's effective date is not used: every subject is
    judged by it, to show what it would have decided for everyone screened so far.
    """
    from checks.comparison.whatif import whatif
    from contracts.protocol import check_study_protocol, load_draft
    from flows.config import delivery_cutoff, scheduled_audit_date
    from flows.study_files import load_study_files
    from ingestion.unread import unread_in
    from ingestion.window import NightCutoff
    from reporting.whatif import publish_whatif
    from review.runs import seen_by_past_night
    from storage import open_store

    files = load_study_files(protocol, units, process_checks, policy, endpoint_url=endpoint_url)
    check_study_protocol(study, files.protocol, protocol)  # the study's own protocol, as for the night
    draft_protocol = load_draft(draft)
    if draft_protocol.id != files.protocol.id:
        raise DraftMismatchError(f"{draft}: the draft amends protocol {draft_protocol.id}, but the study is "
                                 f"audited with protocol {files.protocol.id}")
    as_of_date = date.fromisoformat(as_of) if as_of else scheduled_audit_date(timezone)
    # a past night's what-if reads what that night audited (ingestion.window), as its re-run would
    cutoff = NightCutoff(delivery_cutoff(as_of_date, timezone),
                         seen_by_past_night(open_store(reports, endpoint_url), study, as_of_date))
    ingest = ingest_study(landing, study, endpoint_url, None, cutoff)
    unread = unread_in(ingest)
    validation = validate_study_task(quote(ingest.domains), study, quote(files.protocol), quote(files.catalog),
                                     quote(unread))
    now = evaluate_task(quote(ingest.domains), quote(files.protocol), as_of_date, quote(validation),
                        quote(files.catalog), quote(unread))
    drafted = evaluate_task(quote(ingest.domains), quote(draft_protocol), as_of_date, quote(validation),
                            quote(files.catalog), quote(unread))
    result = whatif(now, drafted, study=study, as_of=as_of_date, protocol=files.protocol,
                    draft_protocol=draft_protocol)
    for warning in result.warnings:  # the flow's log too: a what-if started from a deployment has no terminal
        get_run_logger().warning("what-if %s: %s", draft_protocol.tivers, warning)
    written = publish_whatif(result, open_store(reports, endpoint_url), draft_protocol.tivers)
    location = report_location(reports, written.prefix)
    counts = dict(result.changes.group_by("CHANGE").len().iter_rows()) if result.changes.height else {}
    summary = WhatIfSummary(study=study, as_of=as_of_date.isoformat(), baseline=result.baseline, draft=result.draft,
                            subjects=result.subjects, changes={k: int(v) for k, v in sorted(counts.items())},
                            unverifiable_subjects=result.unverifiable["USUBJID"].n_unique(),
                            report=f"{location}/whatif.html", outputs=location, warnings=result.warnings)
    get_run_logger().info("what-if %s for %s as of %s: %d subjects change outcome; report at %s", result.draft,
                          study, summary.as_of, result.changes.height, summary.report)
    return summary
