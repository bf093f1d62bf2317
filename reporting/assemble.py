"""What one run publishes, assembled from the stages' records: the run's `RunOutputs` and its summary.

The flow hands over what each stage returned; this module decides what of it the sponsor sees (the
comparison's subjects, the evaluation's eligibility rows, ingestion's and validation's findings in one
`validation` table so that a site sees every data problem together) and what the run manifest
accounts for. Kept out of the flow so that the flow only wires stages together.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from contracts import Evaluation, IngestResult, ValidationResult, is_open
from contracts.enums import Severity
from contracts.policy import Policy
from contracts.protocol import Protocol
from contracts.records import (
    AuditSummary,
    Comparison,
    EligibilityResult,
    PartedTable,
    ReviewResult,
    RunOutputs,
    RunRecovery,
)
from contracts.tables import REVIEW
from reporting.manifest import build_run_manifest
from reporting.summary import headline
from review.fold import DV_UNKNOWN_MARK, annotate
from review.machine import load_machine


def combine_findings(ingest: IngestResult, validation: ValidationResult) -> pl.DataFrame:
    """Ingestion's and validation's findings in one table, so that a site sees every data problem together."""
    return pl.concat([ingest.findings, validation.findings], how="diagonal_relaxed")


def with_review(discrepancies: pl.DataFrame, findings: pl.DataFrame,
                review: ReviewResult) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Both tables with where the sponsor's review stands (review.fold.annotate). When the ledger failed
    verification its states are not used: REVIEW_STATE stays empty and DV keeps every important finding,
    marked REVIEW UNKNOWN, rather than a state guessed from a broken chain."""
    machine = load_machine()
    # DV_REVIEW says how a finding stands in DV, which has no RESOLVED finding (reporting.dv): empty on those rows
    in_dv = is_open() if "STATUS" in discrepancies.columns else pl.lit(True)
    if review.verified:
        annotated = annotate(discrepancies, review.states, machine, severity="SEVERITY")
        return (annotated.with_columns(pl.when(in_dv).then(pl.col("DV_REVIEW")).alias("DV_REVIEW")),
                annotate(findings, review.states, machine))
    unknown = [pl.lit(None, pl.String).alias(c) for c in REVIEW]
    return (discrepancies.with_columns(*unknown, pl.when((pl.col("SEVERITY") == Severity.IMPORTANT) & in_dv)
                                       .then(pl.lit(DV_UNKNOWN_MARK)).alias("DV_REVIEW")),
            findings.with_columns(unknown))


def assemble_outputs(*, study: str, as_of: date, ingest: IngestResult, validation: ValidationResult,
                     eligibility: EligibilityResult, comparison: Comparison, discrepancies: pl.DataFrame,
                     software_version: str, policy: Policy | None = None, findings: pl.DataFrame | None = None,
                     review: ReviewResult | None = None, recovery: RunRecovery | None = None,
                     eligibility_table: PartedTable | None = None,
                     validation_resolved: pl.DataFrame | None = None, protocol: Protocol | None = None) -> RunOutputs:
    """The run's outputs: `discrepancies` is the comparison's table after the history was applied;
    `policy` the discrepancy policy the comparison graded with (its DV terms are published); `findings`
    the validation table after its history (default: ingestion's and validation's findings as they are);
    with `review`, both carry the review columns and the manifest says where the ledger stands;
    `recovery` is what the run cleaned up after crashed runs (listed in the run manifest);
    `eligibility_table`: the eligibility rows as the partitions of a cluster run made them, published
    from their parts (reporting.parted) instead of `eligibility.eligibility`; `validation_resolved`: the
    previous run's data-quality findings gone tonight (reporting.history.validation_history); `protocol`: the
    protocol judged by (the manifest records each version's content digest)."""
    findings = combine_findings(ingest, validation) if findings is None else findings
    if review is not None:
        discrepancies, findings = with_review(discrepancies, findings, review)
    evaluation = Evaluation(
        subjects=comparison.subjects,
        eligibility=eligibility.eligibility,
        discrepancies=discrepancies,
        protocol_id=eligibility.protocol_id,
        protocol_version=eligibility.protocol_version,
        rows_evaluated=eligibility.rows_evaluated,
    )
    manifest = build_run_manifest(study=study, as_of=as_of, ingest=ingest, validation=validation,
                                  evaluation=evaluation, software_version=software_version, recovery=recovery,
                                  protocol=protocol)
    if review is not None:
        manifest["review"] = review_manifest(review)
    return RunOutputs(
        study=study,
        as_of=as_of,
        protocol_id=evaluation.protocol_id,
        protocol_version=evaluation.protocol_version,
        subjects=evaluation.subjects,
        eligibility=eligibility_table if eligibility_table is not None else evaluation.eligibility,
        discrepancies=discrepancies,
        validation=findings,
        run_manifest=manifest,
        data_docs=validation.data_docs,
        expectations=validation.expectations,
        review=review,
        policy=policy,
        validation_resolved=validation_resolved,
    )


def review_manifest(review: ReviewResult) -> dict:
    """The run manifest's `review` section: the ledger as verified, the workbooks applied, the reopenings."""
    return {
        **review.ledger,
        "reopened": review.reopened.height,
        "workbooks": [{k: receipt.get(k) for k in ("workbook", "status", "kind", "site", "key", "reason")}
                      | {"applied": len(receipt.get("applied") or []), "refused": len(receipt.get("refused") or [])}
                      for receipt in review.receipts],
    }


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
        queries=head.query_discrepancies,
        new=head.new,
        report=f"{location}/report.html",
        outputs=location,
        published=published,
    )
