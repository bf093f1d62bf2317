"""The audit of one partition of a study, up to the comparison, and the study's records from its parts.

Scale-out (issue 17, docs/operations.md): the sites are ingested in batches; the batches are grouped
into partitions (ingestion.partition: consecutive whole sites, every subject's rows in one partition);
each partition is combined, validated, evaluated and compared where its batches are (a Dask worker, or
the flow's own process with the thread runner) and only its small results come back
(`PartitionResult`: findings, subject and eligibility rows, validation results as data). The flow
stacks them (`study_records`) and goes on with history, review and publication as for one piece.
These are plain compositions of the stages' own functions; the tasks in flows/tasks.py wrap them.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from contracts import IngestResult, SiteIngest
from contracts.records import (
    Comparison,
    DomainValidation,
    EligibilityResult,
    PackedSites,
    PartedTable,
    PartitionResult,
)

if TYPE_CHECKING:
    from flows.study_files import StudyFiles


def audit_partition(study: str, batches: list[list[SiteIngest]] | list[PackedSites], files: StudyFiles, as_of: date,
                    schemas: dict[str, dict[str, pl.DataType]] | None = None) -> PartitionResult:
    """Combine, validate, evaluate and compare the sites of `batches`; their rows stay here.

    `schemas`: the study's columns per domain when the partition is one of several (None: it is the
    whole study). One of several, it returns its eligibility rows as a part of the published table
    (reporting.parted.table_part, a few MB per 10,000 subjects) and no other frame with a row per
    subject x component or criterion (the evaluation's criteria, DM reading and derived values, the
    site's checklist: the comparison, done here, was their only reader).
    """
    from checks.comparison import compare
    from checks.evaluation import evaluate
    from expectations import finish_validation, validate_domains
    from ingestion import combine_sites
    from ingestion.partition import unpack_sites
    from ingestion.unread import unread_in

    sites = [site for batch in batches for site in unpack_sites(batch)]
    ingest = combine_sites(study, sites, schemas)
    # the sites' own frames are not read again: dropped now, the combined frames keep what they share
    sites = [dataclasses.replace(site, frames={}) for site in sites]
    unread = unread_in(ingest)
    parts = validate_domains(ingest.domains, study=study, protocol=files.protocol, catalog=files.catalog,
                             unread=unread)
    validation = finish_validation(parts)
    eligibility = evaluate(ingest.domains, files.protocol, as_of, exclusions=validation.exclusions,
                           rejected=validation.rejected, catalog=files.catalog, unread=unread)
    comparison = compare(eligibility, ingest.domains, files.protocol, as_of, exclusions=validation.exclusions,
                         rejected=validation.rejected, process_checks=files.process_checks, policy=files.policy,
                         catalog=files.catalog, unread=unread)
    if schemas is None:
        return PartitionResult(sites=sites, validation=parts, eligibility=eligibility, comparison=comparison)
    from reporting.parted import table_part

    part = table_part(eligibility.eligibility, "eligibility")
    eligibility = dataclasses.replace(eligibility, eligibility=eligibility.eligibility.clear(),
                                      criteria=eligibility.criteria.clear(), subject_dm=eligibility.subject_dm.clear(),
                                      derived=eligibility.derived.clear(), reference=eligibility.reference.clear())
    comparison = dataclasses.replace(comparison, checklist=comparison.checklist.clear())
    return PartitionResult(sites=sites, validation=parts, eligibility=eligibility, comparison=comparison,
                           eligibility_part=part)


def study_records(study: str, results: list[PartitionResult],
                  ) -> tuple[IngestResult, list[DomainValidation], EligibilityResult, Comparison, PartedTable | None]:
    """The study's ingestion (without rows), validation parts (one per domain), eligibility and
    comparison from its partitions' results, as one audit of the whole study gives them, and the
    eligibility table in parts when the partitions returned it so (else None: it is in the record)."""
    from core.stack import stack_records
    from expectations import merge_parts
    from ingestion import combine_sites

    ingest = combine_sites(study, [site for result in results for site in result.sites])
    parts = merge_parts([part for result in results for part in result.validation])
    table = (PartedTable("eligibility", [r.eligibility_part for r in results if r.eligibility_part is not None])
             if any(r.eligibility_part is not None for r in results) else None)
    return (ingest, parts, stack_records([r.eligibility for r in results]),
            stack_records([r.comparison for r in results]), table)
