"""Round trip: the project's own stages, run on a generated study, report exactly its ground truth.

This is the proof that the generator's clean subjects are clean (the audit says nothing about them)
and that every planted problem surfaces as the discrepancy, delivery decision or data-quality row
that `ground_truth.json` announces.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from generator import GenerationSummary, generate
from storage import LocalStore

AS_OF = date(2026, 11, 28)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerationSummary, dict[str, object]]:
    from checks.comparison.compare import compare
    from checks.evaluation import evaluate
    from contracts.protocol import load_protocol
    from expectations import finish_validation, validate_domain
    from ingestion import combine_sites, ingest_site, list_sites

    root = tmp_path_factory.mktemp("roundtrip")
    summary = generate(LocalStore(root / "landing"), sites=8, subjects=200, seed=11, as_of=AS_OF)
    store = LocalStore(root / "landing")
    now = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    ingest = combine_sites("SZ003", [ingest_site(store, "SZ003", s, now=now) for s in list_sites(store, "SZ003")])
    protocol = load_protocol(None)
    work = root / "work"
    work.mkdir()
    parts = [validate_domain(d, ingest.domains, study="SZ003", protocol=protocol)
             for d in ingest.domains]
    validation = finish_validation(parts, workdir=work)
    result = evaluate(ingest.domains, protocol, AS_OF, exclusions=validation.exclusions,
                      rejected=validation.rejected)
    comparison = compare(result, ingest.domains, protocol, AS_OF)
    return summary, {"ingest": ingest, "validation": validation, "discrepancies": comparison.discrepancies}


def test_audit_reports_exactly_the_expected_discrepancies(audited) -> None:
    summary, run = audited
    expected = {(d["usubjid"], d["check_id"], d["class"], d["severity"])
                for d in summary.ground_truth["expected_discrepancies"]}
    got = set(run["discrepancies"].select("USUBJID", "CHECK_ID", "CLASS", "SEVERITY").iter_rows())
    assert got - expected == set(), "reported for subjects the generator made clean"
    assert expected - got == set(), "planted but not reported"


def test_delivery_decisions_match_ground_truth(audited) -> None:
    summary, run = audited
    decisions = {(d.site, d.delivery): str(d.status) for d in run["ingest"].deliveries}
    for item in summary.ground_truth["deliveries"]:
        assert decisions[(item["site"], item["delivery"])] == item["expected_status"], item
    audited_sites = {s["site"] for s in summary.ground_truth["sites"] if s["audited_delivery"]}
    assert set(run["ingest"].sites_audited) == audited_sites


def test_planted_data_quality_rows_are_found(audited) -> None:
    summary, run = audited
    sources = set(run["validation"].findings["SOURCE"].drop_nulls())
    messages = " ".join(run["ingest"].findings["MESSAGE"].drop_nulls().to_list())
    by_problem: dict[str, list[dict]] = {}
    for item in summary.ground_truth["data_quality"]:
        by_problem.setdefault(item["problem"], []).append(item)
    found = set()
    for items in by_problem.values():
        if items[0]["kind"] == "site_never_collects":  # a site-level validation finding names the site's file
            assert any(item["source"] in sources for item in items), items
            found.add(items[0]["kind"])
        elif items[0]["row"] is None:  # a file-level problem: the ingestion finding names the file
            assert Path(items[0]["file"]).name in messages and items[0]["variable"] in messages
            found.add(items[0]["kind"])
        elif any(item["source"] in sources for item in items):
            found.add(items[0]["kind"])
    # a formula typed into a verbatim field is neutralised on output, not a validation failure
    assert found >= {"implausible_value", "unknown_unit", "non_iso_date", "orphan_subject", "duplicate_key",
                     "missing_required_column", "site_never_collects"}


def test_nothing_for_clean_subjects_in_validation(audited) -> None:
    summary, run = audited
    planted = {p["usubjid"] for p in summary.ground_truth["problems"] if p["usubjid"]}
    role_sites = {s["site"] for s in summary.ground_truth["sites"] if s["role"] == "missing_column"}
    findings = run["validation"].findings.filter(
        pl.col("USUBJID").is_not_null() & ~pl.col("USUBJID").is_in(list(planted))
        & ~pl.col("SITEID").is_in(list(role_sites)))
    assert findings.select("SITEID", "USUBJID", "VARIABLE", "MESSAGE").rows() == []
