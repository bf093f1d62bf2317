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
from contracts.records import Comparison, DomainValidation, EligibilityResult, PartitionResult

if TYPE_CHECKING:
    from flows.study_files import StudyFiles


def audit_partition(study: str, batches: list[list[SiteIngest]], files: StudyFiles, as_of: date,
                    schemas: dict[str, dict[str, pl.DataType]] | None = None) -> PartitionResult:
    """Combine, validate, evaluate and compare the sites of `batches`; their rows stay here.

    `schemas`: the study's columns per domain when the partition is one of several (None: it is the
    whole study).
    """
    from checks.comparison import compare
    from checks.evaluation import evaluate
    from expectations import finish_validation, validate_domains
    from ingestion import combine_sites

    sites = [site for batch in batches for site in batch]
    ingest = combine_sites(study, sites, schemas)
    parts = validate_domains(ingest.domains, study=study, protocol=files.protocol, catalog=files.catalog)
    validation = finish_validation(parts)
    eligibility = evaluate(ingest.domains, files.protocol, as_of, exclusions=validation.exclusions,
                           rejected=validation.rejected, catalog=files.catalog)
    comparison = compare(eligibility, ingest.domains, files.protocol, as_of, exclusions=validation.exclusions,
                         rejected=validation.rejected, process_checks=files.process_checks, policy=files.policy,
                         catalog=files.catalog)
    return PartitionResult(sites=[dataclasses.replace(site, frames={}) for site in sites], validation=parts,
                           eligibility=eligibility, comparison=comparison)


def study_records(study: str, results: list[PartitionResult],
                  ) -> tuple[IngestResult, list[DomainValidation], EligibilityResult, Comparison]:
    """The study's ingestion (without rows), validation parts (one per domain), eligibility and
    comparison from its partitions' results, as one audit of the whole study gives them."""
    from core.stack import stack_records
    from expectations import merge_parts
    from ingestion import combine_sites

    ingest = combine_sites(study, [site for result in results for site in result.sites])
    parts = merge_parts([part for result in results for part in result.validation])
    return (ingest, parts, stack_records([r.eligibility for r in results]),
            stack_records([r.comparison for r in results]))
