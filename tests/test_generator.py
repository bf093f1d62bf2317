"""The synthetic study generator: deliveries that verify, read back, and mean what ground truth says."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from datetime import date
from pathlib import Path

import fastexcel
import polars as pl
import pyreadstat
import pytest

from generator import GenerationSummary, generate
from storage import LocalStore, S3Store

AS_OF = date(2026, 11, 28)
CURRENT = "20261127T230000Z"
HISTORY = "20261120T230000Z"


def read_delivered(data: bytes, name: str, entry: dict, manifest: dict | None = None) -> pl.DataFrame:
    """Read one delivered file the way a consumer must: by extension, declared encoding and decimal (the
    file's own, else the manifest's top-level default, DTS section 1)."""
    entry = {"encoding": (manifest or {}).get("encoding", "utf-8"), **entry}
    ext = name.rsplit(".", 1)[1]
    if ext == "csv":
        text = data.decode("utf-8-sig" if entry["encoding"] == "utf-8" else entry["encoding"])
        header = text.split("\n", 1)[0]
        sep = ";" if header.count(";") > header.count(",") else ","
        return pl.read_csv(io.StringIO(text), separator=sep, infer_schema=False)
    if ext == "parquet":
        return pl.read_parquet(io.BytesIO(data))
    if ext == "xlsx":
        sheet = fastexcel.read_excel(data).load_sheet(0, dtypes="string")
        return pl.from_arrow(sheet.to_arrow())
    if ext == "xpt":
        fd, path = tempfile.mkstemp(suffix=".xpt")
        try:
            os.write(fd, data)
            os.close(fd)
            frame, _ = pyreadstat.read_xport(path, output_format="polars", encoding=entry["encoding"])
        finally:
            os.unlink(path)
        return frame
    raise AssertionError(f"unexpected extension {ext}")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    root = tmp_path_factory.mktemp("landing")
    summary = generate(LocalStore(root), sites=8, subjects=200, seed=7, as_of=AS_OF)
    return root, summary


def _audited_domain(root: Path, summary: GenerationSummary, domain: str) -> pl.DataFrame:
    """One domain across every audited site (its audited delivery), all text, with SITEID added."""
    frames = []
    for site in summary.ground_truth["sites"]:
        if site["audited_delivery"] is None:
            continue
        folder = root / "SZ003" / site["site"] / site["audited_delivery"]
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        entry = next(f for f in manifest["files"] if f["name"].split(".")[0] == domain)
        frame = read_delivered((folder / entry["name"]).read_bytes(), entry["name"], entry, manifest)
        frame = frame.select(pl.all().cast(pl.String)).with_columns(
            pl.lit(site["site"]).alias("_SITE"),
            pl.lit(entry.get("decimal", manifest.get("decimal", "."))).alias("_DECIMAL"))
        frames.append(frame)
    return pl.concat(frames, how="diagonal")


def _number(column: str) -> pl.Expr:
    """A delivered result as a float (decimal comma honoured, censoring prefix dropped)."""
    text = pl.col(column).str.replace(",", ".", literal=True).str.strip_prefix("<").str.strip_prefix(">")
    return text.cast(pl.Float64, strict=False)


def _manifests(root: Path) -> list[Path]:
    return sorted(root.glob("SZ003/*/*/manifest.json"))


def _site_roles(summary: GenerationSummary) -> dict[str, str | None]:
    return {s["site"]: s["role"] for s in summary.ground_truth["sites"]}


def test_layout_and_delivery_names(study: tuple[Path, GenerationSummary]) -> None:
    root, summary = study
    sites = sorted(p.name for p in (root / "SZ003").iterdir() if p.is_dir())
    assert sites == [str(s) for s in range(101, 109)]
    for site in sites:
        deliveries = sorted(p.name for p in (root / "SZ003" / site).iterdir())
        assert CURRENT in deliveries and HISTORY in deliveries
    assert (root / "SZ003" / "ground_truth.json").is_file()
    assert summary.keys[-1] == "SZ003/ground_truth.json"
    # within a delivery the manifest is written after every data file
    for manifest in _manifests(root):
        prefix = manifest.parent.relative_to(root).as_posix() + "/"
        own = [k for k in summary.keys if k.startswith(prefix)]
        assert own[-1].endswith("manifest.json")


def test_manifests_verify_except_planted_delivery_problems(study: tuple[Path, GenerationSummary]) -> None:
    root, summary = study
    roles = _site_roles(summary)
    checked = 0
    for manifest_path in _manifests(root):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        site, delivery = manifest["site"], manifest["delivery"]
        assert manifest["study"] == "SZ003" and manifest_path.parent.name == delivery
        assert [f["name"].split(".")[0] for f in manifest["files"]] == [
            "dm", "ds", "ie", "lb", "vs", "mh", "cm", "pr", "tu", "tr", "fa"]
        for entry in manifest["files"]:
            path = manifest_path.parent / entry["name"]
            if roles[site] == "no_usable" and delivery == CURRENT and entry["name"].startswith("tr."):
                assert not path.exists()
                continue
            data = path.read_bytes()
            digest_ok = hashlib.sha256(data).hexdigest() == entry["sha256"]
            rows_ok = read_delivered(data, entry["name"], entry, manifest).height == entry["rows"]
            tampered = roles[site] == "checksum_mismatch" and delivery == CURRENT and entry["name"].startswith("lb.")
            miscounted = roles[site] == "no_usable" and delivery == HISTORY and entry["name"].startswith("lb.")
            assert digest_ok == (not tampered), (site, delivery, entry["name"])
            assert rows_ok == (not miscounted), (site, delivery, entry["name"])
            checked += 1
    assert checked > 150


def test_every_format_and_encoding_reaches_the_audit(study: tuple[Path, GenerationSummary]) -> None:
    root, summary = study
    seen: set[tuple[str, str, str]] = set()
    for site in summary.ground_truth["sites"]:
        if site["audited_delivery"] is None:
            continue
        manifest_path = root / "SZ003" / site["site"] / site["audited_delivery"] / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for entry in manifest["files"]:  # a file's own setting, else the manifest's top-level default
            seen.add((entry["name"].rsplit(".", 1)[1], entry.get("encoding", manifest.get("encoding", "utf-8")),
                      entry.get("decimal", manifest.get("decimal", "."))))
    assert {ext for ext, _, _ in seen} == {"csv", "xlsx", "parquet", "xpt"}
    assert {enc for ext, enc, _ in seen if ext == "csv"} == {"utf-8", "cp1252", "latin-1", "utf-16"}
    assert ("csv", "cp1252", ",") in seen
    bom = (root / "SZ003" / "102" / CURRENT / "dm.csv").read_bytes()
    assert bom.startswith(b"\xef\xbb\xbf")


def test_some_manifests_give_their_settings_at_the_top_level(study: tuple[Path, GenerationSummary]) -> None:
    """DTS section 1: `encoding` / `decimal` at the top level are every file's default; an entry overrides."""
    root, summary = study
    euro = next(s for s in summary.ground_truth["sites"] if s["separator"] == ";")
    manifest = json.loads((root / "SZ003" / euro["site"] / CURRENT / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["encoding"], manifest["decimal"]) == ("cp1252", ",")
    assert all("encoding" not in entry and "decimal" not in entry for entry in manifest["files"])
    sas = next(s for s in summary.ground_truth["sites"] if s["formats"]["dm"] == "xpt")
    manifest = json.loads((root / "SZ003" / sas["site"] / sas["deliveries"][-1] / "manifest.json")
                          .read_text(encoding="utf-8"))
    assert manifest["encoding"] == "latin-1"
    overrides = {e["name"]: e.get("encoding") for e in manifest["files"]}
    assert overrides["dm.xpt"] == "utf-8" and overrides["ds.csv"] is None  # the XPT files override the default


def test_ground_truth_lists_every_planted_kind(study: tuple[Path, GenerationSummary]) -> None:
    _, summary = study
    truth = summary.ground_truth
    kinds = {p["kind"] for p in truth["problems"]}
    assert kinds == {
        "ineligible_enrolled_lab", "ineligible_enrolled_therapy", "ie_mismatch", "unverifiable_unit",
        "unverifiable_not_done", "unverifiable_censored", "screen_fail_unsupported", "process_pc01",
        "process_pc02", "process_pc03", "process_pc04", "process_pc05", "process_pc06", "implausible_value",
        "unknown_unit", "non_iso_date", "formula_injection", "orphan_subject", "duplicate_key",
        "missing_required_column", "site_never_collects", "checksum_mismatch", "incomplete_delivery",
        "no_usable_delivery",
    }
    assert truth["not_planted"] == []
    classes = {d["class"] for d in truth["expected_discrepancies"]}
    assert classes == {"INELIGIBLE_ENROLLED", "IE_MISMATCH", "UNVERIFIABLE", "SCREEN_FAIL_UNSUPPORTED", "PROCESS"}
    process = {d["check_id"] for d in truth["expected_discrepancies"] if d["class"] == "PROCESS"}
    assert process == {"PC01", "PC02", "PC03", "PC04", "PC05", "PC06"}
    dq_kinds = {d["kind"] for d in truth["data_quality"]}
    assert dq_kinds == {"implausible_value", "unknown_unit", "non_iso_date", "formula_injection", "orphan_subject",
                        "duplicate_key", "missing_required_column", "site_never_collects"}
    subjects = [p["usubjid"] for p in truth["problems"] if p["level"] == "subject"]
    assert len(subjects) == len(set(subjects)), "each planted problem has a subject of its own"
    statuses = {(d["kind"], d["expected_status"]) for d in truth["deliveries"]}
    assert statuses == {("checksum_mismatch", "REJECTED"), ("incomplete_delivery", "INCOMPLETE"),
                        ("no_usable_delivery", "REJECTED")}


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    def run(root: Path, seed: int) -> dict[str, bytes]:  # 8 sites: every format, encoding and problem
        generate(LocalStore(root), sites=8, subjects=96, seed=seed, as_of=AS_OF)
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    first, again, other = run(tmp_path / "a", 3), run(tmp_path / "b", 3), run(tmp_path / "c", 4)
    assert first.keys() == again.keys()
    assert [k for k in first if first[k] != again[k]] == []
    assert first["SZ003/101/20261127T230000Z/lb.csv"] != other["SZ003/101/20261127T230000Z/lb.csv"]


def test_streams_to_s3(s3_endpoint: str, s3_bucket: str) -> None:
    store = S3Store(f"s3://{s3_bucket}/landing", endpoint_url=s3_endpoint)
    summary = generate(store, sites=4, subjects=48, seed=1, as_of=AS_OF, formats="csv")
    keys = [info.key for info in store.list("SZ003")]
    assert sorted(keys) == sorted(summary.keys)
    manifest = json.loads(store.read_bytes("SZ003/101/20261127T230000Z/manifest.json"))
    for entry in manifest["files"]:
        data = store.read_bytes(f"SZ003/101/20261127T230000Z/{entry['name']}")
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert read_delivered(data, entry["name"], entry, manifest).height == entry["rows"]


# ---------------------------------------------------------------- clean subjects are truly clean

#: factors to the protocol unit, written independently of the generator's measures.yaml
COUNTS = {"10^9/L": 1.0, "10^3/uL": 1.0, "K/uL": 1.0, "GI/L": 1.0, "THOU/uL": 1.0, "/uL": 0.001, "cells/mm3": 0.001}
HGB = {"g/dL": 1.0, "g/L": 0.1, "mmol/L": 1.611}


def _clean(summary: GenerationSummary) -> tuple[set[str], set[str]]:
    """(USUBJIDs carrying a planted problem, sites whose data a site-level problem changes)."""
    truth = summary.ground_truth
    planted = {p["usubjid"] for p in truth["problems"] if p["usubjid"]}
    special = {s["site"] for s in truth["sites"]
               if s["role"] in ("missing_column", "never_collects", "checksum_mismatch")}
    return planted, special


@pytest.fixture(scope="module")
def clean_enrolled(study: tuple[Path, GenerationSummary]) -> pl.DataFrame:
    root, summary = study
    planted, special = _clean(summary)
    dm = _audited_domain(root, summary, "dm")
    dm = dm.filter(~pl.col("USUBJID").is_in(list(planted)) & ~pl.col("_SITE").is_in(list(special)))
    enrolled = dm.filter(pl.col("RFXSTDTC").is_not_null() & (pl.col("RFXSTDTC") != ""))
    assert enrolled.height > 40
    return enrolled.select("USUBJID", "SEX", "RFICDTC", pl.col("RFXSTDTC").str.to_date().alias("TSTART"))


def _latest_in_window(lb: pl.DataFrame, enrolled: pl.DataFrame, test: str) -> pl.DataFrame:
    rows = lb.filter(pl.col("LBTESTCD") == test).join(enrolled, on="USUBJID").with_columns(
        pl.col("LBDTC").str.to_date().alias("DAY"))
    start = pl.col("TSTART") - pl.duration(days=28)
    window = rows.filter((pl.col("DAY") <= pl.col("TSTART")) & (pl.col("DAY") >= start))
    return window.sort("DAY").group_by("USUBJID").last()


def test_clean_enrolled_blood_counts_meet_in10_after_unit_conversion(study, clean_enrolled) -> None:
    root, summary = study
    lb = _audited_domain(root, summary, "lb")
    plat = _latest_in_window(lb, clean_enrolled, "PLAT").with_columns(
        (_number("LBORRES") * pl.col("LBORRESU").replace_strict(COUNTS, return_dtype=pl.Float64)).alias("V"))
    hgb = _latest_in_window(lb, clean_enrolled, "HGB").with_columns(
        (_number("LBORRES") * pl.col("LBORRESU").replace_strict(HGB, return_dtype=pl.Float64)).alias("V"))
    assert plat.height == hgb.height == clean_enrolled.height
    assert plat["V"].min() >= 60 and hgb["V"].min() >= 9.0
    assert set(plat["LBORRESU"]) >= {"10^3/uL", "10^9/L", "GI/L"} and set(hgb["LBORRESU"]) == set(HGB)


def test_clean_enrolled_procedures_after_consent_and_in_window(study, clean_enrolled) -> None:
    root, summary = study
    for domain, column in (("lb", "LBDTC"), ("vs", "VSDTC"), ("fa", "FADTC"), ("tr", "TRDTC")):
        rows = _audited_domain(root, summary, domain).join(clean_enrolled, on="USUBJID").with_columns(
            pl.col(column).str.to_date().alias("DAY"))
        assert rows.filter(pl.col(column) < pl.col("RFICDTC")).height == 0, domain
        assert rows.filter(pl.col("DAY") > pl.col("TSTART")).height == 0, domain
        early = rows.filter(pl.col("DAY") < pl.col("TSTART") - pl.duration(days=28))
        if domain != "lb":
            assert early.height == 0, domain
    # older draws exist (repeated screening labs) and each has an in-window successor of the same test
    lb = _audited_domain(root, summary, "lb").join(clean_enrolled, on="USUBJID").with_columns(
        pl.col("LBDTC").str.to_date().alias("DAY"))
    old = lb.filter(pl.col("DAY") < pl.col("TSTART") - pl.duration(days=28))
    assert old.height > 0 and set(old["LBTESTCD"]) <= {"WBC", "PLAT", "HGB", "LYM", "LYMLE"}
    recent = lb.filter(pl.col("DAY") >= pl.col("TSTART") - pl.duration(days=28)).select("USUBJID", "LBTESTCD")
    assert old.join(recent, on=["USUBJID", "LBTESTCD"], how="anti").height == 0


def test_clean_enrolled_have_every_component_the_criteria_read(study, clean_enrolled) -> None:
    root, summary = study
    lb = _audited_domain(root, summary, "lb").join(clean_enrolled, on="USUBJID")
    tests = lb.group_by("USUBJID").agg(pl.col("LBTESTCD").unique())
    common = {"WBC", "PLAT", "HGB", "ALB", "LIPASE", "AMYLASE", "CREAT", "CREATCLR", "ALT", "AST", "BILI", "PT",
              "HBSAG", "HBCAB", "HCVAB", "HIV12AB", "HBA1C"}
    for usubjid, codes in tests.iter_rows():
        assert common <= set(codes), usubjid
        assert ("LYM" in codes) or ("LYMLE" in codes)
    positive = {"POSITIVE", "REACTIVE"}
    hbv = lb.filter(pl.col("LBTESTCD").is_in(["HBSAG", "HBCAB"]) & pl.col("LBORRES").is_in(list(positive)))
    hbv_subjects = set(hbv["USUBJID"])
    assert hbv_subjects and set(lb.filter(pl.col("LBTESTCD") == "HBVDNA")["USUBJID"]) == hbv_subjects
    women = set(clean_enrolled.filter(pl.col("SEX") == "F")["USUBJID"])
    assert set(lb.filter(pl.col("LBTESTCD") == "HCG")["USUBJID"]) == women
    cm = _audited_domain(root, summary, "cm").join(clean_enrolled, on="USUBJID")
    antiviral = cm.filter(pl.col("CMDECOD").is_in(["ENTECAVIR", "TENOFOVIR DISOPROXIL"]))
    assert set(antiviral["USUBJID"]) == hbv_subjects
    # the whole (possibly partial) start interval lies at least 14 days before the first dose
    text, size = pl.col("CMSTDTC"), pl.col("CMSTDTC").str.len_chars()
    start_end = (
        pl.when(size == 4).then(pl.concat_str([text, pl.lit("-12-31")]).str.to_date(strict=False))
        .when(size == 7).then(pl.concat_str([text, pl.lit("-01")]).str.to_date(strict=False).dt.month_end())
        .otherwise(text.str.to_date(strict=False))
    )
    assert antiviral.filter(start_end.is_null()).height == 0
    assert antiviral.filter(start_end > pl.col("TSTART") - pl.duration(days=14)).height == 0
    assert antiviral.filter(size < 10).height > 0  # some partial start dates
    assert antiviral["CMENRF"].to_list() == ["ONGOING"] * antiviral.height
    fa = _audited_domain(root, summary, "fa").join(clean_enrolled, on="USUBJID")
    assert fa.group_by("USUBJID").len()["len"].to_list() == [18] * clean_enrolled.height
    mh = _audited_domain(root, summary, "mh").join(clean_enrolled, on="USUBJID")
    assert mh.group_by("USUBJID").len()["len"].to_list() == [22] * clean_enrolled.height
    tu = _audited_domain(root, summary, "tu").join(clean_enrolled, on="USUBJID")
    tr = _audited_domain(root, summary, "tr").join(clean_enrolled, on="USUBJID")
    target = tu.filter(pl.col("TUORRES") == "TARGET").join(
        tr, left_on=["USUBJID", "TULNKID"], right_on=["USUBJID", "TRLNKID"]).with_columns(
        (_number("TRORRES") * pl.when(pl.col("TRORRESU") == "cm").then(10.0).otherwise(1.0)).alias("MM"))
    measurable = target.filter(
        ((pl.col("TULOC") != "LYMPH NODE") & (pl.col("TRTESTCD") == "LDIAM") & (pl.col("MM") >= 10))
        | ((pl.col("TULOC") == "LYMPH NODE") & (pl.col("TRTESTCD") == "LPERP") & (pl.col("MM") >= 15)))
    assert set(measurable["USUBJID"]) == set(clean_enrolled["USUBJID"])


def test_site_checklists_agree_with_decisions(study: tuple[Path, GenerationSummary]) -> None:
    root, summary = study
    planted, _ = _clean(summary)
    ie = _audited_domain(root, summary, "ie").filter(~pl.col("USUBJID").is_in(list(planted)))
    ds = _audited_domain(root, summary, "ds").filter(~pl.col("USUBJID").is_in(list(planted)))
    failing = (pl.col("IECAT") == "INCLUSION") == (pl.col("IEORRES") == "N")
    styles = {s["site"]: s["ie"] for s in summary.ground_truth["sites"]}
    not_met_only = [site for site, style in styles.items() if style == "not_met_only"]
    assert not_met_only, "at least one site delivers SDTM not-met rows only"
    assert ie.filter(pl.col("_SITE").is_in(not_met_only) & ~failing).height == 0
    decided = ds.filter(pl.col("DSDECOD").is_in(["ENROLLED", "SCREEN FAILURE"]))
    per_subject = ie.group_by("USUBJID").agg(failing.sum().alias("FAILING"), pl.len().alias("N"))
    joined = decided.join(per_subject, on="USUBJID", how="left").with_columns(pl.col("FAILING", "N").fill_null(0))
    enrolled = joined.filter(pl.col("DSDECOD") == "ENROLLED")
    failures = joined.filter(pl.col("DSDECOD") == "SCREEN FAILURE")
    assert enrolled["FAILING"].max() == 0
    assert enrolled.filter(~pl.col("_SITE").is_in(not_met_only))["N"].unique().to_list() == [28]
    assert failures["FAILING"].min() >= 1
    share = failures.height / decided.height
    assert 0.2 < share < 0.4


def test_realism_features_present(study: tuple[Path, GenerationSummary]) -> None:
    root, summary = study
    lb = _audited_domain(root, summary, "lb")
    assert lb.filter(pl.col("LBORRES").str.starts_with("<")).height > 0  # censored results
    euro = lb.filter(pl.col("_DECIMAL") == ",")
    assert euro.filter(pl.col("LBORRES").str.contains(r"^\d+,\d+$")).height > 0
    assert euro.filter(pl.col("LBORRES").str.contains(r"^\d+\.\d+$")).height == 0
    units = set(lb.filter(pl.col("LBTESTCD") == "ALT")["LBORRESU"])
    assert {"U/L", "ukat/L"} <= units
    assert {"IU/mL", "log10 IU/mL"} <= set(lb.filter(pl.col("LBTESTCD") == "HBVDNA")["LBORRESU"])
    # SDTM standardized results only where the site sends them (the SAS site), in the protocol unit
    sas = {s["site"] for s in summary.ground_truth["sites"] if s["formats"]["lb"] == "xpt"}
    standardized = lb.filter(pl.col("LBSTRESN").is_not_null())
    assert set(standardized["_SITE"]) == sas
    assert set(standardized.filter(pl.col("LBTESTCD") == "PLAT")["LBSTRESU"]) == {"10^9/L"}
    # the reference range is in the unit of the result
    bili = lb.filter((pl.col("LBTESTCD") == "BILI") & (pl.col("LBORRESU") == "umol/L"))
    assert bili.height > 0 and set(bili["LBORNRHI"]) == {"21"}
    dm = _audited_domain(root, summary, "dm")
    assert dm.filter(pl.col("BRTHDTC").str.len_chars() < 10).height > 0  # partial birth dates
    for domain, column in (("mh", "MHSTDTC"), ("cm", "CMSTDTC"), ("pr", "PRSTDTC")):
        frame = _audited_domain(root, summary, domain)
        assert frame.filter(pl.col(column).str.len_chars().is_in([4, 7])).height > 0, domain
    cm = _audited_domain(root, summary, "cm")
    accented = cm.filter(pl.col("CMTRT").str.contains("[éèü]"))
    latin_sites = {s["site"] for s in summary.ground_truth["sites"] if s["encoding"] in ("cp1252", "latin-1")}
    assert latin_sites & set(accented["_SITE"])


def test_data_quality_rows_point_at_the_planted_values(study: tuple[Path, GenerationSummary]) -> None:
    root, summary = study
    expected_value = {"implausible_value": "250", "unknown_unit": "10^4/uL", "non_iso_date": "03/12/2019"}
    seen = set()
    for item in summary.ground_truth["data_quality"]:
        path = root / item["file"]
        manifest = json.loads((path.parent / "manifest.json").read_text(encoding="utf-8"))
        entry = next(f for f in manifest["files"] if f["name"] == path.name)
        frame = read_delivered(path.read_bytes(), path.name, entry, manifest).select(pl.all().cast(pl.String))
        if item["kind"] == "site_never_collects" and item["row"] is None:  # no subject of the site has it
            assert item["item"] not in frame[item["variable"]].to_list()
            assert item["subjects"] >= 2
            seen.add(item["kind"])
            continue
        if item["row"] is None:
            assert item["variable"] not in frame.columns
            continue
        row = frame.row(item["row"] - 1, named=True)
        assert row["USUBJID"] == item["usubjid"]
        if item["kind"] in expected_value:
            assert row[item["variable"]] == expected_value[item["kind"]]
        if item["kind"] == "formula_injection":
            assert row["CMTRT"].startswith("=HYPERLINK(")
        seen.add(item["kind"])
    assert "formula_injection" in seen and "duplicate_key" in seen


def test_planted_platelets_are_52_in_the_sites_unit(study: tuple[Path, GenerationSummary]) -> None:
    root, summary = study
    planted = next(p for p in summary.ground_truth["problems"] if p["kind"] == "ineligible_enrolled_lab")
    lb = _audited_domain(root, summary, "lb").filter(
        (pl.col("USUBJID") == planted["usubjid"]) & (pl.col("LBTESTCD") == "PLAT"))
    assert lb.height == 1
    value = lb.select(_number("LBORRES") * pl.col("LBORRESU").replace_strict(COUNTS, return_dtype=pl.Float64)).item()
    assert value == pytest.approx(52)
    ie = _audited_domain(root, summary, "ie").filter(
        (pl.col("USUBJID") == planted["usubjid"]) & (pl.col("IETESTCD") == "IN10"))
    assert ie["IEORRES"].to_list() == ["Y"]


def test_without_problems_or_history_every_site_has_one_clean_delivery(tmp_path: Path) -> None:
    summary = generate(LocalStore(tmp_path), sites=3, subjects=30, seed=2, as_of=AS_OF, plant_problems=False,
                       history=False)
    truth = summary.ground_truth
    assert truth["problems"] == truth["expected_discrepancies"] == truth["data_quality"] == []
    for site in ("101", "102", "103"):
        assert sorted(p.name for p in (tmp_path / "SZ003" / site).iterdir()) == [CURRENT]
    assert summary.files == 33 and summary.rows["dm"] == 30


def test_a_study_too_small_for_every_problem_says_what_it_left_out(tmp_path: Path) -> None:
    summary = generate(LocalStore(tmp_path), sites=2, subjects=30, seed=2, as_of=AS_OF)
    left_out = set(summary.ground_truth["not_planted"])
    assert {"checksum_mismatch", "incomplete_delivery", "no_usable_delivery", "missing_required_column"} <= left_out
    assert {p["kind"] for p in summary.ground_truth["problems"]} & left_out == set()


def test_rejects_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="formats"):
        generate(LocalStore(tmp_path), sites=2, subjects=4, as_of=AS_OF, formats="dbf")
    assert not any(tmp_path.iterdir())


def test_history_delivery_is_an_earlier_cumulative_snapshot(study: tuple[Path, GenerationSummary]) -> None:
    root, summary = study
    cutoff = "2026-11-20"

    def read(folder: Path, domain: str) -> pl.DataFrame:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        entry = next(f for f in manifest["files"] if f["name"].split(".")[0] == domain)
        frame = read_delivered((folder / entry["name"]).read_bytes(), entry["name"], entry, manifest)
        return frame.select(pl.all().cast(pl.String))

    old_total = new_total = 0
    for site in summary.ground_truth["sites"]:
        if site["role"] is not None:
            continue
        folder_old, folder_new = root / "SZ003" / site["site"] / HISTORY, root / "SZ003" / site["site"] / CURRENT
        old_dm, new_dm = read(folder_old, "dm"), read(folder_new, "dm")
        old_total, new_total = old_total + old_dm.height, new_total + new_dm.height
        assert set(old_dm["USUBJID"]) == set(new_dm.filter(pl.col("RFICDTC") <= cutoff)["USUBJID"])
        assert old_dm.filter(pl.col("RFXSTDTC") > cutoff).height == 0
        for domain, column in (("ds", "DSSTDTC"), ("ie", "IEDTC"), ("lb", "LBDTC"), ("fa", "FADTC")):
            frame = read(folder_old, domain)
            assert frame.height > 0 and frame.filter(pl.col(column) > cutoff).height == 0, domain
        # a decision taken after the cutoff is not in the older delivery
        later = read(folder_new, "ds").filter(pl.col("DSSTDTC") > cutoff).select("USUBJID", "DSDECOD")
        assert read(folder_old, "ds").join(later, on=["USUBJID", "DSDECOD"]).height == 0
    assert 0 < old_total < new_total


def test_feature_examples_show_their_feature(study: tuple[Path, GenerationSummary]) -> None:
    root, summary = study
    features = summary.ground_truth["features"]
    assert features["repeated_draws"]["subjects"] > 0 and features["censored_results"]["subjects"] > 0
    failure_modes = [name for name in features if name.startswith("screen_failure.")]
    assert len(failure_modes) == 16
    assert sum(features[name]["subjects"] for name in failure_modes) == summary.ground_truth["subjects"][
        "SCREEN FAILURE"] - sum(1 for p in summary.ground_truth["problems"] if p["kind"] == "screen_fail_unsupported")
    lb = _audited_domain(root, summary, "lb")
    dm = _audited_domain(root, summary, "dm")
    audited = set(dm["USUBJID"])
    for usubjid in features["censored_results"]["examples"]:
        if usubjid in audited:
            assert lb.filter((pl.col("USUBJID") == usubjid) & pl.col("LBORRES").str.starts_with("<")).height > 0
    for usubjid in features["repeated_draws"]["examples"]:
        if usubjid in audited:
            rows = lb.filter((pl.col("USUBJID") == usubjid) & (pl.col("LBTESTCD") == "PLAT"))
            assert rows.height == 2 and rows["LBDTC"].n_unique() == 2
    for usubjid in features["partial_birth_dates"]["examples"]:
        if usubjid in audited:
            assert dm.filter(pl.col("USUBJID") == usubjid)["BRTHDTC"].str.len_chars().item() in (4, 7)


def test_clean_values_sit_at_protocol_thresholds_and_survive_the_sites_units(study, clean_enrolled) -> None:
    """Blood counts exactly at their limit or 1-2 % above, in whatever unit the site writes: still at or above
    the limit once converted (IN10: PLAT >= 60, WBC >= 2.5 10^9/L, HGB >= 9 g/dL)."""
    root, summary = study
    features = summary.ground_truth["features"]
    assert features["near_limits"]["subjects"] > 10
    lb = _audited_domain(root, summary, "lb")
    near = 0
    for test, limit, factors in (("PLAT", 60, COUNTS), ("WBC", 2.5, COUNTS), ("HGB", 9.0, HGB)):
        values = _latest_in_window(lb, clean_enrolled, test).select(
            _number("LBORRES") * pl.col("LBORRESU").replace_strict(factors, return_dtype=pl.Float64))
        values = values.to_series().round(6)
        assert values.min() >= limit, test
        near += values.filter(values <= limit * 1.021).len()
    assert near >= 1


def test_vital_signs_are_measured_at_several_time_points(study: tuple[Path, GenerationSummary]) -> None:
    root, summary = study
    vs = _audited_domain(root, summary, "vs")
    bp = vs.filter(pl.col("VSTESTCD") == "SYSBP")
    per_visit = bp.group_by("USUBJID", "VSDTC").agg(pl.col("VSTPTNUM").sort(), pl.col("VSPOS").unique())
    assert per_visit["VSTPTNUM"].to_list()[:3] == [["1", "2", "3"]] * 3
    assert per_visit["VSPOS"].explode().unique().to_list() == ["SITTING"]
    weight = vs.filter(pl.col("VSTESTCD") == "WEIGHT")
    assert weight.filter(pl.col("VSTPTNUM").fill_null("") != "").height == 0  # measured once: blank qualifiers
    assert summary.ground_truth["features"]["repeated_vitals"]["subjects"] > 100
