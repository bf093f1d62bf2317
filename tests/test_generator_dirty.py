"""The `dirty` generation profile: site habits at scale on top of the planted problems, and what the audit makes
of them (one finding per duplicated key, one per site for a test never collected)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from generator import generate
from storage import LocalStore

AS_OF = date(2026, 11, 28)
CURRENT = "20261127T230000Z"


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dirty")
    summary = generate(LocalStore(root), sites=40, subjects=1000, seed=4, as_of=AS_OF, formats="csv", profile="dirty")
    return root, summary


def _read(root: Path, site: str, domain: str) -> pl.DataFrame:
    return pl.read_csv(root / "SZ003" / site / CURRENT / f"{domain}.csv", infer_schema=False)


def test_habits_go_to_sites_without_planted_problems(dirty) -> None:
    _, summary = dirty
    truth = summary.ground_truth
    assert truth["profile"] == "dirty"
    habits = {h["habit"]: h["sites"] for h in truth["habits"]}
    assert set(habits) == {"duplicate_rows", "no_reference_range", "never_collects", "dates_dmy"}
    assert all(habits.values())
    planted = {p["site"] for p in truth["problems"]}
    assert not planted & {site for sites in habits.values() for site in sites}
    assert truth["not_planted"] == []


def test_each_habit_is_in_its_sites_files(dirty) -> None:
    root, summary = dirty
    habits = {h["habit"]: h["sites"] for h in summary.ground_truth["habits"]}
    lb = _read(root, habits["duplicate_rows"][0], "lb")
    assert lb.height == 2 * lb.unique().height  # every row exported twice
    ranges = _read(root, habits["no_reference_range"][0], "lb")
    assert ranges["LBORNRHI"].null_count() == ranges.height
    fa, lb_never = _read(root, habits["never_collects"][0], "fa"), _read(root, habits["never_collects"][0], "lb")
    assert "FEV1PP" not in fa["FATESTCD"].to_list() and "AMYLASE" not in lb_never["LBTESTCD"].to_list()
    cm = _read(root, habits["dates_dmy"][0], "cm")
    assert cm["CMSTDTC"].str.contains(r"^\d{2}/\d{2}/\d{4}$").any()


def test_a_standard_study_has_no_habits(tmp_path: Path) -> None:
    summary = generate(LocalStore(tmp_path), sites=3, subjects=30, seed=1, as_of=AS_OF, formats="csv")
    assert summary.ground_truth["profile"] == "standard" and summary.ground_truth["habits"] == []
    with pytest.raises(ValueError, match="profile must be one of"):
        generate(LocalStore(tmp_path / "x"), sites=3, subjects=30, as_of=AS_OF, profile="messy")


def test_the_audit_reports_each_habit_once_per_problem_and_still_finds_every_planted_one(dirty) -> None:
    from checks.comparison import compare
    from checks.evaluation import evaluate
    from contracts.protocol import load_protocol
    from expectations import finish_validation, validate_domain
    from generator.scoring import score
    from ingestion import combine_sites, ingest_site, list_sites

    root, summary = dirty
    store, protocol = LocalStore(root), load_protocol()
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    ingest = combine_sites("SZ003", [ingest_site(store, "SZ003", s, now=now) for s in list_sites(store, "SZ003")])
    parts = [validate_domain(d, ingest.domains, study="SZ003", protocol=protocol)
             for d in ingest.domains]
    validation = finish_validation(parts, workdir=root / "v")
    result = evaluate(ingest.domains, protocol, AS_OF, exclusions=validation.exclusions, rejected=validation.rejected)
    comparison = compare(result, ingest.domains, protocol, AS_OF, exclusions=validation.exclusions,
                         rejected=validation.rejected)
    scored = score(summary.ground_truth, comparison.discrepancies, validation.findings)
    assert scored.missed == []  # the habits hide no planted problem
    habits = {h["habit"]: h["sites"] for h in summary.ground_truth["habits"]}
    findings = validation.findings
    duplicated = findings.filter(pl.col("CHECK").str.contains("unique_key") & pl.col("SITEID").is_in(
        habits["duplicate_rows"]))
    lb = ingest.domains["lb"].filter(pl.col("DELIVERY_SITEID").is_in(habits["duplicate_rows"]))
    assert duplicated.filter(pl.col("DOMAIN") == "LB").height == lb.height // 2  # one per key, not per row
    site_level = findings.filter(pl.col("CHECK").str.contains("needed_results_site"))
    never = site_level.filter(pl.col("SITEID").is_in(habits["never_collects"]))
    assert set(never["OBSERVED"]) >= {"FEV1PP: no result at the site", "AMYLASE: no result at the site"}
    assert never["USUBJID"].null_count() == never.height

    # one query per problem: what a site monitor gets grows with checks x causes, not with subjects
    from reporting.queries import build_site_queries, consolidate_queries

    detail = build_site_queries(comparison.discrepancies, findings, result.eligibility)
    problems = consolidate_queries(detail)
    assert problems["N_FINDINGS"].sum() == detail.height  # every finding is in exactly one query
    listed = problems["FINDING_IDS"].str.split(" ").explode()
    assert listed.len() == detail.height and set(listed) == set(detail["FINDING_ID"])
    for site in habits["duplicate_rows"]:  # hundreds of duplicated keys: one query per domain
        keys = problems.filter((pl.col("SITEID") == site) & pl.col("CAUSE").str.contains("unique_key"))
        assert keys.height == duplicated.filter(pl.col("SITEID") == site)["DOMAIN"].n_unique()
        assert keys["N_FINDINGS"].sum() == duplicated.filter(pl.col("SITEID") == site).height
    for site in habits["never_collects"]:  # FEV1PP never collected: one site-level query, naming EX06.LUNG
        enrolled = comparison.subjects.filter((pl.col("SITEID") == site) & (pl.col("SITE_DECISION") == "ENROLLED"))
        unverifiable = comparison.discrepancies.filter((pl.col("SITEID") == site) & (pl.col("CHECK_ID") == "EX06.LUNG"))
        assert unverifiable.height == enrolled.height  # every enrolled subject's finding stays in the table
        assert problems.filter((pl.col("SITEID") == site) & (pl.col("CHECK_ID") == "EX06.LUNG")).height == 0
        fa = problems.filter((pl.col("SITEID") == site)
                             & (pl.col("CHECK_ID") == "DM.needed_results_site.SITE_MISSING_FA"))
        assert fa.height == 1
        assert f"EX06.LUNG cannot be verified for its {enrolled.height} ENROLLED" in fa["QUERY_TEXT"][0]
    per_site = problems.group_by("SITEID").len()["len"].max()
    assert per_site < detail.group_by("SITEID").len()["len"].max() / 5


def test_the_cli_generates_the_dirty_profile(tmp_path: Path) -> None:
    cli = str(Path(sys.executable).with_name("screening-audit"))
    done = subprocess.run([cli, "generate", "--out", str(tmp_path), "--sites", "8", "--subjects", "80",
                           "--profile", "dirty", "--formats", "csv", "--as-of", "2026-11-28"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "SZ003" / "ground_truth.json").read_text())["profile"] == "dirty"
    wrong = subprocess.run([cli, "generate", "--out", str(tmp_path / "x"), "--profile", "messy"],
                           capture_output=True, text=True, timeout=300, check=False)
    assert wrong.returncode == 2 and "profile must be one of" in " ".join(wrong.stderr.split())
