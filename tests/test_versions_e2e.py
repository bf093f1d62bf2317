"""A two-version SZ003 end to end, as a data manager runs it: the study configuration names the protocol
folder (1.0, and 2.0 effective 2025-03-15: PLT >= 50 instead of >= 60, IN13 HbA1c <= 6.5 % added), a site
delivers the five subjects of tests.support.amended (consented before the amendment, after it, and two
with a partial consent date spanning it), and the installed CLI audits the night. Then: a severity
changed in the study's policy file alone changes the published outputs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from contracts.datafile import bundled_path
from tests.support import amended

AS_OF = "2025-06-01"
CLI = str(Path(sys.executable).with_name("screening-audit"))


def _study(root: Path, policy: str | None = None) -> Path:
    amended.write_protocol(root / "protocol")
    config = root / "sz003.yaml"
    lines = ["study: SZ003", f"landing: {root / 'landing'}", f"reports: {root / 'reports'}", "protocol: protocol",
             *([f"policy: {policy}"] if policy else [])]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("amended")
    amended.write_landing(root / "landing")
    env = {**os.environ, "PREFECT_HOME": str(root / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "COLUMNS": "120"}
    result = subprocess.run([CLI, "run", "--config", str(_study(root)), "--as-of", AS_OF], env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    return {"result": result, "folder": root / "reports" / "SZ003" / AS_OF, "root": root, "env": env}


def _table(audited: dict, name: str) -> pl.DataFrame:
    return pl.read_parquet(audited["folder"] / f"{name}.parquet")


def test_the_night_runs_with_the_protocol_folder(audited):
    assert audited["result"].returncode == 0, audited["result"].stderr[-3000:]
    manifest = (audited["folder"] / "run_manifest.json").read_text(encoding="utf-8")
    assert '"version": "1.0, 2.0"' in manifest


def test_a_version_edited_in_place_is_said_the_next_night(audited):
    """helper-45: 152 findings new on the night an amendment took effect, and neither the report nor the digest said
    the protocol had changed; nor could a version file edited in place be seen in the run manifest."""
    import json

    from reporting.manifest import protocol_change

    root = audited["root"]
    first = json.loads((audited["folder"] / "run_manifest.json").read_text(encoding="utf-8"))
    assert [(v["tivers"], v["file"]) for v in first["protocol"]["versions"]] == [
        ("1.0", "sz003-v1.yaml"), ("2.0", "sz003-v2.yaml")]
    version_2 = root / "protocol" / "sz003-v2.yaml"
    text = version_2.read_text(encoding="utf-8")
    version_2.write_text(text.replace('op: ">=", limit: 50}', 'op: ">=", limit: 55}'), encoding="utf-8")
    night = subprocess.run([CLI, "run", "--config", str(root / "sz003.yaml"), "--as-of", "2025-06-02"],
                           env=audited["env"], capture_output=True, text=True, timeout=600, check=False)
    assert night.returncode == 0, night.stderr[-3000:]
    folder = root / "reports" / "SZ003" / "2025-06-02"
    second = json.loads((folder / "run_manifest.json").read_text(encoding="utf-8"))
    digests = [[v["digest"] for v in m["protocol"]["versions"]] for m in (first, second)]
    assert digests[0][0] == digests[1][0] and digests[0][1] != digests[1][1]  # only 2.0 changed
    said = protocol_change(first, second)
    assert said is not None and "version(s) 2.0 differ" in said
    report = (folder / "report.html").read_text(encoding="utf-8")
    assert '<p class="warn" id="protocol-change">' in report and "version(s) 2.0 differ" in report
    version_2.write_text(text, encoding="utf-8")  # the module's other tests read the first night only


def test_a_sites_query_says_which_protocol_version_judged_its_subject(audited):
    """helper-45: a site whose checklist still said PLT >= 60 was asked about 96 against 100, and nothing it
    received named the version."""
    queries = pl.read_csv(audited["folder"] / "site_queries" / "101.csv", infer_schema=False)
    endings = {(row["SUBJECTS"], row["CHECK_ID"]): row["QUERY_TEXT"].rsplit(". ", 1)[-1]
               for row in queries.filter(pl.col("ORIGIN") == "DISCREPANCY").iter_rows(named=True)}
    assert endings[("V1-PLT55", "IN10.PLT")] == "Judged by protocol version 1.0."
    assert endings[("V2-HBA1C72", "IN13")] == "Judged by protocol version 2.0."
    assert endings[("SPAN-PLT55", "IN10.PLT")] == "Judged by protocol version 1.0 or 2.0."


def test_outcomes_per_subject_and_version(audited):
    subjects = _table(audited, "subjects")
    assert subjects.select("USUBJID", "TIVERS", "RECOMPUTED").sort("USUBJID").rows() == [
        ("SPAN-PLT55", "1.0 or 2.0", "UNVERIFIABLE"),
        ("SPAN-PLT70", "1.0 or 2.0", "UNVERIFIABLE"),
        ("V1-PLT55", "1.0", "INELIGIBLE"),
        ("V2-HBA1C72", "2.0", "INELIGIBLE"),
        ("V2-PLT55", "2.0", "ELIGIBLE"),
    ]
    eligibility = _table(audited, "eligibility")
    assert eligibility.columns[-4:] == ["SOURCE", "TIVERS", "DELIVERED", "REASON_CODE"]
    picked = eligibility.filter(pl.col("CHECK_ID").is_in(["IN10.PLT", "IN13"])).select(
        "USUBJID", "CHECK_ID", "OUTCOME", "LIMIT", "REASON_CODE").sort("USUBJID", "CHECK_ID").rows()
    assert picked == [
        ("SPAN-PLT55", "IN10.PLT", "UNVERIFIABLE", "1.0: 60; 2.0: 50", "VERSION_UNDECIDABLE"),
        ("SPAN-PLT55", "IN13", "MET", "6.5", None),
        ("SPAN-PLT70", "IN10.PLT", "MET", "1.0: 60; 2.0: 50", None),
        ("SPAN-PLT70", "IN13", "UNVERIFIABLE", "6.5", "VERSION_UNDECIDABLE"),
        ("V1-PLT55", "IN10.PLT", "NOT_MET", "60", None),  # no IN13 for a subject consented under 1.0
        ("V2-HBA1C72", "IN10.PLT", "MET", "50", None),
        ("V2-HBA1C72", "IN13", "NOT_MET", "6.5", None),
        ("V2-PLT55", "IN10.PLT", "MET", "50", None),
        ("V2-PLT55", "IN13", "MET", "6.5", None),
    ]


def test_discrepancies_per_subject_and_version(audited):
    found = _table(audited, "discrepancies").select("USUBJID", "CHECK_ID", "CLASS", "SEVERITY").sort(
        "USUBJID", "CHECK_ID").rows()
    assert found == amended.DISCREPANCIES


def test_the_checklist_expected_of_each_subject_is_its_versions(audited):
    """Validation asks V2-HBA1C72 (2.0, the 1.0 form used) for IN13 and V1-PLT55 (1.0) for nothing; its
    IN13 = N answer is a criterion of the protocol (2.0), so no finding either."""
    validation = _table(audited, "validation")
    assert validation.select("USUBJID", "DOMAIN", "VARIABLE", "OBSERVED").rows() == [
        ("V2-HBA1C72", "IE", "IETESTCD", "IN13: no answer")]  # the night's only data-quality finding


def test_the_report_counts_subjects_and_findings_per_version(audited):
    html = (audited["folder"] / "report.html").read_text(encoding="utf-8")
    section = html.split('<section id="versions">')[1].split("</section>")[0]
    rows = [[cell.split(">")[-1] for cell in row.split("</td>")[:-1]] for row in section.split("<tr>")[2:]]
    # the 1.0 subject's ineligible enrolment hidden by the checklist is one important deviation, as in dv: its
    # INELIGIBLE_ENROLLED and the criterion's IE_MISMATCH are two findings of the same deviation
    assert rows == [["1.0", "1", "1", "1", "1", "0"], ["1.0 or 2.0", "2", "2", "0", "0", "2"],
                    ["2.0", "2", "2", "1", "1", "1"]]
    subjects = _table(audited, "subjects").filter(pl.col("TIVERS") == "1.0")["USUBJID"]
    important = _table(audited, "discrepancies").filter(pl.col("USUBJID").is_in(subjects.implode())
                                                         & (pl.col("SEVERITY") == "IMPORTANT"))
    assert sorted(important["CLASS"].to_list()) == ["IE_MISMATCH", "INELIGIBLE_ENROLLED"]
    assert _table(audited, "dv").filter(pl.col("USUBJID").is_in(subjects.implode())).height == 1
    import fastexcel

    sheet = fastexcel.read_excel((audited["folder"] / "report.xlsx").read_bytes()).load_sheet(
        "Protocol versions", dtypes="string").to_polars()
    assert sheet["TIVERS"].to_list() == ["1.0", "1.0 or 2.0", "2.0"]


# ------------------------------------------------------------------------- policy as data, end to end


def test_a_severity_changed_in_the_policy_file_alone_changes_the_outputs(tmp_path, prefect_harness):
    """The same night, once with the shipped policy and once with a study policy where UNVERIFIABLE is
    IMPORTANT: the UNVERIFIABLE findings become important deviations (discrepancies and DV), nothing else
    changes."""
    from flows.nightly import nightly_audit

    amended.write_landing(tmp_path / "landing")
    amended.write_protocol(tmp_path / "protocol")
    policy = tmp_path / "policy.yaml"
    text = Path(bundled_path("contracts", "policy.yaml")).read_text(encoding="utf-8")
    edited = text.replace("  UNVERIFIABLE:\n    title: enrolled subject with a component the delivered data cannot "
                          "decide\n    severity: QUERY", "  UNVERIFIABLE:\n    title: enrolled subject with a "
                          "component the delivered data cannot decide\n    severity: IMPORTANT")
    assert edited != text
    policy.write_text(edited, encoding="utf-8")
    runs = {}
    for name, policy_file in (("shipped", None), ("study", str(policy))):
        nightly_audit(landing=str(tmp_path / "landing"), reports=str(tmp_path / name), study="SZ003",
                      protocol=str(tmp_path / "protocol"), as_of=AS_OF, policy=policy_file)
        folder = tmp_path / name / "SZ003" / AS_OF
        runs[name] = {table: pl.read_csv(io.BytesIO((folder / f"{table}.csv").read_bytes()), infer_schema=False)
                      for table in ("discrepancies", "dv", "subjects", "eligibility")}
    shipped, study = runs["shipped"], runs["study"]
    unverifiable = pl.col("CLASS") == "UNVERIFIABLE"
    assert shipped["discrepancies"].filter(unverifiable)["SEVERITY"].to_list() == ["QUERY", "QUERY"]
    assert study["discrepancies"].filter(unverifiable)["SEVERITY"].to_list() == ["IMPORTANT", "IMPORTANT"]
    # DV_REVIEW follows the severity (an important finding nobody reviewed is in DV, NOT YET REVIEWED)
    assert study["discrepancies"].filter(unverifiable)["DV_REVIEW"].to_list() == ["NOT YET REVIEWED"] * 2
    assert shipped["discrepancies"].drop("SEVERITY", "DV_REVIEW").equals(
        study["discrepancies"].drop("SEVERITY", "DV_REVIEW"))
    assert study["dv"].height == shipped["dv"].height + 2
    new_dv = study["dv"].join(shipped["dv"], on=["USUBJID", "DVREFID"], how="anti")
    assert new_dv.select("USUBJID", "DVREFID", "DVDECOD").rows() == [
        ("SPAN-PLT55", "IN10.PLT", "OTHER PROTOCOL DEVIATION"), ("SPAN-PLT70", "IN13", "OTHER PROTOCOL DEVIATION")]
    for table in ("subjects", "eligibility"):
        assert shipped[table].equals(study[table])
