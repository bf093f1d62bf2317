"""reporting: the publication stage (tables, DV, site queries, history, site risk, report, workbook)."""

from contracts.records import RunOutputs
from reporting.artifacts import publish_prefect_artifacts
from reporting.assemble import assemble_outputs, combine_findings, run_summary
from reporting.history import apply_history, validation_history
from reporting.manifest import build_run_manifest
from reporting.publish import publish, render_outputs, write_outputs

__all__ = ["RunOutputs", "apply_history", "assemble_outputs", "build_run_manifest",
           "combine_findings", "publish", "publish_prefect_artifacts", "render_outputs", "run_summary",
           "validation_history", "write_outputs"]
