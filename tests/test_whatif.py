"""`screening-audit whatif`: a draft amendment judged against the delivered data.

End to end: a generated study (3 sites, 60 subjects, seed 21) in a landing folder, the installed CLI as a
subprocess, a draft (tests.support.amended.draft_text: KPS >= 70, HGB >= 7.5 g/dL, PLT >= 50, and a new
exclusion EX17 reading an HCV genotype no site delivers), and the subjects whose outcome changes checked
against a list written by hand from the generated data:

- SZ003-101-0002, enrolled, PLT 52 x10^3/uL: ineligible under >= 60, eligible under >= 50;
- SZ003-102-0011, screen failure, KPS 70: would have been eligible under >= 70;
- SZ003-103-0007, screen failure, HGB 4,7 mmol/L = 7.57 g/dL: eligible under >= 7.5 (SZ003-103-0005's
  4,5 mmol/L = 7.25 g/dL stays below; SZ003-102-0030's KPS 60 and SZ003-102-0027's PLT 34 too);
- the HCV antibody positive subjects (101-0012, 101-0014, 101-0015, 103-0011, 103-0014, eligible now)
  cannot be judged on EX17: newly unverifiable. 101-0010 is HCV positive too but a screen failure that
  stays ineligible (EX10): its EX17 is a new UNVERIFIABLE result, not a change of outcome.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from checks.comparison.whatif import same_version_warning, whatif
from checks.evaluation import evaluate
from contracts.protocol import bundled_protocol_path, load_protocol, parse_protocol_text
from generator import generate
from storage import LocalStore
from tests.support import amended
from tests.support.sample_subject import frames

AS_OF = "2026-11-28"
CLI = str(Path(sys.executable).with_name("screening-audit"))

EXPECTED = [
    ("SZ003-101-0002", "ENROLLED", "NO_LONGER_INELIGIBLE", "IN10: NOT_MET -> MET"),
    ("SZ003-101-0012", "IN SCREENING", "NEWLY_UNVERIFIABLE", "EX17: (not in force) -> UNVERIFIABLE"),
    ("SZ003-101-0014", "ENROLLED", "NEWLY_UNVERIFIABLE", "EX17: (not in force) -> UNVERIFIABLE"),
    ("SZ003-101-0015", "ENROLLED", "NEWLY_UNVERIFIABLE", "EX17: (not in force) -> UNVERIFIABLE"),
    ("SZ003-102-0011", "SCREEN FAILURE", "WOULD_BE_ELIGIBLE", "IN07: NOT_MET -> MET"),
    ("SZ003-103-0007", "SCREEN FAILURE", "WOULD_BE_ELIGIBLE", "IN10: NOT_MET -> MET"),
    ("SZ003-103-0011", "ENROLLED", "NEWLY_UNVERIFIABLE", "EX17: (not in force) -> UNVERIFIABLE"),
    ("SZ003-103-0014", "IN SCREENING", "NEWLY_UNVERIFIABLE", "EX17: (not in force) -> UNVERIFIABLE"),
]
NEW_UNVERIFIABLE = ["SZ003-101-0010", "SZ003-101-0012", "SZ003-101-0014", "SZ003-101-0015", "SZ003-103-0011",
                    "SZ003-103-0014"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("whatif")
    generate(LocalStore(root / "landing"), study="SZ003", sites=3, subjects=60, seed=21,
             as_of=date.fromisoformat(AS_OF))
    draft = root / "drafts" / "sz003-3.0.yaml"
    draft.parent.mkdir()
    draft.write_text(amended.draft_text(), encoding="utf-8")
    env = {**os.environ, "PREFECT_HOME": str(root / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "COLUMNS": "120"}
    result = subprocess.run([CLI, "whatif", "--landing", str(root / "landing"), "--reports", str(root / "reports"),
                             "--protocol", str(draft), "--as-of", AS_OF], env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    return {"result": result, "folder": root / "reports" / "SZ003" / "whatif" / AS_OF / "3.0"}


def test_the_cli_writes_html_and_xlsx_next_to_the_outputs(ran):
    assert "the draft's version" not in ran["result"].stderr  # 3.0 is a version of its own
    result = ran["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(ran["folder"] / "whatif.html")
    assert {p.name for p in ran["folder"].iterdir()} == {"whatif.html", "whatif.xlsx", "changes.csv"}


def test_exactly_the_subjects_whose_outcome_changes_are_listed(ran):
    changes = pl.read_csv(ran["folder"] / "changes.csv", infer_schema=False)
    assert changes.select("USUBJID", "SITE_DECISION", "CHANGE", "CRITERIA").rows() == EXPECTED


def test_the_workbook_has_every_table_and_the_page_the_counts(ran):
    import fastexcel

    book = fastexcel.read_excel((ran["folder"] / "whatif.xlsx").read_bytes())
    assert book.sheet_names == ["Summary", "By criterion and site", "Changes", "Criteria", "New unverifiable"]
    unverifiable = book.load_sheet("New unverifiable", dtypes="string").to_polars()
    assert unverifiable["USUBJID"].to_list() == NEW_UNVERIFIABLE
    assert set(unverifiable["REASON_CODE"]) == {"MISSING"}  # data the draft needs that no site delivers
    by_site = book.load_sheet("By criterion and site", dtypes="string").to_polars()
    rows = {(r["CRITERION_ID"], r["SITEID"]): r for r in by_site.iter_rows(named=True)}
    assert rows[("IN07", "102")]["WOULD_BE_ELIGIBLE"] == "1"
    assert rows[("IN10", "103")]["WOULD_BE_ELIGIBLE"] == "1"
    assert rows[("EX17", "101")]["N_UNVERIFIABLE"] == "4"
    html = (ran["folder"] / "whatif.html").read_text(encoding="utf-8")
    assert '<div class="n" id="n-would-be-eligible">2</div>' in html
    assert '<div class="n" id="n-no-longer-ineligible">1</div>' in html
    assert "SZ003-103-0007" in html and "http" not in html.split("</header>")[1]  # offline page


def test_a_draft_of_another_protocol_is_refused(tmp_path):
    draft = tmp_path / "draft.yaml"
    draft.write_text(amended.draft_text().replace("id: SZ003", "id: OTHER1"), encoding="utf-8")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "ph"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    (tmp_path / "landing" / "SZ003").mkdir(parents=True)
    result = subprocess.run([CLI, "whatif", "--landing", str(tmp_path / "landing"), "--protocol", str(draft),
                             "--as-of", AS_OF], env=env, capture_output=True, text=True, timeout=600, check=False,
                            cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the draft amends protocol OTHER1" in result.stderr


def test_a_draft_with_a_version_already_in_force_is_run_with_a_warning(tmp_path):
    # the bundled protocol (1.0, in force) given as the "draft": the what-if compares 1.0 with itself, so
    # its "no subject changes" must not read as "the amendment changes nothing"
    generate(LocalStore(tmp_path / "landing"), study="SZ003", sites=1, subjects=8, seed=3,
             as_of=date.fromisoformat(AS_OF))
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "ph"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "COLUMNS": "200"}
    result = subprocess.run([CLI, "whatif", "--landing", str(tmp_path / "landing"), "--reports",
                             str(tmp_path / "reports"), "--protocol", str(bundled_protocol_path()), "--as-of", AS_OF],
                            env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    warning = "the draft's version 1.0 is a version SZ003 is already audited with (1.0)"
    assert f"warning: {warning}" in " ".join(result.stderr.split())
    # and in what others read: the page and the workbook's Summary
    folder = tmp_path / "reports" / "SZ003" / "whatif" / AS_OF / "1.0"
    assert warning in html.unescape((folder / "whatif.html").read_text(encoding="utf-8"))
    summary = pl.read_excel(folder / "whatif.xlsx", sheet_name="Summary")
    assert summary.row(0) == ("WARNING", next(v for v in summary["VALUE"] if v.startswith(warning)))


def test_the_what_if_result_carries_the_warning_for_its_pages(tmp_path):
    domains = frames(*amended.subjects(), site="101")
    as_of = date(2025, 6, 1)
    protocol = load_protocol(amended.write_protocol(tmp_path / "sz003"))
    draft = parse_protocol_text(amended.draft_text(), "draft.yaml")
    assert whatif(evaluate(domains, protocol, as_of), evaluate(domains, draft, as_of), study="SZ003", as_of=as_of,
                  protocol=protocol, draft_protocol=draft).warnings == ()
    same = protocol.edition("2.0")
    result = whatif(evaluate(domains, protocol, as_of), evaluate(domains, same, as_of), study="SZ003", as_of=as_of,
                    protocol=protocol, draft_protocol=same)
    assert result.warnings == same_version_warning(same, protocol) != ()


def test_only_a_draft_version_already_in_force_is_warned_about(tmp_path):
    in_force = load_protocol(amended.write_protocol(tmp_path / "sz003"))
    assert same_version_warning(parse_protocol_text(amended.draft_text(), "draft.yaml"), in_force) == ()
    assert "version 2.0 is a version SZ003 is already audited with (1.0, 2.0)" in \
        same_version_warning(in_force.edition("2.0"), in_force)[0]


# ------------------------------------------------------------------------------ the comparison alone


def test_versions_in_force_against_a_draft(tmp_path):
    """The two-version SZ003's subjects (tests.support.amended) against draft 3.0: each subject's version
    in force is what 'now' means."""
    domains = frames(*amended.subjects(), site="101")
    as_of = date(2025, 6, 1)
    protocol = load_protocol(amended.write_protocol(tmp_path / "sz003"))
    draft = parse_protocol_text(amended.draft_text(), "draft.yaml")
    result = whatif(evaluate(domains, protocol, as_of), evaluate(domains, draft, as_of), study="SZ003", as_of=as_of,
                    protocol=protocol, draft_protocol=draft)
    assert (result.baseline, result.draft) == ("SZ003 1.0, 2.0", "SZ003 3.0 (draft)")
    rows = {r["USUBJID"]: (r["TIVERS"], r["CHANGE"], r["CRITERIA"]) for r in result.changes.iter_rows(named=True)}
    assert rows == {
        # 1.0: PLT 55 fails >= 60; the draft's >= 50 passes it and has no IN13
        "V1-PLT55": ("1.0", "NO_LONGER_INELIGIBLE", "IN10: NOT_MET -> MET"),
        # 2.0's IN13 (HbA1c 7.2 > 6.5) is gone in the draft
        "V2-HBA1C72": ("2.0", "NO_LONGER_INELIGIBLE", "IN13: NOT_MET -> (not in the draft)"),
        # undecided between 1.0 and 2.0 now; the draft decides
        "SPAN-PLT55": ("1.0 or 2.0", "OTHER", "IN10: UNVERIFIABLE -> MET"),
        "SPAN-PLT70": ("1.0 or 2.0", "OTHER", "IN13: UNVERIFIABLE -> (not in the draft)"),
    }
    assert result.by_site.filter(pl.col("CRITERION_ID") == "IN10").row(0, named=True) == {
        "CRITERION_ID": "IN10", "SITEID": "101", "WOULD_BE_ELIGIBLE": 0, "WOULD_BE_INELIGIBLE": 0,
        "NO_LONGER_INELIGIBLE": 1, "NEWLY_UNVERIFIABLE": 0, "OTHER": 1, "N_UNVERIFIABLE": 0}
