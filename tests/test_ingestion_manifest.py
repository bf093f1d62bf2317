"""manifest.json as sites write it (DTS section 1): top-level defaults, binary encodings ignored, strict keys."""

from __future__ import annotations

import hashlib
import json

import polars as pl
import pytest
from test_ingestion_support import D3, NOW, STUDY, assert_balanced, codes, sample

from ingestion import Code, ingest_site
from ingestion.errors import ManifestProblem
from ingestion.manifest import parse_manifest
from storage import LocalStore
from tests.support.delivery_writer import encode


def _entry(name: str, data: bytes, rows: int, **settings: str) -> dict:
    return {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "rows": rows, **settings}


def _deliver(store, files: dict[str, bytes], entries: list[dict], **top: str) -> None:
    prefix = f"{STUDY}/101/{D3}"
    for name, data in files.items():
        store.write_bytes(f"{prefix}/{name}", data)
    body = {"study": STUDY, "site": "101", "delivery": D3, **top, "files": entries}
    store.write_bytes(f"{prefix}/manifest.json", json.dumps(body).encode())


@pytest.fixture
def landing(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "landing")


def test_top_level_decimal_and_encoding_are_every_files_default(landing) -> None:
    lb = sample("lb").with_columns(pl.lit("9,5").alias("LBORRES"), pl.lit("Hämoglobin").alias("LBTEST"))
    data = encode(lb, "csv", encoding="cp1252", separator=";")
    _deliver(landing, {"lb.csv": data}, [_entry("lb.csv", data, 3)], encoding="cp1252", decimal=",")

    result = ingest_site(landing, STUDY, "101", now=NOW)
    assert result.delivery == D3 and result.findings.height == 0
    frame = result.frames["lb"]
    assert frame["DECIMAL"].to_list() == [","] * 3  # the evaluation reads 9,5 as 9.5
    assert frame["LBTEST"].to_list() == ["Hämoglobin"] * 3  # read as cp1252, as the top level says
    assert_balanced(result)


def test_a_files_own_setting_overrides_the_top_level_default(landing) -> None:
    dm = sample("dm")
    utf8 = encode(dm.with_columns(pl.lit("Zürich").alias("COUNTRY")), "csv")
    lb = encode(sample("lb"), "csv", encoding="cp1252")
    _deliver(landing, {"dm.csv": utf8, "lb.csv": lb},
             [_entry("dm.csv", utf8, 3, encoding="utf-8", decimal="."), _entry("lb.csv", lb, 3)],
             encoding="cp1252", decimal=",")

    result = ingest_site(landing, STUDY, "101", now=NOW)
    assert result.findings.height == 0
    assert result.frames["dm"]["COUNTRY"].to_list() == ["Zürich"] * 3
    assert result.frames["dm"]["DECIMAL"].to_list() == ["."] * 3
    assert result.frames["lb"]["DECIMAL"].to_list() == [","] * 3


@pytest.mark.parametrize("fmt", ["parquet", "xlsx"])
def test_an_encoding_for_a_binary_format_is_ignored_with_a_note(landing, fmt) -> None:
    data = encode(sample("lb"), fmt)
    _deliver(landing, {f"lb.{fmt}": data}, [_entry(f"lb.{fmt}", data, 3, encoding="cp1252")])

    result = ingest_site(landing, STUDY, "101", now=NOW)
    assert result.delivery == D3 and result.frames["lb"].height == 3  # the delivery is used, not rejected
    assert codes(result.findings) == [Code.ENCODING_IGNORED]
    note = result.findings.row(0, named=True)
    assert (note["DOMAIN"], note["VARIABLE"], note["OBSERVED"]) == ("LB", "encoding", "cp1252")
    assert note["SOURCE"] == f"{STUDY}/101/{D3}/manifest.json"
    assert f"lb.{fmt}" in note["MESSAGE"] and "ignored" in note["MESSAGE"] and "Site 101" in note["MESSAGE"]


def test_utf8_declared_for_a_binary_format_needs_no_note(landing) -> None:
    data = encode(sample("lb"), "parquet")
    _deliver(landing, {"lb.parquet": data}, [_entry("lb.parquet", data, 3, encoding="utf-8")], encoding="latin-1")
    result = ingest_site(landing, STUDY, "101", now=NOW)
    assert result.delivery == D3 and result.findings.height == 0


def test_a_top_level_encoding_no_text_file_takes_is_not_a_rejection(landing) -> None:
    data = encode(sample("lb"), "parquet")
    _deliver(landing, {"lb.parquet": data}, [_entry("lb.parquet", data, 3)], encoding="binary")
    result = ingest_site(landing, STUDY, "101", now=NOW)
    assert result.delivery == D3
    assert codes(result.findings) == [Code.ENCODING_IGNORED]


BASE = {"study": STUDY, "site": "101", "delivery": D3,
        "files": [{"name": "lb.csv", "sha256": "a" * 64, "rows": 3}]}


@pytest.mark.parametrize(
    ("change", "variable", "words"),
    [
        ({"generated_by": "edc"}, "generated_by", "unknown keys ['generated_by']"),  # a misspelt setting
        ({"decimals": ","}, "decimals", "unknown keys ['decimals']"),
        ({"encoding": "ebcdic"}, "encoding", "top-level encoding"),  # taken by lb.csv: cannot be read
        ({"decimal": ";"}, "decimal", "top-level decimal"),
        ({"files": [{"name": "lb.csv", "sha256": "a" * 64, "rows": 3, "encodng": "cp1252"}]}, "encodng",
         "files[0] (lb.csv) has unknown keys ['encodng']"),
        ({"files": [{"name": "lb.csv", "sha256": "a" * 64, "rows": True}]}, "rows", "whole number"),
        ({"files": [{"name": "lb.csv", "sha256": "a" * 64}]}, "rows", "lacks ['rows']"),
    ],
)
def test_what_cannot_be_trusted_still_rejects_the_delivery(change, variable, words) -> None:
    body = {**BASE, **change}
    with pytest.raises(ManifestProblem) as caught:
        parse_manifest(json.dumps(body).encode(), study=STUDY, site="101", delivery=D3)
    assert caught.value.code is Code.MANIFEST_INVALID
    assert caught.value.variable == variable
    assert words in caught.value.detail


def test_every_problem_is_named_at_once() -> None:
    body = {**BASE, "files": [{"name": "lb.csv", "sha256": "xyz", "rows": -1, "extra": 1}]}
    with pytest.raises(ManifestProblem) as caught:
        parse_manifest(json.dumps(body).encode(), study=STUDY, site="101", delivery=D3)
    detail = caught.value.detail
    assert "unknown keys ['extra']" in detail and "sha256 must be 64 hexadecimal digits" in detail
    assert "rows must be a whole number >= 0" in detail
    assert set(caught.value.variable.split(",")) == {"extra", "sha256", "rows"}


def test_the_document_model_is_pydantic_and_refuses_unknown_keys() -> None:
    from ingestion.manifest import ManifestDocument

    schema = ManifestDocument.model_json_schema()
    assert schema["additionalProperties"] is False
    assert {"study", "site", "delivery", "files", "encoding", "decimal"} == set(schema["properties"])
