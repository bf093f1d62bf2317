"""An amended protocol: each subject judged by the version in force at its consent (evaluation and
comparison); the version files as one protocol; errors of a set of versions. End to end through the
CLI: tests/test_versions_e2e.py."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from checks.comparison import compare
from checks.evaluation import evaluate
from contracts.protocol import ProtocolError, load_protocol
from tests.support import amended
from tests.support.sample_subject import frames

AS_OF = date(2025, 6, 1)


@pytest.fixture(scope="module")
def protocol(tmp_path_factory: pytest.TempPathFactory):
    return load_protocol(amended.write_protocol(tmp_path_factory.mktemp("sz003")))


@pytest.fixture(scope="module")
def run(protocol):
    domains = frames(*amended.subjects(), site="101")
    result = evaluate(domains, protocol, AS_OF)
    return result, compare(result, domains, protocol, AS_OF)


def _rows(result, check: str) -> dict[str, dict]:
    return {r["USUBJID"]: r for r in result.eligibility.filter(pl.col("CHECK_ID") == check).iter_rows(named=True)}


def test_the_folder_and_each_file_load_the_same_two_versions(protocol, tmp_path):
    folder = amended.write_protocol(tmp_path / "p")
    for path in (folder, folder / "sz003-v1.yaml", folder / "sz003-v2.yaml"):
        loaded = load_protocol(path)
        assert [(e.tivers, e.version.effective) for e in loaded.editions()] == [
            ("1.0", date(2024, 1, 1)), ("2.0", amended.AMENDMENT)]
    assert load_protocol(folder).tivers == "2.0"  # a folder: the latest version leads
    assert load_protocol(folder / "sz003-v1.yaml").tivers == "1.0"  # a file: the one named
    assert [c.id for c in protocol.edition("1.0").criteria] == amended.V1_CRITERIA
    assert [c.id for c in protocol.edition("2.0").criteria] == amended.V2_CRITERIA


def test_each_subject_carries_the_version_of_its_consent(run):
    result, comparison = run
    expected = {"V1-PLT55": "1.0", "V2-PLT55": "2.0", "SPAN-PLT55": "1.0 or 2.0", "SPAN-PLT70": "1.0 or 2.0",
                "V2-HBA1C72": "2.0"}
    assert dict(zip(result.reference["USUBJID"], result.reference["TIVERS"], strict=True)) == expected
    assert dict(zip(comparison.subjects["USUBJID"], comparison.subjects["TIVERS"], strict=True)) == expected
    per_row = result.eligibility.group_by("USUBJID").agg(pl.col("TIVERS").unique())
    assert {u: v for u, v in per_row.iter_rows()} == {u: [v] for u, v in expected.items()}
    assert result.protocol_version == "1.0, 2.0"


def test_plt_is_judged_by_the_version_in_force(run):
    result, _ = run
    plt = _rows(result, "IN10.PLT")
    assert (plt["V1-PLT55"]["OUTCOME"], plt["V1-PLT55"]["LIMIT"]) == ("NOT_MET", "60")  # 1.0: >= 60
    assert (plt["V2-PLT55"]["OUTCOME"], plt["V2-PLT55"]["LIMIT"]) == ("MET", "50")  # 2.0: >= 50
    # consent 2025-03 spans the amendment of 2025-03-15: 55 meets 2.0 but not 1.0, so it cannot be decided
    span = plt["SPAN-PLT55"]
    assert (span["OUTCOME"], span["REASON_CODE"]) == ("UNVERIFIABLE", "VERSION_UNDECIDABLE")
    assert span["REASON"] == ("RFICDTC 2025-03 does not tell whether version 1.0 or 2.0 applies, and they decide "
                              "IN10.PLT differently (1.0: NOT_MET; 2.0: MET)")
    assert (span["VALUE"], span["LIMIT"]) == ("55", "1.0: 60; 2.0: 50")
    # 70 meets both: decided, with both limits shown
    assert (plt["SPAN-PLT70"]["OUTCOME"], plt["SPAN-PLT70"]["LIMIT"]) == ("MET", "1.0: 60; 2.0: 50")


def test_components_equal_in_both_versions_are_decided_for_a_spanning_subject(run):
    result, _ = run
    span = result.eligibility.filter(pl.col("USUBJID") == "SPAN-PLT55")
    undecided = span.filter(pl.col("OUTCOME") == "UNVERIFIABLE")["CHECK_ID"].to_list()
    assert undecided == ["IN10.PLT"]
    assert span.filter(pl.col("CHECK_ID") == "IN10.WBC")["OUTCOME"].item() == "MET"


def test_a_criterion_added_by_2_0_is_judged_for_2_0_subjects_only(run):
    result, _ = run
    in13 = _rows(result, "IN13")
    assert "V1-PLT55" not in in13  # no IN13 row for a 1.0 subject (its HbA1c 7.2 would fail it)
    assert in13["V2-PLT55"]["OUTCOME"] == "MET"
    assert in13["V2-HBA1C72"]["OUTCOME"] == "NOT_MET"
    assert in13["SPAN-PLT55"]["OUTCOME"] == "MET"  # met under 2.0, absent from 1.0: met either way
    span = in13["SPAN-PLT70"]  # not met under 2.0, absent from 1.0: undecided
    assert (span["OUTCOME"], span["REASON_CODE"]) == ("UNVERIFIABLE", "VERSION_UNDECIDABLE")
    assert span["REASON"].endswith("(2.0: NOT_MET; the other version(s) do not have it)")
    criteria = result.criteria.filter(pl.col("CRITERION_ID") == "IN13")
    assert sorted(criteria["USUBJID"]) == ["SPAN-PLT55", "SPAN-PLT70", "V2-HBA1C72", "V2-PLT55"]


def test_discrepancies_follow_each_subjects_version(run):
    _, comparison = run
    found = sorted(comparison.discrepancies.select("USUBJID", "CHECK_ID", "CLASS", "SEVERITY").rows())
    assert found == amended.DISCREPANCIES
    # V1-PLT55 answered IN13 = N on a 1.0 subject: a criterion of 2.0 only is never a discrepancy for it
    pc04 = comparison.discrepancies.filter(pl.col("CHECK_ID") == "PC04")["EVIDENCE"].item()
    assert pc04.endswith("no answer for IN13.")
    recomputed = dict(zip(comparison.subjects["USUBJID"], comparison.subjects["RECOMPUTED"], strict=True))
    assert recomputed == {"V1-PLT55": "INELIGIBLE", "V2-PLT55": "ELIGIBLE", "SPAN-PLT55": "UNVERIFIABLE",
                          "SPAN-PLT70": "UNVERIFIABLE", "V2-HBA1C72": "INELIGIBLE"}


def test_a_spanning_consent_need_not_answer_a_criterion_of_one_version_only(protocol):
    """helper-45: PC04 asked a subject consented across the amendment for the new criterion, which validation's
    MISSING_IE (and docs/criteria.md) do not require; the 1.0 form lacks only IN13."""
    cases = amended.subjects()
    span = next(rows for rows in cases if rows["dm"][0]["USUBJID"] == "SPAN-PLT55")
    span["ie"] = [row for row in span["ie"] if row["IETESTCD"] != "IN13"]
    domains = frames(*cases, site="101")
    comparison = compare(evaluate(domains, protocol, AS_OF), domains, protocol, AS_OF)
    pc04 = comparison.discrepancies.filter(pl.col("CHECK_ID") == "PC04")
    assert pc04["USUBJID"].to_list() == ["V2-HBA1C72"]  # a 2.0 subject is still asked for IN13
    # an answer the spanning subject's form does have is still required: IN12 taken away, PC04 names it alone
    span["ie"] = [row for row in span["ie"] if row["IETESTCD"] != "IN12"]
    domains = frames(*cases, site="101")
    comparison = compare(evaluate(domains, protocol, AS_OF), domains, protocol, AS_OF)
    asked = comparison.discrepancies.filter((pl.col("CHECK_ID") == "PC04") & (pl.col("USUBJID") == "SPAN-PLT55"))
    assert asked["EVIDENCE"].item().endswith("no answer for IN12.")


def test_a_single_version_protocol_is_judged_as_before():
    domains = frames(*amended.subjects(), site="101")
    result = evaluate(domains, load_protocol(), AS_OF)
    assert set(result.reference["TIVERS"]) == {"1.0"}
    assert _rows(result, "IN10.PLT")["V2-PLT55"]["OUTCOME"] == "NOT_MET"  # 55 < 60 for everyone
    assert "IN13" not in set(result.eligibility["CHECK_ID"])


# --------------------------------------------------------------------------------- a set of versions


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_versions_taking_effect_the_same_day_are_refused_with_file_and_line(tmp_path):
    folder = amended.write_protocol(tmp_path / "p")
    clash = amended.version_2_text().replace('tivers: "2.0", effective: 2025-03-15', 'tivers: "2.1", effective: '
                                                                                      '2025-03-15')
    _write(folder, "sz003-v2-1.yaml", clash)
    with pytest.raises(ProtocolError, match=r"sz003-v2(-1)?.yaml:7: version.effective: versions 2.\d and 2.\d both "
                                            r"take effect on 2025-03-15"):
        load_protocol(folder)


def test_a_criterion_cannot_change_category_between_versions(tmp_path):
    folder = amended.write_protocol(tmp_path / "p")
    text = (folder / "sz003-v2.yaml").read_text(encoding="utf-8").replace(
        "  - id: EX16\n    category: EXCLUSION", "  - id: EX16\n    category: INCLUSION")
    _write(folder, "sz003-v2.yaml", text)
    with pytest.raises(ProtocolError, match=r"sz003-v2.yaml:\d+: criteria\[\d+\].category: EX16 is INCLUSION here "
                                            r"but EXCLUSION in version 1.0"):
        load_protocol(folder / "sz003-v1.yaml")


def test_a_draft_is_never_a_version_in_force(tmp_path):
    folder = amended.write_protocol(tmp_path / "p")
    draft = amended.version_2_text().replace('tivers: "2.0", effective: 2025-03-15',
                                             'tivers: "3.0-draft", effective: 2026-01-01}\ndraft: true\n#{')
    _write(folder, "draft.yaml", draft)
    assert [e.tivers for e in load_protocol(folder).editions()] == ["1.0", "2.0"]
    with pytest.raises(ProtocolError, match=r"draft.yaml:8: draft: a draft amendment is not a protocol in force"):
        load_protocol(folder / "draft.yaml")
