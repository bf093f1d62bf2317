"""The bad-input corpus through the whole flow: one study where most sites deliver something broken.

Ingestion's own tests (tests/test_ingestion_badinput.py) check each corpus file against
`ingest_site`. Here the same files, plus broken manifests and bad values inside well-formed files,
go through the real `nightly_audit` flow next to clean sites, and the published outputs must show:
a finding for every problem naming site, file and problem; the clean sites audited exactly as in a
run without the broken ones; and a reconciliation that balances for every domain.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml
from reconciliation_support import assert_reconciliation_balances

from generator import generate
from storage import LocalStore

AS_OF = "2026-11-28"
NEWEST = "20261127T230000Z"
CORPUS = Path(__file__).parent / "data" / "ingestion" / "corpus"
CASES = {c["file"] + c.get("encoding", ""): c
         for c in yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))["files"]}
CLEAN_SITES = ["101", "102"]
#: site -> corpus case (file + declared encoding); each replaces that site's lb.csv (vs.csv for XPT)
FILE_SITES = {
    "103": "empty.csv", "104": "binary.csv", "105": "latin1_declared_utf8.csv", "106": "utf16_declared_utf8.csv",
    "107": "missing_column.csv", "108": "huge_field.csv", "109": "ragged_rows.csv", "110": "unclosed_quote.csv",
    "111": "truncated.xpt",
}
MANIFEST_SITES = {"112": "sha256", "113": "missing file", "114": "not json"}
CONTENT_SITE = "115"
#: site -> its file of this domain replaced by binary data (rejected as a whole): what the file holds is unknown
UNREAD_SITES = {"116": "ie.csv", "117": "dm.csv"}
FORMULA = '=HYPERLINK("http://example.invalid/x","click")'


@dataclass(frozen=True)
class Planted:
    """A bad value planted in a well-formed file: the finding must point at this file and row."""

    file: str
    row: int  # 1-based data row
    variable: str
    what: str


def _delivery(landing: Path, site: str, delivery: str = NEWEST) -> Path:
    return landing / "SZ003" / site / delivery


def _rewrite_manifest(folder: Path, name: str, data: bytes | None, rows: int | None = None,
                      encoding: str | None = None, new_name: str | None = None) -> None:
    """Put `data` in `folder/name` (None: delete it) and make the manifest agree, as a site would."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    entries = [e for e in manifest["files"] if e["name"] != name]
    (folder / name).unlink(missing_ok=True)
    if data is not None:
        target = new_name or name
        (folder / target).write_bytes(data)
        entry = {"name": target, "sha256": hashlib.sha256(data).hexdigest(), "rows": rows}
        if encoding:
            entry["encoding"] = encoding
        entries.append(entry)
    manifest["files"] = entries
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def _plant_files(landing: Path) -> None:
    for site, case_id in FILE_SITES.items():
        case = CASES[case_id]
        folder = _delivery(landing, site)
        replaced = "vs.csv" if case["as"].startswith("vs.") else "lb.csv"
        _rewrite_manifest(folder, replaced, (CORPUS / case["file"]).read_bytes(), rows=case["rows"],
                          encoding=case.get("encoding"), new_name=case["as"])


def _plant_manifests(landing: Path) -> None:
    for site, problem in MANIFEST_SITES.items():
        folder = _delivery(landing, site)
        if problem == "sha256":
            (folder / "dm.csv").write_bytes((folder / "dm.csv").read_bytes() + b"\n")
        elif problem == "missing file":
            (folder / "ds.csv").unlink()
        else:
            (folder / "manifest.json").write_bytes(b'{"study": "SZ003", "site": ')


def _plant_unread(landing: Path) -> None:
    for site, name in UNREAD_SITES.items():
        _rewrite_manifest(_delivery(landing, site), name, (CORPUS / "binary.csv").read_bytes(), rows=1)


def _plant_values(landing: Path) -> list[Planted]:
    """Duplicate key, orphan row, non-ISO date, impossible value and a formula in site 115's newest delivery."""
    folder = _delivery(landing, CONTENT_SITE)
    dm = pl.read_csv(folder / "dm.csv", infer_schema=False)
    lb = pl.read_csv(folder / "lb.csv", infer_schema=False)
    vs = pl.read_csv(folder / "vs.csv", infer_schema=False)
    ds = pl.read_csv(folder / "ds.csv", infer_schema=False)
    planted = [Planted("dm.csv", dm.height + 1, "USUBJID", "duplicate key")]
    dm = pl.concat([dm, dm.head(1)])
    orphan = lb.head(1).with_columns(pl.lit(f"SZ003-{CONTENT_SITE}-999").alias("USUBJID"))
    planted.append(Planted("lb.csv", lb.height + 1, "USUBJID", "orphan row"))
    lb = pl.concat([lb, orphan])
    lb = lb.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("03/11/2026"))
                         .otherwise(pl.col("LBDTC")).alias("LBDTC"))
    planted.append(Planted("lb.csv", 2, "LBDTC", "non-ISO date"))
    weight = vs.with_row_index().filter(pl.col("VSTESTCD") == "WEIGHT")["index"][0]
    vs = vs.with_columns(pl.when(pl.int_range(pl.len()) == weight).then(pl.lit("-70"))
                         .otherwise(pl.col("VSORRES")).alias("VSORRES"))
    planted.append(Planted("vs.csv", weight + 1, "VSORRES", "impossible value"))
    ds = ds.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(FORMULA))
                         .otherwise(pl.col("DSTERM")).alias("DSTERM"))
    planted.append(Planted("ds.csv", 1, "DSTERM", "formula"))
    for name, frame in (("dm.csv", dm), ("lb.csv", lb), ("vs.csv", vs), ("ds.csv", ds)):
        _rewrite_manifest(folder, name, frame.write_csv().encode(), rows=frame.height)
    return planted


def _audit(landing: Path, reports: Path):
    from flows.nightly import nightly_audit

    return nightly_audit(landing=str(landing), reports=str(reports), study="SZ003", as_of=AS_OF)


def _table(reports: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(reports / "SZ003" / AS_OF / f"{name}.parquet")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> dict:
    root = tmp_path_factory.mktemp("badinput")
    landing = root / "landing"
    generate(LocalStore(landing), study="SZ003", sites=17, subjects=68, seed=13,
             as_of=date.fromisoformat(AS_OF), formats="csv", plant_problems=False)
    clean_only = root / "clean-landing"
    for site in CLEAN_SITES:
        shutil.copytree(landing / "SZ003" / site, clean_only / "SZ003" / site)
    _plant_files(landing)
    _plant_manifests(landing)
    _plant_unread(landing)
    planted = _plant_values(landing)
    summary = _audit(landing, root / "reports")
    clean_summary = _audit(clean_only, root / "clean-reports")
    return {"summary": summary, "reports": root / "reports", "clean": root / "clean-reports",
            "clean_summary": clean_summary, "planted": planted}


def test_every_site_is_audited_despite_the_broken_files(runs: dict) -> None:
    assert runs["summary"].sites_not_audited == {}
    assert runs["summary"].sites_audited == 17


@pytest.mark.parametrize("site", sorted(FILE_SITES))
def test_a_broken_file_gives_its_finding_naming_site_file_and_problem(runs: dict, site: str) -> None:
    case = CASES[FILE_SITES[site]]
    key = f"SZ003/{site}/{NEWEST}/{case['as']}"
    findings = _table(runs["reports"], "validation").filter(pl.col("SITEID") == site)
    about = findings.filter(pl.col("SOURCE").str.starts_with(key))
    assert about.height >= 1, findings.select("EXPECTATION", "SOURCE", "MESSAGE").to_dicts()
    assert case["code"] in about["EXPECTATION"].to_list()
    for row in about.iter_rows(named=True):
        assert row["MESSAGE"] and row["EXPECTATION"]
        if row["EXPECTATION"].startswith("ingest."):  # file-level: the sentence names site and file itself
            assert f"Site {site}" in row["MESSAGE"] and key in row["MESSAGE"], row
    if "message" in case:
        assert any(case["message"] in m for m in about["MESSAGE"])


def test_what_a_rejected_file_holds_decides_nothing(runs: dict) -> None:
    """helper-44: a rejected cm.csv made antiviral therapy NOT_MET (false ineligible enrolments); with lb.csv
    rejected, every component that reads LB at that site is UNVERIFIABLE naming the file, none decided by its
    absence."""
    key = f"SZ003/106/{NEWEST}/lb.csv"
    assert CASES[FILE_SITES["106"]]["as"] == "lb.csv"
    rows = _table(runs["reports"], "eligibility").filter((pl.col("SITEID") == "106")
                                                         & pl.col("CHECK_ID").is_in(["IN10.PLT", "IN11.ALB"]))
    assert rows.height > 0
    assert set(rows.select("OUTCOME", "REASON_CODE", "SOURCE").rows()) == {("UNVERIFIABLE", "FILE_NOT_READ", key)}
    discrepancies = _table(runs["reports"], "discrepancies").filter(pl.col("SITEID") == "106")
    assert "INELIGIBLE_ENROLLED" not in discrepancies["CLASS"].to_list()
    # the site is asked once, to re-send the file: the components it leaves open are listed under that query
    queries = pl.read_csv(runs["reports"] / "SZ003" / AS_OF / "site_queries" / "106.csv", infer_schema=False)
    assert "FILE_NOT_READ" not in queries["CAUSE"].to_list()
    also = pl.read_csv(runs["reports"] / "SZ003" / AS_OF / "site_queries" / "also_answered" / "106.csv",
                       infer_schema=False)
    assert "IN10.PLT" in also["CHECK_ID"].to_list()


def test_a_checklist_nobody_read_is_not_reported_missing(runs: dict) -> None:
    """Site 116's ie.csv is rejected as a whole: no PC04 says its decided subjects have "no IE checklist", no
    validation finding reports a missing IE answer, and the site is asked once, by the file's query (it was asked to
    "complete the IE checklist" for every decided subject)."""
    site = "116"
    decided = _table(runs["reports"], "subjects").filter(
        (pl.col("SITEID") == site) & pl.col("SITE_DECISION").is_in(["ENROLLED", "SCREEN FAILURE"]))
    assert decided.height > 0
    discrepancies = _table(runs["reports"], "discrepancies").filter(pl.col("SITEID") == site)
    assert "PC04" not in discrepancies["CHECK_ID"].to_list()
    validation = _table(runs["reports"], "validation").filter(pl.col("SITEID") == site)
    assert not validation["CHECK"].cast(pl.String).str.starts_with("DM.ie_checklist").any()
    queries = pl.read_csv(runs["reports"] / "SZ003" / AS_OF / "site_queries" / f"{site}.csv", infer_schema=False)
    assert len(queries["CHECK_ID"]) == 1 and queries["CHECK_ID"][0].startswith("ingest.file_rejected.")
    # the other sites' decided subjects with a full checklist have no PC04 either (the clean run's sites)
    assert "PC04" not in _table(runs["clean"], "discrepancies")["CHECK_ID"].to_list()


def test_results_in_a_file_nobody_read_are_not_reported_missing(runs: dict) -> None:
    """Site 104's lb.csv is binary: no subject's lab result is reported missing, nor is any test "never delivered" by
    the site (the file's query asks for the file)."""
    assert CASES[FILE_SITES["104"]]["as"] == "lb.csv"
    validation = _table(runs["reports"], "validation").filter(pl.col("SITEID") == "104")
    needed = validation.filter(pl.col("CHECK").cast(pl.String).str.starts_with("DM.needed_results"))
    assert not needed["MESSAGE"].str.contains(r"\bLB\b").any(), needed["MESSAGE"].to_list()


def test_records_of_a_dm_nobody_read_are_not_reported_outside_dm(runs: dict) -> None:
    """Site 117's dm.csv is rejected as a whole: its other files' records are not "not in DM" (a query per domain
    before), and the site's one query is the file's."""
    site = "117"
    validation = _table(runs["reports"], "validation").filter(pl.col("SITEID") == site)
    assert validation.height > 0 and not validation["CHECK"].cast(pl.String).str.contains(".in_dm.").any()
    queries = pl.read_csv(runs["reports"] / "SZ003" / AS_OF / "site_queries" / f"{site}.csv", infer_schema=False)
    assert len(queries["CHECK_ID"]) == 1 and queries["CHECK_ID"][0].startswith("ingest.file_rejected.")


@pytest.mark.parametrize("site", sorted(MANIFEST_SITES))
def test_a_broken_manifest_rejects_the_delivery_and_the_previous_one_is_audited(runs: dict, site: str) -> None:
    findings = _table(runs["reports"], "validation").filter(pl.col("SITEID") == site)
    rejected = findings.filter(pl.col("EXPECTATION").str.starts_with("ingest.delivery_rejected"))
    assert rejected.height >= 1, findings.select("EXPECTATION", "MESSAGE").to_dicts()
    assert all(f"Site {site}" in m and NEWEST in m for m in rejected["MESSAGE"])
    manifest = json.loads((runs["reports"] / "SZ003" / AS_OF / "run_manifest.json").read_text())
    text = json.dumps(manifest)
    assert f"{site}/20261120T230000Z" in text or "20261120T230000Z" in text
    subjects = _table(runs["reports"], "subjects").filter(pl.col("SITEID") == site)
    assert subjects.height >= 1  # audited from the previous complete delivery


#: sites whose planted problem rejects a delivery or a whole file (not a row or a value of it)
DELIVERY_PROBLEM_SITES = sorted([*MANIFEST_SITES, *(site for site, case in FILE_SITES.items()
                                                    if CASES[case]["code"].startswith("ingest.file_rejected"))])


@pytest.mark.parametrize("site", DELIVERY_PROBLEM_SITES)
def test_a_sites_query_about_a_delivery_or_file_asks_for_the_delivery_not_about_a_value(runs: dict, site: str) -> None:
    # what the site monitor sends (the site's query list): what is wrong with which delivery or file, and
    # what to re-send; not the data-value wording ('LB.sha256 value "dcb5..." ... against the source document')
    path = runs["reports"] / "SZ003" / AS_OF / "site_queries" / f"{site}.csv"
    rows = [r for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
            if r["CHECK_ID"].startswith(("ingest.delivery", "ingest.file_rejected", "ingest.site"))]
    assert rows, f"no query about site {site}'s delivery or files"
    for row in rows:
        text = row["QUERY_TEXT"]
        assert text.startswith(f"Site {site}") and " Please " in text, text
        assert "value" not in text and "source document" not in text and "not recorded" not in text, text


@pytest.mark.parametrize("index", range(5),
                         ids=["duplicate-key", "orphan-row", "non-iso-date", "impossible-value", "formula"])
def test_a_bad_value_in_a_good_file_gives_a_finding_at_its_row(runs: dict, index: int) -> None:
    planted: Planted = runs["planted"][index]
    key = f"SZ003/{CONTENT_SITE}/{NEWEST}/{planted.file}"
    findings = _table(runs["reports"], "validation").filter(
        (pl.col("SITEID") == CONTENT_SITE) & pl.col("SOURCE").str.starts_with(key))
    named = pl.col("SOURCE").str.contains(rf"\b{planted.row}$")
    if planted.what == "duplicate key":  # one finding per duplicated key, at its first row, naming every row
        named = pl.col("MESSAGE").str.contains(rf"{planted.file} records [0-9, ]*\b{planted.row}\b")
    at_row = findings.filter(named & (pl.col("VARIABLE") == planted.variable))
    assert at_row.height >= 1, (planted, findings.select("VARIABLE", "EXPECTATION", "SOURCE").to_dicts())
    assert all(m for m in at_row["MESSAGE"])


def test_a_formula_in_site_text_is_neutralised_in_every_spreadsheet_rendering(runs: dict) -> None:
    folder = runs["reports"] / "SZ003" / AS_OF
    quoted = 0
    for path in folder.rglob("*.csv"):
        for record in csv.reader(io.StringIO(path.read_text(encoding="utf-8"))):
            assert not any(cell.startswith("=") for cell in record), path.name
            quoted += sum(cell.startswith("'=HYPERLINK") for cell in record)
    assert quoted >= 1  # the value is shown, as text


def test_clean_sites_are_audited_exactly_as_without_the_broken_ones(runs: dict) -> None:
    for name in ("subjects", "eligibility", "discrepancies"):
        mixed = _table(runs["reports"], name).filter(pl.col("SITEID").is_in(CLEAN_SITES))
        alone = _table(runs["clean"], name)
        keep = [c for c in alone.columns if c not in ("N_DISCREPANCIES",)]
        assert mixed.select(keep).sort(keep).equals(alone.select(keep).sort(keep)), name
    clean_findings = _table(runs["reports"], "validation").filter(pl.col("SITEID").is_in(CLEAN_SITES))
    assert clean_findings.select("EXPECTATION", "SOURCE").sort("SOURCE").equals(
        _table(runs["clean"], "validation").select("EXPECTATION", "SOURCE").sort("SOURCE"))


def test_the_reconciliation_balances_for_every_domain(runs: dict) -> None:
    rows = assert_reconciliation_balances(
        json.loads((runs["reports"] / "SZ003" / AS_OF / "run_manifest.json").read_text()))
    assert sum(row["REJECTED"] for row in rows) > 0  # the broken files' rows are counted, not lost


def test_findings_are_readable_from_csv_as_well(runs: dict) -> None:
    csv = pl.read_csv(io.BytesIO((runs["reports"] / "SZ003" / AS_OF / "validation.csv").read_bytes()),
                      infer_schema=False)
    assert csv.height == _table(runs["reports"], "validation").height
