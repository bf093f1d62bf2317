"""Prefect artifacts for the run page: a markdown summary, a table of sites, a link to the report.

Created only inside a Prefect flow or task run; elsewhere (tests, the CLI without Prefect) a no-op.
"""

from __future__ import annotations

import re

from contracts.records import RunOutputs
from reporting.summary import headline, risk_table, site_table


def _in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def artifact_key(study: str, what: str) -> str:
    """Prefect keys allow lower-case letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"screening-audit-{study.lower()}-{what}").strip("-")


def summary_markdown(outputs: RunOutputs, report_url: str) -> str:
    head = headline(outputs)
    lines = [
        f"# Screening audit {head.study} as of {head.as_of}",
        "",
        f"Protocol {head.protocol}. [Open the report]({report_url})",
        "",
        "| | |",
        "|---|---:|",
        f"| sites audited | {head.sites_audited} |",
        f"| sites not audited | {head.sites_not_audited} |",
        f"| subjects screened | {head.subjects_screened} |",
        f"| enrolled | {head.enrolled} |",
        f"| important deviations | {head.important} |",
        f"| query discrepancies | {head.query_discrepancies} |",
        f"| new since last run | {head.new} |",
        f"| resolved since last run | {head.resolved} |",
        f"| data-quality findings | {head.data_findings} |",
        f"| rows reconcile | {'yes' if head.balanced else '**NO**'} |",
    ]
    for item in outputs.run_manifest.get("sites_not_audited") or []:
        lines.append(f"\n- site {item['site']} not audited: {item['reason']}")
    return "\n".join(lines) + "\n"


def publish_prefect_artifacts(outputs: RunOutputs, report_url: str) -> None:
    """Create the three artifacts when called inside a Prefect run; otherwise do nothing."""
    if not _in_prefect_run():
        return
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    study = outputs.study
    create_markdown_artifact(summary_markdown(outputs, report_url), key=artifact_key(study, "summary"),
                             description=f"Screening audit {study} {outputs.as_of}")
    sites = site_table(outputs, risk_table(outputs))
    create_table_artifact(sites.to_dicts(), key=artifact_key(study, "sites"),
                          description="Subjects and findings per site")
    create_link_artifact(report_url, link_text=f"report {study} {outputs.as_of}",
                         key=artifact_key(study, "report"), description="The run's HTML report")
