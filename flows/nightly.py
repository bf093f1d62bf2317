"""The `nightly_audit` flow: ingest -> validate -> evaluate -> compare -> publish, for one study."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, replace
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import flow, get_run_logger
from prefect.utilities.annotations import quote

from contracts import IngestResult, SiteIngest
from contracts.records import (
    AuditSummary,
    Comparison,
    DomainValidation,
    EligibilityResult,
    PartedTable,
    PartitionResult,
    RunOutputs,
)
from core.packing import pack
from flows.cluster_checks import connected_workers, local_folders
from flows.partition import study_records
from flows.retries import unreadable_site
from flows.runners import fetch_from_workers, shipping_outputs
from flows.tasks import (
    apply_history_task,
    audit_partition_task,
    build_data_docs_task,
    combine_sites_task,
    deliver_outbox_task,
    finish_validation_task,
    ingest_sites_task,
    list_sites_task,
    owe_digest_task,
    partition_label,
    promote_task,
    publish_task,
    review_task,
    send_digest_task,
    validation_history_task,
    write_outputs_task,
)
from ingestion.window import NightCutoff
from publication import NightlyPublication

if TYPE_CHECKING:
    from flows.study_files import StudyFiles

__all__ = ["AuditSummary", "NothingToAuditError", "ingest_batches", "nightly_audit", "report_location",
           "software_version", "unreadable_site"]

#: ingestion tasks per run: a few per CPU, whatever the number of sites (each task reads a batch of
#: sites; Prefect's cost per task run is paid this many times, not once per site)
INGEST_TASKS = max(4, 2 * (os.cpu_count() or 1))
#: on a Dask cluster, sites per ingestion batch at most: batches are what partitions are made of
SITES_PER_BATCH = 10
#: on a Dask cluster, subjects per partition at most (a worker's memory: about 2.2 GB per 10,000
#: subjects, docs/benchmarks.md "Scale-out"); there are at least as many partitions as workers
PARTITION_SUBJECTS = 10_000


class NothingToAuditError(RuntimeError):
    """No site of the study had a usable delivery: the run publishes nothing and fails."""


def software_version() -> str:
    try:
        return version("screening-audit")
    except Exception:  # running from a source tree without metadata
        return "0+unknown"


def current_run_id() -> str:
    """The Prefect flow run id, or a random id outside a flow run (a plain function call in tests)."""
    import uuid

    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else uuid.uuid4().hex


def ingest_batches(sites: list[str], tasks: int = INGEST_TASKS) -> list[list[str]]:
    """`sites` in at most `tasks` consecutive batches of nearly equal size (in their order)."""
    count = max(1, min(tasks, len(sites)))
    size, extra = divmod(len(sites), count)
    bounds = [i * size + min(i, extra) for i in range(count + 1)]
    return [sites[bounds[i]:bounds[i + 1]] for i in range(count) if bounds[i] < bounds[i + 1]]


def _ingest_one_batch_at_a_time(landing: str) -> bool:
    """True when concurrent ingestion batches would only compete for one process's CPU.

    A local landing folder is read at disk speed: the batches' work is Python and small polars
    calls, which threads of one process cannot run in parallel (the GIL, and polars' own thread
    pool shared by all of them; measured in docs/benchmarks.md). From S3 every request waits on the
    network, so concurrent batches hide that latency; on Dask each batch has its own process.
    """
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    context = FlowRunContext.get()
    in_threads = context is None or isinstance(context.task_runner, ThreadPoolTaskRunner)
    return in_threads and not landing.startswith("s3://")


def _run_name() -> str:
    from prefect.runtime import flow_run

    from flows.config import scheduled_audit_date

    params = flow_run.parameters
    as_of = params.get("as_of") or scheduled_audit_date(params.get("timezone") or "UTC").isoformat()
    return f"{params.get('study', 'SZ003')}-as-of-{as_of}"


def report_location(reports: str, prefix: str) -> str:
    """Where a reader finds the run's outputs: an s3:// URI or a local folder path."""
    if reports.startswith("s3://"):
        return f"{reports.rstrip('/')}/{prefix}"
    return str(Path(reports.removeprefix("file://")).expanduser().resolve() / prefix)


@flow(name="nightly_audit", flow_run_name=_run_name, log_prints=False, timeout_seconds=6 * 3600)
def nightly_audit(
    landing: str,
    reports: str,
    study: str = "SZ003",
    protocol: str | None = None,
    as_of: str | None = None,
    endpoint_url: str | None = None,
    timezone: str = "UTC",
    expected_sites: list[str] | None = None,
    lease_expiry_minutes: float = 5.0,
    units: str | None = None,
    process_checks: str | None = None,
    policy: str | None = None,
    report_link_hours: float = 24.0,
    outbox: str | None = None,
    digest: dict | None = None,
) -> AuditSummary:
    """Audit one study as of one date: every site's newest complete delivery, end to end.

    `landing` and `reports` are each an `s3://bucket/prefix` or a local folder; `endpoint_url`
    (or `AWS_ENDPOINT_URL`) points boto3 at any S3-compatible endpoint.

    `timezone` is the study's: without `as_of`, the audit date is the run's scheduled date there.
    `expected_sites`: a listed site without a folder in the landing area is reported as not audited.
    `outbox` (a URI): each site's query files are also written there, per site and night. `digest`
    (flows.config.DigestConfig as a dict): the morning message, sent once the reports are published;
    a failed send is a warning and is retried by the next run.
    One audit at a time per study: the run holds a lease on the reports location, renewed while it runs;
    a lease not renewed for `lease_expiry_minutes` (or whose holder ended on this host) is taken over. The
    run publishes through a staging prefix, promoted through a journal only when everything succeeded
    (publication/, docs/operations.md); the outbox and the digest follow the promotion, still under the
    lease. The report's link (Prefect artifact) is presigned for `report_link_hours` on S3.

    `protocol` is a version file (its siblings with the same id are the other versions) or a folder of
    version files; `units`, `process_checks` and `policy` name the study's own unit catalog, process
    checks and discrepancy policy (None: the bundled ones). Each is read before anything else, so a
    malformed file stops the run with its file and line before the study is locked. The protocol must
    be the study's own (contracts.protocol.check_study_protocol); its id and TIVERS are the run's first
    log line. A storage failure names the study and whether the URI is its landing or its reports location.
    """
    from contracts.protocol import check_study_protocol
    from flows.config import delivery_cutoff, scheduled_audit_date
    from flows.study_files import load_study_files
    from publication import nightly_publication
    from storage import StorageError, open_store

    logger = get_run_logger()
    files = load_study_files(protocol, units, process_checks, policy, endpoint_url=endpoint_url)
    check_study_protocol(study, files.protocol, protocol)
    logger.info("study %s: protocol %s, TIVERS %s (%s)", study, files.protocol.id, files.protocol.tivers,
                files.protocol.path)
    as_of_date = date.fromisoformat(as_of) if as_of else scheduled_audit_date(timezone)
    _check_cluster(landing, reports)
    try:
        with nightly_publication(open_store(reports, endpoint_url), study, as_of_date, run_id=current_run_id(),
                                 expiry=timedelta(minutes=lease_expiry_minutes), logger=logger) as publication:
            # read under the study's lease, and a storage error on the reports names the study and location
            cutoff = NightCutoff(delivery_cutoff(as_of_date, timezone),
                                 _seen_by_past_night(reports, endpoint_url, study, as_of_date))
            return _audit(landing, reports, study, files, as_of_date, endpoint_url, expected_sites, publication,
                          cutoff, timedelta(hours=report_link_hours), outbox, digest)
    except StorageError as error:
        raise error.in_context(storage_context(error, study, landing, reports)) from error


def _seen_by_past_night(reports: str, endpoint_url: str | None, study: str,
                        as_of: date) -> dict[str, dict[str, str]] | None:
    """For a re-run of a past night (a later night is published): the sites and delivery folders its published run
    manifest lists (ingestion.window), logged; None otherwise."""
    from review.runs import seen_by_past_night
    from storage import open_store

    seen = seen_by_past_night(open_store(reports, endpoint_url), study, as_of)
    if seen is not None:
        get_run_logger().info("re-run of the past night %s: only the %d sites and %d delivery folders its published "
                              "run manifest lists are audited", as_of, len(seen),
                              sum(len(folders) for folders in seen.values()))
    return seen


def storage_context(error, study: str, landing: str, reports: str) -> str:
    """`study SZ003, landing` or `study SZ003, reports`: which configured location a storage error is about.

    The longer root wins, for a landing and reports prefix in one bucket.
    """
    def root(uri: str) -> str:
        return uri.rstrip("/") if uri.startswith("s3://") else report_location(uri, "").rstrip("/")

    roots = sorted(((root(landing), "landing"), (root(reports), "reports")), key=lambda item: -len(item[0]))
    role = next((name for uri, name in roots if error.where.startswith(uri)), "")
    return f"study {study}, {role}" if role else f"study {study}"


def report_link(reports: str, endpoint_url: str | None, key: str, lifetime: timedelta) -> str:
    """A URL that opens the run's report.html (storage's presigned link), or "" when none can be signed.

    The link is a convenience (Prefect artifact, command line): a night never fails over it.
    """
    from storage import StorageError, open_store

    try:
        return open_store(reports, endpoint_url).presigned_url(f"{key}/report.html", lifetime)
    except (StorageError, ValueError) as error:
        get_run_logger().warning("no link to the report: %s", error)
        return ""


def ingest_study(landing: str, study: str, endpoint_url: str | None, expected_sites: list[str] | None,
                 cutoff: NightCutoff) -> IngestResult:
    """Every site's newest complete delivery before `cutoff`, combined in the flow's process
    (NothingToAuditError when no site has one): what-if's ingestion (the night's is `audit_sites`)."""
    sites, missing_sites = _sites_to_audit(landing, study, endpoint_url, expected_sites, cutoff)
    batches = _ingest_here(landing, study, sites, endpoint_url, cutoff)
    _check_something_to_audit(study, landing, sites, missing_sites, _not_audited(batches))
    # quote(): the stages hand over large values that hold no future; Prefect would otherwise walk every
    # element of them before each task (docs/benchmarks.md). Only in direct calls, which run in the
    # flow's thread: a task runner such as Dask does not unwrap quote() in what it ships to its workers.
    ingest = combine_sites_task(study, quote([site for batch in batches for site in batch]))
    del batches  # the per-site frames are in `ingest` now: let them go (peak memory)
    ingest.sites_not_audited.update(missing_sites)
    return ingest


def _ingest_here(landing: str, study: str, sites: list[str], endpoint_url: str | None,
                 cutoff: NightCutoff) -> list[list[SiteIngest]]:
    """The sites ingested in batches whose results come to the flow's process (threads)."""
    if _ingest_one_batch_at_a_time(landing):
        return [ingest_sites_task(landing, study, batch, endpoint_url, cutoff=cutoff)
                for batch in ingest_batches(sites)]
    futures = [ingest_sites_task.submit(landing, study, batch, endpoint_url, cutoff=cutoff)
               for batch in ingest_batches(sites)]
    return [future.result() for future in futures]


def _not_audited(batches: list[list[SiteIngest]]) -> dict[str, str]:
    from ingestion.combine import not_audited_reason

    return {site.site: not_audited_reason(site) for batch in batches for site in batch if not site.audited}


def audit_sites(landing: str, study: str, files: StudyFiles, as_of_date: date, endpoint_url: str | None,
                expected_sites: list[str] | None, cutoff: NightCutoff,
                ) -> tuple[IngestResult, list[DomainValidation], EligibilityResult, Comparison, PartedTable | None]:
    """Every site ingested, validated, evaluated and compared, in partitions where the runner allows.

    With threads the study is one partition, audited in the flow's process. On a Dask cluster the
    sites are ingested in batches on the workers, which keep the rows; the flow receives each batch's
    index only (ingestion.partition.BatchIndex), plans partitions of whole sites with every subject's
    rows in one of them, and each partition is audited on a worker next to its batches
    (flows/partition.py). What comes back is small: the study's records without its delivered rows
    (`ingest.domains` is empty), the validation parts of each domain, eligibility and comparison, and on a
    cluster the eligibility table in its partitions' parts (reporting.parted; else None).
    """
    sites, missing_sites = _sites_to_audit(landing, study, endpoint_url, expected_sites, cutoff)
    workers = _cluster_workers()
    if workers is None:
        results = _audit_here(landing, study, sites, missing_sites, files, as_of_date, endpoint_url, cutoff)
    else:
        results = _audit_on_cluster(landing, study, sites, missing_sites, files, as_of_date, endpoint_url, cutoff,
                                    workers)
    ingest, parts, eligibility, comparison, table = study_records(study, results)
    ingest.sites_not_audited.update(missing_sites)
    return ingest, parts, eligibility, comparison, table


def _audit_here(landing: str, study: str, sites: list[str], missing_sites: dict[str, str], files: StudyFiles,
                as_of_date: date, endpoint_url: str | None, cutoff: NightCutoff) -> list[PartitionResult]:
    """Threads: the flow's process holds the rows anyway; the study is one partition."""
    batches = _ingest_here(landing, study, sites, endpoint_url, cutoff)
    _check_something_to_audit(study, landing, sites, missing_sites, _not_audited(batches))
    result = audit_partition_task(study, quote(batches), quote(files), as_of_date)  # quote(): see ingest_study
    del batches  # the rows are released once the partition returns
    return [result]


def _audit_on_cluster(landing: str, study: str, sites: list[str], missing_sites: dict[str, str],
                      files: StudyFiles, as_of_date: date, endpoint_url: str | None, cutoff: NightCutoff,
                      workers: int) -> list[PartitionResult]:
    """Dask: batches ingested on the workers stay there, compressed (futures); partitions are audited next to them."""
    from ingestion.partition import plan_partitions, study_schemas

    count = max(INGEST_TASKS, 4 * workers, math.ceil(len(sites) / SITES_PER_BATCH))
    batch_futures = [ingest_sites_task.submit(landing, study, batch, endpoint_url, cutoff=cutoff, packed=True)
                     for batch in ingest_batches(sites, count)]
    indexes = fetch_from_workers(batch_futures, "index")  # packed with the batch; its rows stay there
    _check_something_to_audit(study, landing, sites, missing_sites,
                              {site: why for index in indexes for site, why in index.not_audited.items()})
    plan = plan_partitions(indexes, max_subjects=PARTITION_SUBJECTS, min_partitions=workers)
    schemas = study_schemas(indexes)
    get_run_logger().info("%d sites in %d batches, audited in %d partitions on %d Dask workers", len(sites),
                          len(indexes), len(plan), workers)
    partition_futures = [audit_partition_task.submit(
        study, [batch_futures[i] for i in group], files, as_of_date, schemas,
        label=partition_label([site for i in group for site in indexes[i].sites])) for group in plan]
    del batch_futures  # the partitions hold what they need; the workers free each batch once used
    return [future.result() for future in partition_futures]


def _sites_to_audit(landing: str, study: str, endpoint_url: str | None, expected_sites: list[str] | None,
                    cutoff: NightCutoff) -> tuple[list[str], dict[str, str]]:
    """The site folders of the landing area (for a re-run of a past night, those the night knew), and the expected
    sites without one (with the report's reason)."""
    from flows.config import site_coverage

    sites = cutoff.sites(list_sites_task(landing, study, endpoint_url))
    missing_sites, unexpected_sites = site_coverage(expected_sites or (), sites)
    if unexpected_sites:
        get_run_logger().warning("sites %s delivered but are not in the study's expected sites; audited anyway",
                                 ", ".join(unexpected_sites))
    return sites, missing_sites


def _check_something_to_audit(study: str, landing: str, sites: list[str], missing_sites: dict[str, str],
                              not_audited: dict[str, str]) -> None:
    """NothingToAuditError when no site has a usable delivery, before any validation is paid for."""
    if any(site not in not_audited for site in sites):
        return
    reasons = [f"{site}: {why}" for site, why in sorted({**not_audited, **missing_sites}.items())]
    if not sites:  # the root exists and is not the study's own folder (list-sites checked): no delivery yet
        reasons.insert(0, f"no site folder under {study}/")
    raise NothingToAuditError(f"nothing to audit for {study} in {landing}: " + "; ".join(reasons))


def _dask_runner():
    """The flow run's `DaskTaskRunner`, or None when its tasks run in threads of the flow's process."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    return runner if runner is not None and type(runner).__name__ == "DaskTaskRunner" else None


def _cluster_workers() -> int | None:
    """The Dask cluster's workers when the flow runs on one (None: threads in the flow's process).

    Never 0: a scheduler without a worker is waited for a bounded time, then the night fails
    (flows.cluster_checks.DaskClusterError) rather than queueing tasks nobody runs.
    """
    runner = _dask_runner()
    return None if runner is None else connected_workers(runner, get_run_logger())


def _check_cluster(landing: str, reports: str) -> None:
    """On Dask, before the study's lease is taken: the cluster answers and has a worker, or the night fails.

    With a scheduler's address, a landing or reports folder of this machine works only for workers on
    this machine: a warning says so (a cluster of several machines needs them on object storage).
    """
    runner = _dask_runner()
    if runner is None:
        return
    logger = get_run_logger()
    if runner.address:
        for name, uri, verb in local_folders(landing=(landing, "read"), reports=(reports, "write")):
            logger.warning("%s %s is a folder of this machine: Dask workers on other machines cannot %s it "
                           "(workers on this machine can); a cluster of several machines needs it on S3 or MinIO "
                           '(docs/operations.md "Scale-out with Dask")', name, uri, verb)
    _cluster_workers()


def _audit(landing: str, reports: str, study: str, files: StudyFiles, as_of_date: date,
           endpoint_url: str | None, expected_sites: list[str] | None, publication: NightlyPublication,
           cutoff: NightCutoff, link_lifetime: timedelta, outbox: str | None = None,
           digest: dict | None = None) -> AuditSummary:
    """The run itself, holding the study's lease; outputs go to `publication.staging`, then promoted."""
    from reporting import assemble_outputs, combine_findings, run_summary
    from reporting.history import looked_at_again, partly_read
    from reporting.risk import older_delivery_notes

    logger = get_run_logger()
    ingest, parts, eligibility, comparison, table = audit_sites(landing, study, files, as_of_date, endpoint_url,
                                                                expected_sites, cutoff)
    with tempfile.TemporaryDirectory(prefix="screening-audit-") as tmp:
        validation = finish_validation_task(quote(parts))
        validation.data_docs = build_data_docs_task(quote(parts), Path(tmp))
        del parts
        deliveries = [asdict(d) for d in ingest.deliveries]
        # what tonight's audit did not look at is carried, not resolved: discrepancies and data-quality findings alike;
        # a site audited on an older delivery, or without a rejected file, was looked at only in part
        partial = {**partly_read(ingest.findings, deliveries), **older_delivery_notes(deliveries)}
        looked_again = looked_at_again(ingest.sites_audited, deliveries) - set(partial)
        discrepancies = apply_history_task(quote(comparison.discrepancies), reports, endpoint_url, study,
                                           as_of_date, quote(comparison.subjects.select("SITEID", "USUBJID")),
                                           looked_again, partial)
        findings, resolved = validation_history_task(
            quote(combine_findings(ingest, validation)), reports, endpoint_url, study, as_of_date, looked_again)
        review = review_task(quote(discrepancies), quote(findings), reports, endpoint_url, study, as_of_date,
                             quote(resolved))

        outputs = assemble_outputs(study=study, as_of=as_of_date, ingest=ingest, validation=validation,
                                   eligibility=eligibility, comparison=comparison, discrepancies=discrepancies,
                                   software_version=software_version(), policy=files.policy, findings=findings,
                                   review=review, recovery=publication.recovery, eligibility_table=table,
                                   validation_resolved=resolved, protocol=files.protocol)
        written = None
        if table is not None:  # a cluster run: the outputs are rendered on a worker, next to nothing else
            # no path of this machine goes to the worker: the Data Docs are named by where they are published
            shipped = pack(replace(outputs, data_docs=Path("data_docs") if outputs.data_docs is not None else None))
            with shipping_outputs():
                rendering = write_outputs_task.submit(shipped, reports, endpoint_url, publication.staging)
            written = rendering.result()
            del shipped
        publish_task(quote(outputs), quote(publication), written)
        if digest and not _past_night(reports, endpoint_url, outputs) and _still_ours(publication):
            owe_digest_task(quote(outputs), reports, endpoint_url, publication.final, digest, publication.run_id)
        published = promote_task(quote(publication))

    location = report_location(reports, publication.final)
    summary = run_summary(outputs, ingest.sites_not_audited, location, published)
    summary = replace(summary, report_link=report_link(reports, endpoint_url, publication.final, link_lifetime))
    logger.info("audit of %s as of %s: %d sites, %d subjects, %d important, %d query discrepancies; report at %s",
                study, summary.as_of, summary.sites_audited, summary.subjects, summary.important,
                summary.queries, summary.report)
    try:
        from reporting import publish_prefect_artifacts

        publish_prefect_artifacts(outputs, summary.report_link or summary.report)
    except Exception as error:  # artifacts are a convenience; never fail a night over them
        logger.warning("could not create Prefect artifacts: %s", type(error).__name__)
    _after_publication(outputs, reports, endpoint_url, publication, outbox, digest)
    return summary


def _after_publication(outputs: RunOutputs, reports: str, endpoint_url: str | None, publication: NightlyPublication,
                       outbox: str | None, digest: dict | None) -> None:
    """What reaches people once the night is published: the site outbox, then the morning digest.

    Only after `promote_task` returned, so only for a complete night; still under the lease (each step
    first checks that it is ours), so no other run of the study writes the outbox or the pending digests
    at the same time. Neither can fail the audit, whose reports are published (exit 1 means nothing was
    published): a failure is an error in the log. A run killed after its promotion published the night
    but may not have delivered these: a re-run of the night delivers them, unless a later night has been
    published meanwhile (a re-run of a past night sends neither; docs/operations.md).
    """
    logger = get_run_logger()
    if (outbox or digest) and _past_night(reports, endpoint_url, outputs):
        # the sites and the data managers have a later night's already: an old night's query files would replace
        # that night's in the outbox with today's earlier answers, and its digest report today's backlog as news
        logger.info("a re-run of the past night %s: the site outbox and the digest are not sent again (a later "
                    "night is published)", outputs.as_of)
        return
    if outbox and _still_ours(publication):
        try:
            deliver_outbox_task(reports, endpoint_url, publication.final, outbox, outputs.study, outputs.as_of)
        except Exception as error:
            logger.error("the night is published, but the site outbox was not delivered (%s: %s); a re-run of "
                         "the night delivers it, before a later night is published", type(error).__name__, error)
    if digest and _still_ours(publication):
        try:
            send_digest_task(quote(outputs), reports, endpoint_url, publication.final, digest)
        except Exception as error:
            logger.error("the night is published, but its digest was not sent (%s: %s); a re-run of the night "
                         "sends it, before a later night is published", type(error).__name__, error)


def _past_night(reports: str, endpoint_url: str | None, outputs: RunOutputs) -> bool:
    """Whether a later night than `outputs`' is published (storage errors: no, so that a night is not left
    undelivered over a failed listing)."""
    from review.runs import later_run_exists
    from storage import StorageError, open_store

    try:
        return later_run_exists(open_store(reports, endpoint_url), outputs.study, outputs.as_of)
    except StorageError:
        return False


def _still_ours(publication: NightlyPublication) -> bool:
    """Whether the run still holds the study's lease (renewing it if due); a warning when it cannot say so."""
    from publication import LeaseLostError
    from storage import StorageError

    try:
        publication.lease.ensure_held()
    except (LeaseLostError, StorageError) as error:  # another run may hold the study now: it delivers its own
        get_run_logger().warning("the night is published, but this run no longer holds the lease of %s (%s), so "
                                 "it delivers nothing more; a re-run of the night does", publication.study,
                                 type(error).__name__)
        return False
    return True
