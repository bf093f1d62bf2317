"""Ingestion against the synthetic study generator: every planted delivery problem is found."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl

from ingestion import combine_sites, ingest_site, list_sites
from storage import LocalStore


def test_planted_delivery_problems_are_found(tmp_path) -> None:
    from generator import generate

    landing = LocalStore(tmp_path)
    generate(landing, study="SZ003", sites=8, subjects=64, seed=3, as_of=date(2026, 11, 28), formats="mixed")
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    sites = [ingest_site(landing, "SZ003", site, now=now) for site in list_sites(landing, "SZ003")]
    result = combine_sites("SZ003", sites)
    truth = json.loads(landing.read_bytes("SZ003/ground_truth.json"))

    decisions = {(d.site, d.delivery): d for d in result.deliveries}
    assert truth["deliveries"], "the generator planted no delivery problem"
    for expected in truth["deliveries"]:
        decision = decisions[(expected["site"], expected["delivery"])]
        assert decision.status == expected["expected_status"], expected
        if "file" in expected:
            assert f"{expected['file']}." in decision.reason, (expected, decision.reason)
        if "audited_instead" in expected:
            used = decisions[(expected["site"], expected["audited_instead"])]
            assert used.status == "USED" and expected["delivery"] in used.reason
    for expected in truth["data_quality"]:
        if expected["kind"] != "missing_required_column":
            continue
        hits = result.findings.filter((pl.col("SOURCE") == expected["source"])
                                      & (pl.col("EXPECTATION") == "ingest.file_rejected.missing_column"))
        assert hits["VARIABLE"].to_list() == [expected["variable"]]
    # every site the generator wrote is accounted for, with each of its files read in full
    assert sorted(result.sites_audited + list(result.sites_not_audited)) == [s["site"] for s in truth["sites"]]
    for site in sites:
        for obj in site.inputs:
            assert sum(obj.rejected_reasons.values()) == obj.rows_rejected
