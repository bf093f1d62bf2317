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


def read_delivered(data: bytes, name: str, entry: dict) -> pl.DataFrame:
    """Read one delivered file the way a consumer must: by extension, declared encoding and decimal."""
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
            rows_ok = read_delivered(data, entry["name"], entry).height == entry["rows"]
            tampered = roles[site] == "checksum_mismatch" and delivery == CURRENT and entry["name"].startswith("lb.")
            miscounted = roles[site] == "no_usable" and delivery == HISTORY and entry["name"].startswith("lb.")
            assert digest_ok == (not tampered), (site, delivery, entry["name"])
            assert rows_ok == (not miscounted), (site, delivery, entry["name"])
            checked += 1
    assert checked > 150


def test_every_format_and_encoding_is_produced(study: tuple[Path, GenerationSummary]) -> None:
    root, _ = study
    seen: set[tuple[str, str, str]] = set()
    for manifest_path in _manifests(root):
        for entry in json.loads(manifest_path.read_text(encoding="utf-8"))["files"]:
            seen.add((entry["name"].rsplit(".", 1)[1], entry["encoding"], entry.get("decimal", ".")))
    assert {ext for ext, _, _ in seen} == {"csv", "xlsx", "parquet", "xpt"}
    assert {enc for ext, enc, _ in seen if ext == "csv"} == {"utf-8", "cp1252", "latin-1", "utf-16"}
    assert ("csv", "cp1252", ",") in seen
    bom = (root / "SZ003" / "102" / CURRENT / "dm.csv").read_bytes()
    assert bom.startswith(b"\xef\xbb\xbf")


def test_ground_truth_lists_every_planted_kind(study: tuple[Path, GenerationSummary]) -> None:
    _, summary = study
    truth = summary.ground_truth
    kinds = {p["kind"] for p in truth["problems"]}
    assert kinds == {
        "ineligible_enrolled_lab", "ineligible_enrolled_therapy", "ie_mismatch", "unverifiable_unit",
        "unverifiable_not_done", "unverifiable_censored", "screen_fail_unsupported", "process_pc01",
        "process_pc02", "process_pc03", "process_pc04", "process_pc05", "process_pc06", "implausible_value",
        "unknown_unit", "non_iso_date", "formula_injection", "orphan_subject", "duplicate_key",
        "missing_required_column", "checksum_mismatch", "incomplete_delivery", "no_usable_delivery",
    }
    assert truth["not_planted"] == []
    classes = {d["class"] for d in truth["expected_discrepancies"]}
    assert classes == {"INELIGIBLE_ENROLLED", "IE_MISMATCH", "UNVERIFIABLE", "SCREEN_FAIL_UNSUPPORTED", "PROCESS"}
    process = {d["check_id"] for d in truth["expected_discrepancies"] if d["class"] == "PROCESS"}
    assert process == {"PC01", "PC02", "PC03", "PC04", "PC05", "PC06"}
    dq_kinds = {d["kind"] for d in truth["data_quality"]}
    assert dq_kinds == {"implausible_value", "unknown_unit", "non_iso_date", "formula_injection", "orphan_subject",
                        "duplicate_key", "missing_required_column"}
    subjects = [p["usubjid"] for p in truth["problems"] if p["level"] == "subject"]
    assert len(subjects) == len(set(subjects)), "each planted problem has a subject of its own"
    statuses = {(d["kind"], d["expected_status"]) for d in truth["deliveries"]}
    assert statuses == {("checksum_mismatch", "REJECTED"), ("incomplete_delivery", "INCOMPLETE"),
                        ("no_usable_delivery", "REJECTED")}


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    def run(root: Path, seed: int) -> dict[str, bytes]:
        generate(LocalStore(root), sites=4, subjects=60, seed=seed, as_of=AS_OF)
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
        assert read_delivered(data, entry["name"], entry).height == entry["rows"]
