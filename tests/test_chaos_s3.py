"""Chaos on S3 (moto over HTTP): the installed CLI SIGKILLed at kill points of every stage, with the
promotion's in particular (S3 has no rename: every object is copied), then rerun at once
(tests/chaos_cases.py). With SCREENING_AUDIT_CHAOS_POINTS=all the local-folder file runs every point
and this one a point of each stage and every point of publication and promotion; by default (CI) this
one kills in ingestion, in the middle of a staged write and of the promotion's copies, and right after
the published marker."""

from __future__ import annotations

from datetime import date

import boto3
import pytest
from chaos_cases import chosen, kill_then_rerun

from generator import generate
from storage import S3Store
from tests.support.chaos import STUDY, Audit, cli_env, tables

AS_OF = "2026-11-28"
ALL = ["ingestion:third-site", "validation:first-domain", "evaluation:compare", "publication:staging-write",
       "publication:staging-sealed", "promotion:journal", "promotion:copy", "promotion:marker", "promotion:cleanup"]
DEFAULT = ["ingestion:third-site", "publication:staging-write", "promotion:copy", "promotion:marker"]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> dict:
    root = tmp_path_factory.mktemp("chaos-s3")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    for bucket in ("chaos-landing", "chaos-reports", "chaos-undisturbed"):
        client.create_bucket(Bucket=bucket)
    generate(S3Store("s3://chaos-landing/incoming", endpoint_url=s3_endpoint), study=STUDY, sites=3, subjects=24,
             seed=16, as_of=date.fromisoformat(AS_OF), formats="csv", plant_problems=True)
    env = cli_env(root / "prefect-home", s3_endpoint=s3_endpoint)
    result, _tag = Audit("s3://chaos-landing/incoming", "s3://chaos-undisturbed/audit", AS_OF, env).run()
    assert result.returncode == 0, result.stderr[-3000:]
    reference = tables(S3Store("s3://chaos-undisturbed/audit", endpoint_url=s3_endpoint), f"{STUDY}/{AS_OF}")
    return {"audit": Audit("s3://chaos-landing/incoming", "s3://chaos-reports/audit", AS_OF, env),
            "store": S3Store("s3://chaos-reports/audit", endpoint_url=s3_endpoint), "reference": reference}


@pytest.mark.parametrize("point", chosen(DEFAULT, ALL))
def test_a_run_killed_at_any_point_blocks_nothing_leaks_nothing_and_half_publishes_nothing(setup: dict,
                                                                                          point: str) -> None:
    kill_then_rerun(setup["store"], setup["audit"], setup["reference"], point)
