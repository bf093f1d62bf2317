"""Thin Prefect tasks, one per stage function, with retries only where I/O can fail transiently.

Timeouts are not set per task: Prefect cannot interrupt a blocking call in a worker thread, so
the real limits are boto3's connect/read timeouts on every S3 call and the flow's own timeout.
Tasks never hold business logic: they open stores from URIs (so they can run on any worker),
call one stage function and log counts, never record contents. Results are not cached or
persisted: the inputs are clinical data and every night must recompute from the landing area.
"""

from __future__ import annotations

import gc
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from contracts import IngestResult, SiteIngest, ValidationResult
from contracts.protocol import Protocol
from contracts.records import (
    DomainValidation,
    EligibilityResult,
    PackedSites,
    PartitionResult,
    ReviewResult,
    RunOutputs,
)
from contracts.units import UnitCatalog
from core.packing import Packed
from flows.retries import IO_RETRIES, site_or_unreadable
from ingestion.window import NightCutoff
from notify import NightDelivery
from publication import NightlyPublication
from storage import open_store

if TYPE_CHECKING:
    from contracts.records import Digest
    from flows.study_files import StudyFiles
    from reporting.history import ValidationHistory
    from storage import Store

#: retries with backoff, only for storage and network errors (flows/retries.py); bad data fails at once
_IO_RETRIES = IO_RETRIES


@task(name="list-sites", task_run_name="list-sites", cache_policy=NO_CACHE, **_IO_RETRIES)
def list_sites_task(landing: str, study: str, endpoint_url: str | None) -> list[str]:
    from ingestion import list_sites

    sites = list_sites(open_store(landing, endpoint_url), study)
    get_run_logger().info("study %s: %d site folders in the landing area", study, len(sites))
    return sites


def ingest_run_name(sites: list[str]) -> str:
    """The run name of an ingestion task: the sites it holds (`ingest-sites-101-132`, `ingest-site-101`)."""
    if len(sites) == 1:
        return f"ingest-site-{sites[0]}"
    return f"ingest-sites-{sites[0]}-{sites[-1]}" if sites else "ingest-sites-none"


def _ingest_run_name() -> str:
    from prefect.runtime import task_run

    return ingest_run_name(list(task_run.parameters.get("sites") or []))


@task(name="ingest-sites", task_run_name=_ingest_run_name, cache_policy=NO_CACHE)
def ingest_sites_task(landing: str, study: str, sites: list[str], endpoint_url: str | None,
                      now: datetime | None = None, cutoff: NightCutoff | None = None,
                      packed: bool = False) -> list[SiteIngest] | PackedSites:
    """A batch of sites: each read with its own retries (flows/retries.py), then their rows checked at once.

    No Prefect retries here: a retry of the whole batch would read every site again for one flaky one.
    `packed`: the rows compressed (ingestion.partition.pack_sites), for a Dask worker that keeps the
    batch until its partition is audited.
    """
    from ingestion import finish_sites, read_site

    store = open_store(landing, endpoint_url)
    logger = get_run_logger()

    def retry_note(site: str):
        return lambda error, wait: logger.warning("site %s: storage error (%s), trying again in %s s",
                                                  site, type(error).__name__, wait)

    def read(site: str):
        if cutoff is None:
            return read_site(store, study, site, now=now)
        return read_site(store, study, site, now=now, cutoff=cutoff.at, seen=cutoff.folders(site))

    reads = [site_or_unreadable(lambda site=site: read(site), study, site, on_retry=retry_note(site)) for site in sites]
    results = finish_sites(study, reads)
    for result in results:
        if not result.audited:
            logger.warning("site %s is not audited (%d findings)", result.site, result.findings.height)
    logger.info("%d sites (%d audited): %d rows, %d findings", len(results), sum(r.audited for r in results),
                sum(frame.height for r in results for frame in r.frames.values()),
                sum(r.findings.height for r in results))
    if packed:
        from ingestion.partition import pack_sites

        return pack_sites(results)
    return results


def partition_label(sites: list[str]) -> str:
    """`sites-101-125` or `site-101`: which sites a partition holds, for its task run's name."""
    if len(sites) == 1:
        return f"site-{sites[0]}"
    return f"sites-{sites[0]}-{sites[-1]}" if sites else "no-sites"


def release_garbage() -> None:
    """Free what tasks of this process left in reference cycles: before a heavy task's peak, and after it.

    A Dask worker runs as a service, night after night: frames that a finished task left in cycles stay
    allocated until Python's rare full collection, about 250 MB on a worker after an n40k night
    (docs/benchmarks.md), and would add to the next partition's peak, or be held all day. One full
    collection costs a fraction of a second against a partition's ten.
    """
    gc.collect()


@task(name="audit-partition", task_run_name="audit-{label}", cache_policy=NO_CACHE)
def audit_partition_task(study: str, batches: list[list[SiteIngest]] | list[PackedSites], files: StudyFiles,
                         as_of: date,
                         schemas: dict[str, dict[str, pl.DataType]] | None = None, label: str = "study",
                         ) -> PartitionResult:
    """Combine, validate, evaluate and compare a partition's sites where its rows are; small results back.

    `label` names the run (`partition_label`): the batches may still be futures when the name is made."""
    from flows.partition import audit_partition
    from reporting.parted import part_rows

    release_garbage()
    result = audit_partition(study, batches, files, as_of, schemas)
    release_garbage()  # what this partition left: a worker may wait until the next night for its next task
    # one partition of several sends its eligibility rows as a Parquet part, its record's table empty
    rows = (result.eligibility.eligibility.height if result.eligibility_part is None
            else part_rows(result.eligibility_part))
    get_run_logger().info("%d sites: %d validation findings, %d subject x component rows, %d discrepancies",
                          len(result.sites), sum(p.findings.height for p in result.validation),
                          rows, result.comparison.discrepancies.height)
    return result


@task(name="combine-sites", task_run_name="combine-sites", cache_policy=NO_CACHE)
def combine_sites_task(study: str, sites: list[SiteIngest]) -> IngestResult:
    from ingestion import combine_sites

    return combine_sites(study, sites)


@task(name="validate-study", task_run_name="validate-study", cache_policy=NO_CACHE)
def validate_study_task(domains: dict[str, pl.DataFrame], study: str, protocol: Protocol,
                        catalog: UnitCatalog | None = None, unread: pl.DataFrame | None = None) -> ValidationResult:
    """Every domain's suite over all sites, gathered (what-if's validation; a night's is in its partitions)."""
    from expectations import finish_validation, validate_domains

    return finish_validation(validate_domains(domains, study=study, protocol=protocol, catalog=catalog,
                                              unread=unread))


@task(name="finish-validation", task_run_name="finish-validation", cache_policy=NO_CACHE)
def finish_validation_task(parts: list[DomainValidation]) -> ValidationResult:
    """The domains' tables together (the Data Docs are built apart: build_data_docs_task)."""
    from expectations import finish_validation

    result = finish_validation(parts)
    get_run_logger().info("validation: %d findings, %d values excluded, %d rows rejected",
                          result.findings.height, result.exclusions.height, result.rejected.height)
    return result


@task(name="build-data-docs", task_run_name="build-data-docs", cache_policy=NO_CACHE)
def build_data_docs_task(parts: list[DomainValidation], workdir: Path) -> Path | None:
    """The run's Great Expectations Data Docs, built under `workdir` from the domains' suites and results.

    The flow calls it (never submits it), so it runs in the flow's process, next to `workdir`, on Dask
    too; a task of its own so that its second or so of Great Expectations rendering shows in the run's
    records (the benchmark's stage table shows it as a stage of its own).
    """
    from expectations.docs import build_data_docs

    return build_data_docs(parts, workdir)


@task(name="evaluate-eligibility", task_run_name="evaluate-eligibility", cache_policy=NO_CACHE)
def evaluate_task(domains: dict[str, pl.DataFrame], protocol: Protocol, as_of: date,
                  validation: ValidationResult, catalog: UnitCatalog | None = None,
                  unread: pl.DataFrame | None = None) -> EligibilityResult:
    from checks.evaluation import evaluate

    result = evaluate(domains, protocol, as_of, exclusions=validation.exclusions, rejected=validation.rejected,
                      catalog=catalog, unread=unread)
    get_run_logger().info("evaluation: %d subject x component rows", result.eligibility.height)
    return result


@task(name="apply-history", task_run_name="apply-history", cache_policy=NO_CACHE, **_IO_RETRIES)
def apply_history_task(discrepancies: pl.DataFrame, reports: str, endpoint_url: str | None, study: str,
                       as_of: date, evaluated: pl.DataFrame | None = None, looked_again: set[str] | None = None,
                       partial: dict[str, str] | None = None) -> pl.DataFrame:
    """reporting.apply_history: `evaluated` tonight's subjects, `looked_again` the sites audited on all of their
    newest delivery, `partial` the sites audited on less (with their note)."""
    from reporting import apply_history

    return apply_history(discrepancies, open_store(reports, endpoint_url), study=study, as_of=as_of,
                         evaluated=evaluated, looked_again=looked_again, partial=partial)


@task(name="validation-history", task_run_name="validation-history", cache_policy=NO_CACHE, **_IO_RETRIES)
def validation_history_task(findings: pl.DataFrame, reports: str, endpoint_url: str | None, study: str,
                            as_of: date, looked_again: set[str]) -> ValidationHistory:
    from reporting import validation_history

    return validation_history(findings, open_store(reports, endpoint_url), study=study, as_of=as_of,
                              looked_again=looked_again)


@task(name="review", task_run_name="review", cache_policy=NO_CACHE, **_IO_RETRIES)
def review_task(discrepancies: pl.DataFrame, findings: pl.DataFrame, reports: str, endpoint_url: str | None,
                study: str, as_of: date, resolved: pl.DataFrame | None = None) -> ReviewResult:
    """The review ledger: verified, tonight's inbox applied, settled findings with new evidence reopened.
    `resolved`: the data-quality findings gone tonight, which a returned workbook may still answer.

    Retried on storage errors only: a second attempt finds its own work done (a workbook's receipt, a
    finding already reopened) and does not repeat it.
    """
    from review.night import review_night

    result = review_night(discrepancies, findings, open_store(reports, endpoint_url), study=study, as_of=as_of,
                          resolved=resolved)
    logger = get_run_logger()
    ledger = result.ledger
    if not result.verified:
        logger.error("review ledger of %s fails verification: %s", study, "; ".join(ledger.get("problems", [])[:3]))
    refused = sum(receipt.get("status") == "REFUSED" for receipt in result.receipts)
    logger.info("review ledger: %s, %d entries; %d workbook(s) received since the last run, %d of them refused; "
                "%d finding(s) reopened since the last run", ledger.get("status"), ledger.get("entries", 0),
                len(result.receipts), refused, result.reopened.height)
    return result


@task(name="render-outputs", task_run_name="render-outputs", cache_policy=NO_CACHE, **_IO_RETRIES)
def write_outputs_task(outputs: Packed[RunOutputs], reports: str, endpoint_url: str | None,
                       staging: str) -> dict[str, tuple[str, int]]:
    """Render and write the run's outputs (all but the Data Docs and the run manifest) into its staging
    prefix, where the task runs (a Dask worker); what was written, for the flow's seal (sha256, size).

    The flow holds the lease and seals the staging afterwards (publish_task); a run that dies before
    leaves this staging to be removed like any unsealed one. The outputs come packed (core.packing).
    """
    from core.packing import unpack
    from publication.marker import StagingWriter
    from reporting import write_outputs

    release_garbage()
    writer = StagingWriter(open_store(reports, endpoint_url), staging)
    keys = write_outputs(unpack(outputs), writer, staging)
    release_garbage()
    get_run_logger().info("rendered %d objects into %s", len(keys), staging)
    return dict(writer.written)


@task(name="publish", task_run_name="publish", cache_policy=NO_CACHE, **_IO_RETRIES)
def publish_task(outputs: RunOutputs, publication: NightlyPublication,
                 written: dict[str, tuple[str, int]] | None = None) -> list[str]:
    """Write the outputs into the run's staging prefix and seal it with its completion marker.

    Takes the run's `NightlyPublication` (it holds the live lease), so it runs in the flow's process.
    `written`: what `write_outputs_task` already wrote there (on a cluster); only the Data Docs and the
    run manifest are left to write here.
    """
    from reporting import publish
    from storage import join_key

    writer = publication.writer()
    if written is not None:
        writer.adopt(written)
    keys = publish(outputs, writer, publication.staging,
                   written=[join_key(publication.staging, key) for key in written] if written is not None else None)
    writer.seal(study=outputs.study, as_of=outputs.as_of.isoformat(), run_id=publication.run_id)
    get_run_logger().info("staged %d objects under %s", len(keys), publication.staging)
    return keys


@task(name="promote", task_run_name="promote", cache_policy=NO_CACHE, **_IO_RETRIES)
def promote_task(publication: NightlyPublication) -> list[str]:
    """Promote the sealed staging into the published folder (journaled; repeatable after a failure)."""
    return publication.promote()


@task(name="deliver-site-outbox", task_run_name="deliver-site-outbox", cache_policy=NO_CACHE, **_IO_RETRIES)
def deliver_outbox_task(reports: str, endpoint_url: str | None, published: str, outbox: str, study: str,
                        as_of: date) -> list[str]:
    """Each site's query files of the published night into that site's outbox folder."""
    from reporting.outbox import deliver_site_queries

    keys = deliver_site_queries(open_store(reports, endpoint_url), published, open_store(outbox, endpoint_url),
                                study=study, as_of=as_of)
    get_run_logger().info("site outbox: %d files for %d sites", len(keys), len({k.split("/")[1] for k in keys}))
    return keys


def _morning_digest(outputs: RunOutputs, store: Store, published: str, config: dict) -> Digest:
    """The night's digest, its links to the published night's reports."""
    from datetime import timedelta

    from reporting.digest import build_digest
    from review.runs import previous_manifest
    from storage import join_key

    expiry = timedelta(days=float(config.get("link_expiry_days", 7)))
    links = {name: store.presigned_url(join_key(published, name), expiry) for name in ("report.html", "report.xlsx")}
    # the previous published night tells tonight's new site and delivery problems from the continuing ones; when
    # it cannot be read, every problem is told as new rather than the digest lost
    try:
        previous = previous_manifest(store, outputs.study, outputs.as_of)
    except Exception as error:
        get_run_logger().warning("the previous night's run manifest could not be read (%s): every site or delivery "
                                 "problem is told as new in the digest", type(error).__name__)
        previous = None
    return build_digest(outputs, links, previous)


@task(name="owe-digest", task_run_name="owe-digest", cache_policy=NO_CACHE, **_IO_RETRIES)
def owe_digest_task(outputs: RunOutputs, reports: str, endpoint_url: str | None, published: str,
                    config: dict, run_id: str) -> None:
    """Before the promotion: keep the night's digest as owed on every configured channel (notify.pending), so that a
    run killed between its promotion and the send leaves it for the next run, which sends it first (helper-44: the
    next night said "nothing new", and nine new important deviations were never told). The send clears it."""
    from notify import PendingDigests

    digest = _morning_digest(outputs, open_store(reports, endpoint_url), published, config)
    channels = ["email"] * bool(config.get("email_to")) + ["webhook"] * bool(config.get("webhook"))
    if digest.nothing_new and config.get("nothing_new", "send") == "skip":
        return  # the study sends no "nothing new": nothing is owed
    if channels:
        PendingDigests(open_store(reports, endpoint_url), outputs.study).keep(digest, channels, run_id=run_id)


@task(name="send-digest", task_run_name="send-digest", cache_policy=NO_CACHE)
def send_digest_task(outputs: RunOutputs, reports: str, endpoint_url: str | None, published: str,
                     config: dict) -> list[NightDelivery]:
    """The morning digest (and any missed night's) on the study's channels; a failure is a warning and a
    retry by the next run, never a failed audit (docs/operations.md)."""

    from flows.secrets import SecretError, digest_channels
    from notify import PendingDigests, deliver_digest

    logger = get_run_logger()
    store = open_store(reports, endpoint_url)
    digest = _morning_digest(outputs, store, published, config)
    pending = PendingDigests(store, outputs.study)
    try:
        channels = digest_channels(config)
    except SecretError as error:
        pending.keep(digest, ["email"] * bool(config.get("email_to")) + ["webhook"] * bool(config.get("webhook")))
        logger.warning("digest of %s not sent, kept for the next run: %s", digest.as_of, error)
        return [NightDelivery(digest.as_of, [], {"settings": str(error)})]
    outcomes = deliver_digest(digest, channels, pending)
    failed = [o for o in outcomes if o.failed]
    if failed:  # visible on the run's page, not only in its log
        from prefect.artifacts import create_markdown_artifact

        from reporting.artifacts import artifact_key

        lines = [f"- {o.as_of}: not delivered on {', '.join(o.failed)} ({'; '.join(o.failed.values())})"
                 for o in failed]
        create_markdown_artifact("# Morning digest not delivered\n\n" + "\n".join(lines)
                                 + "\n\nKept for the next run, which sends it first.\n",
                                 key=artifact_key(outputs.study, "digest"),
                                 description="digest delivery problems")
    for outcome in outcomes:
        if outcome.failed:
            logger.warning("digest of %s not delivered on %s, kept for the next run: %s", outcome.as_of,
                           ", ".join(outcome.failed), "; ".join(outcome.failed.values()))
        elif outcome.skipped:
            logger.info("digest of %s: nothing new, not sent (the study's setting)", outcome.as_of)
        else:
            logger.info("digest of %s sent by %s", outcome.as_of, ", ".join(outcome.sent))
    return outcomes
