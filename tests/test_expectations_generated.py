"""Validation of a generated study: every planted bad row is named, nothing else is reported.

The generator (generator/) plants data-quality problems with their file and row in ground_truth.json;
ingestion reads the deliveries as a nightly run would. Every validation finding must then belong to
a subject or row the generator planted a problem on: a finding about a clean subject is a false
alarm a data manager would have to chase.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from storage import LocalStore

AS_OF = date(2026, 11, 28)
#: planted rows that other stages report (ingestion rejects the whole file)
NOT_VALIDATION = {"missing_required_column"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    from contracts.protocol import load_protocol
    from expectations import finish_validation, validate_domain
    from generator import generate
    from ingestion import combine_sites, ingest_site, list_sites

    root = tmp_path_factory.mktemp("landing")
    landing = LocalStore(root)
    generate(landing, study="SZ003", sites=8, subjects=64, seed=3, as_of=AS_OF)
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    ingest = combine_sites("SZ003", [ingest_site(landing, "SZ003", s, now=now) for s in list_sites(landing, "SZ003")])
    workdir = Path(tmp_path_factory.mktemp("validation"))
    protocol = load_protocol()
    parts = [validate_domain(d, ingest.domains, study="SZ003", protocol=protocol)
             for d in ingest.domains]
    truth = json.loads(landing.read_bytes("SZ003/ground_truth.json"))
    return finish_validation(parts, workdir=workdir), truth


def test_every_planted_bad_row_is_named(generated) -> None:
    result, truth = generated
    planted = [row for row in truth["data_quality"] if row["kind"] not in NOT_VALIDATION]
    assert planted, "the generator planted no data-quality problem"
    named = result.findings.select("SOURCE", "VARIABLE")
    for row in planted:
        hits = named.filter(pl.col("SOURCE") == row["source"])
        assert hits.height, row
        assert row["variable"] in hits["VARIABLE"].to_list() or row["kind"] == "orphan_subject", (row, hits)


def test_no_finding_on_clean_subjects(generated) -> None:
    result, truth = generated
    planted_subjects = {p["usubjid"] for p in truth["problems"] if p.get("usubjid")}
    # a site whose file ingestion rejected leaves its enrolled subjects without those results
    rejected_sites = {p["site"] for p in truth["problems"] if p["kind"] in NOT_VALIDATION}
    clean = result.findings.filter(~pl.col("USUBJID").is_in(sorted(planted_subjects))
                                   & ~pl.col("SITEID").is_in(sorted(rejected_sites)))
    assert clean.height == 0, clean.select("USUBJID", "CHECK", "MESSAGE").to_dicts()[:5]


def test_a_missing_result_names_the_components_it_leaves_unverifiable(generated) -> None:
    result, truth = generated
    (subject,) = [p["usubjid"] for p in truth["problems"] if p["kind"] == "unverifiable_not_done"]
    needs = result.findings.filter((pl.col("USUBJID") == subject) & pl.col("CHECK").str.contains("needed_results"))
    assert needs.select("DOMAIN", "OBSERVED", "MESSAGE").rows() == [
        ("LB", "ALB: no result", "ENROLLED subject has no ALB result in LB: IN11.ALB cannot be verified")]
