"""Prefect artifacts: a markdown summary, a table of sites and a link, only inside a Prefect run."""

from __future__ import annotations

import pytest

from reporting import publish_prefect_artifacts
from reporting.artifacts import artifact_key, summary_markdown
from tests.support.sample_outputs import make_outputs

REPORT = "s3://reports/SZ003/2026-11-28/report.html"


@pytest.fixture(scope="module")
def outputs():
    return make_outputs(n_subjects=30, n_sites=3)


def test_summary_markdown_has_the_headline_and_the_link(outputs):
    text = summary_markdown(outputs, REPORT)
    assert text.startswith("# Screening audit SZ003 as of 2026-11-28")
    assert f"[Open the report]({REPORT})" in text
    assert "| subjects screened | 30 |" in text and "| sites audited | 3 |" in text
    assert "site 199 not audited: newest delivery rejected" in text


def test_artifact_keys_are_valid_prefect_keys():
    assert artifact_key("SZ_003.b", "sites") == "screening-audit-sz-003-b-sites"


def test_outside_a_prefect_run_nothing_happens(outputs):
    assert publish_prefect_artifacts(outputs, REPORT) is None


@pytest.mark.slow
def test_artifacts_inside_a_flow_run(prefect_harness, outputs):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.context import FlowRunContext

    @flow
    def night():
        publish_prefect_artifacts(outputs, REPORT)
        return FlowRunContext.get().flow_run.id

    run_id = night()
    # the harness is shared by the session: other flows create artifacts with the same keys
    with get_client(sync_client=True) as client:
        this_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        found = client.read_artifacts(artifact_filter=this_run)
    by_key = {a.key: a for a in found}
    keys = [artifact_key("SZ003", what) for what in ("summary", "sites", "report")]
    assert set(by_key) == set(keys)
    assert by_key[keys[0]].type == "markdown" and "Screening audit SZ003" in by_key[keys[0]].data
    assert by_key[keys[1]].type == "table" and '"SITEID": "101"' in by_key[keys[1]].data
    assert REPORT in by_key[keys[2]].data  # Prefect stores a link artifact as markdown
