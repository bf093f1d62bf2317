"""Regression guard for evaluate(): the same inputs give byte-identical tables.

Speed work on the engine (checks/evaluation/engine.py and the modules it uses) must not change one byte of
what it publishes. Two fixed-seed studies are evaluated and their eligibility, reference and
criteria tables compared, as CSV text, with digests recorded from the engine before that work:
the benchmark's synthetic population (every component, mixed units, censored, partial and stale
results) and the study generator's delivery after ingestion (planted data problems).

A deliberate change of behaviour changes these digests: re-record them with
`.venv/bin/python tests/test_checks_engine_regression.py` and say why in the commit. Last re-recorded for
protocol versions: eligibility gained TIVERS and the reference's PROTOCOL_VERSION became TIVERS (a consent
before the first version's effective date is judged by it); with TIVERS dropped, eligibility and criteria
were byte-identical to the digests before. Re-recorded again when eligibility gained DELIVERED (the result
as delivered, where VALUE is it converted to the protocol unit): the table without it keeps the digest it
had before (`eligibility without DELIVERED`, checked below); 255 of the 20,400 synthetic rows and 240 of the
2,958 generated ones carry it. Re-recorded when a component a data-quality check left without a usable
result (EXCLUDED_BY_VALIDATION) gained the SOURCE of the excluded record: compared with the tables before,
only SOURCE differs, in the 2 such rows of the generated study (the synthetic population has none).
Re-recorded when a component without a usable result for another reason (a result not done, only results before
the window or after treatment start, a date that is partial, unreadable or missing) gained the SOURCE of the
record behind that reason, each record once: compared with the tables before, only SOURCE differs, in 1,592 of
the 20,400 synthetic rows and 2 of the 2,958 generated ones (a creatinine clearance lists that creatinine among its
inputs; a component decided by several rule parts, the records of each); reference and criteria keep their
digests.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from checks.evaluation import EligibilityResult, evaluate
from contracts.protocol import load_protocol
from core.source import source_text

EXPECTED = {
    "synthetic": {
        "eligibility": "b1bc720bff2db04cf5c8a23337a5a5021c8fe56c3a0e02e589b070e456b8beb2",
        "reference": "d0d3712d0a689404b4587d8c9087a2c67217cfc55ded6ac97e22a011cbf4fefe",
        "criteria": "3f9f8ac419526fbc38d9d601a81a4f82c552be5a70c8834b7086a8e2c7a6b42d",
        "eligibility without DELIVERED": "1264ade369116656acb15114292f9a133c7d26f3d9cd68f4cfd210a5e380ddc3",
    },
    "generated": {
        "eligibility": "b301e6ac5cb0ba69c5caf5dd43e1e296c8286d958cd1c328e793dd3352ce0fe0",
        "reference": "c927fba6f91e4acc7f780c26ffb5b69969d9fc00abc8b10da14ecc0d083c6cac",
        "criteria": "c1a8a4876b172bf3e6288619400caa02873379f9de3dbc438890aa3e92dc20f5",
        "eligibility without DELIVERED": "1bed9df1345f9dc283902fae671f364787cff743138eedfd23c0c125549e472e",
    },
}


def _digests(result: EligibilityResult) -> dict[str, str]:
    digests = {name: hashlib.sha256(getattr(result, name).write_csv().encode()).hexdigest()
               for name in ("eligibility", "reference", "criteria")}
    # DELIVERED was added beside the rest, which it must not change: the table without it keeps its digest
    without = result.eligibility.drop("DELIVERED").write_csv().encode()
    return {**digests, "eligibility without DELIVERED": hashlib.sha256(without).hexdigest()}


def _synthetic() -> dict[str, str]:
    from benchmarks.bench_evaluation import synthesise

    return _digests(evaluate(synthesise(400, seed=11), load_protocol(), date(2026, 6, 1)))


def _generated(root: Path) -> dict[str, str]:
    from generator import generate
    from ingestion import combine_sites, ingest_site, list_sites
    from storage import LocalStore

    as_of = date(2026, 11, 28)
    generate(LocalStore(root), sites=4, subjects=60, seed=5, as_of=as_of)
    store = LocalStore(root)
    now = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    ingest = combine_sites("SZ003", [ingest_site(store, "SZ003", s, now=now) for s in list_sites(store, "SZ003")])
    # a few values excluded and rows rejected, as validation would, so that those paths are covered too
    # (the rows picked as when SOURCE was one text column: the 4th, 41st... in that text's sort order)
    lb = ingest.domains["lb"].with_columns(source_text().alias("_TEXT")).sort("_TEXT")
    exclusions = lb.select("SOURCE_KEY", "SOURCE_ROW").gather([3, 40, 77]).with_columns(
        DOMAIN=pl.lit("LB"), VARIABLE=pl.Series(["LBORRES", "LBORNRHI", "LBDTC"]),
        MESSAGE=pl.lit("excluded by the regression guard"))
    rejected = lb.select("SOURCE_KEY", "SOURCE_ROW").gather([5, 90]).with_columns(
        DOMAIN=pl.lit("LB"), VARIABLE=pl.lit("LBORRES"), MESSAGE=pl.lit("rejected by the regression guard"))
    return _digests(evaluate(ingest.domains, load_protocol(None), as_of, exclusions=exclusions, rejected=rejected))


def test_synthetic_population_tables_are_unchanged() -> None:
    assert _synthetic() == EXPECTED["synthetic"]


def test_generated_study_tables_are_unchanged(tmp_path: Path) -> None:
    assert _generated(tmp_path) == EXPECTED["generated"]


if __name__ == "__main__":  # print the digests to re-record EXPECTED
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as folder:
        print({"synthetic": _synthetic(), "generated": _generated(Path(folder))})
