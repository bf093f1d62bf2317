"""What one run publishes, assembled from the stages' records: the run's `RunOutputs` and its summary.

The flow hands over what each stage returned; this module decides what of it the sponsor sees (the
comparison's subjects, the evaluation's eligibility rows, ingestion's and validation's findings in one
`validation` table so that a site sees every data problem together) and what the run manifest
accounts for. Kept out of the flow so that the flow only wires stages together.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from contracts import Evaluation, IngestResult, ValidationResult
from contracts.policy import Policy
from contracts.records import AuditSummary, Comparison, EligibilityResult, RunOutputs
from reporting.manifest import build_run_manifest
from reporting.summary import headline


def assemble_outputs(*, study: str, as_of: date, ingest: IngestResult, validation: ValidationResult,
                     eligibility: EligibilityResult, comparison: Comparison, discrepancies: pl.DataFrame,
                     software_version: str, policy: Policy | None = None) -> RunOutputs:
    """The run's outputs: `discrepancies` is the comparison's table after the history was applied;
    `policy` the discrepancy policy the comparison graded with (its DV terms are published)."""
    evaluation = Evaluation(
        subjects=comparison.subjects,
        eligibility=eligibility.eligibility,
        discrepancies=discrepancies,
        protocol_id=eligibility.protocol_id,
        protocol_version=eligibility.protocol_version,
        rows_evaluated=eligibility.rows_evaluated,
    )
    manifest = build_run_manifest(study=study, as_of=as_of, ingest=ingest, validation=validation,
                                  evaluation=evaluation, software_version=software_version)
    return RunOutputs(
        study=study,
        as_of=as_of,
        protocol_id=evaluation.protocol_id,
        protocol_version=evaluation.protocol_version,
        subjects=evaluation.subjects,
        eligibility=evaluation.eligibility,
        discrepancies=discrepancies,
        validation=pl.concat([ingest.findings, validation.findings], how="diagonal_relaxed"),
        run_manifest=manifest,
        data_docs=validation.data_docs,
        expectations=validation.expectations,
        policy=policy,
    )


def run_summary(outputs: RunOutputs, sites_not_audited: dict[str, str], location: str,
                published: list[str]) -> AuditSummary:
    """The headline of a published run, for the command line and the flow's return value."""
    head = headline(outputs)
    return AuditSummary(
        study=outputs.study,
        as_of=head.as_of,
        protocol=f"{outputs.protocol_id} {outputs.protocol_version}",
        sites_audited=head.sites_audited,
        sites_not_audited=dict(sites_not_audited),
        subjects=head.subjects_screened,
        enrolled=head.enrolled,
        important=head.important,
        queries=head.queries,
        new=head.new,
        report=f"{location}/report.html",
        outputs=location,
        published=published,
    )
