"""Chaos on a local reports folder: the installed CLI SIGKILLed at a kill point of every stage (every
kill point with SCREENING_AUDIT_CHAOS_POINTS=all), then rerun at once (tests/chaos_cases.py). Also one
run on a local Dask cluster killed mid-run: its workers must go too."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from chaos_cases import chosen, kill_then_rerun

from generator import generate
from storage import LocalStore
from tests.chaos.chaos_points import POINTS
from tests.support.chaos import STUDY, Audit, cli_env, tables

AS_OF = "2026-11-28"
#: by default (CI): one kill in each stage before publication, and the promotion's start and end
#: (S3's file kills in the middle of the copies); all of POINTS with SCREENING_AUDIT_CHAOS_POINTS=all
DEFAULT_POINTS = ["ingestion:first-site", "validation:finish", "evaluation:evaluate", "publication:render",
                  "publication:staging-sealed", "promotion:journal", "promotion:cleanup"]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("chaos-local")
    generate(LocalStore(root / "landing"), study=STUDY, sites=3, subjects=24, seed=16,
             as_of=date.fromisoformat(AS_OF), formats="csv", plant_problems=True)
    env = cli_env(root / "prefect-home")
    undisturbed = Audit(str(root / "landing"), str(root / "undisturbed"), AS_OF, env)
    result, _tag = undisturbed.run()
    assert result.returncode == 0, result.stderr[-3000:]
    reference = tables(LocalStore(root / "undisturbed"), f"{STUDY}/{AS_OF}")
    _rows_out(LocalStore(root / "landing"), LocalStore(root / "undisturbed"))
    return {"audit": Audit(str(root / "landing"), str(root / "reports"), AS_OF, env),
            "store": LocalStore(root / "reports"), "reference": reference, "root": root}


def _rows_out(landing: LocalStore, reports: LocalStore) -> None:
    """The undisturbed run every rerun is compared with puts every delivered subject and component out."""
    import io
    import json

    import polars as pl
    from reconciliation_support import assert_rows_out

    prefix = f"{STUDY}/{AS_OF}"
    assert_rows_out(json.loads(landing.read_bytes(f"{STUDY}/ground_truth.json")), landing,
                    pl.read_parquet(io.BytesIO(reports.read_bytes(f"{prefix}/subjects.parquet"))),
                    pl.read_parquet(io.BytesIO(reports.read_bytes(f"{prefix}/eligibility.parquet"))),
                    json.loads(reports.read_bytes(f"{prefix}/run_manifest.json")))


@pytest.mark.parametrize("point", chosen(DEFAULT_POINTS, list(POINTS)))
def test_a_run_killed_at_any_point_blocks_nothing_leaks_nothing_and_half_publishes_nothing(setup: dict,
                                                                                          point: str) -> None:
    kill_then_rerun(setup["store"], setup["audit"], setup["reference"], point)


def test_a_dask_run_killed_mid_run_leaves_no_worker(setup: dict) -> None:
    audit = Audit(setup["audit"].landing, str(Path(setup["root"]) / "dask-reports"), AS_OF, setup["audit"].env,
                  runner="dask")
    # killed in the flow's process after the workers audited their partitions (evaluation runs on them)
    kill_then_rerun(LocalStore(Path(setup["root"]) / "dask-reports"), audit, setup["reference"],
                    "validation:finish")
