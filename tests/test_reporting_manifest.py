"""run_manifest.json: inputs, deliveries, sites not audited, and the per-domain reconciliation."""

from __future__ import annotations

import json
from datetime import date

import polars as pl

from contracts import EXCLUSIONS, Evaluation, IngestResult, InputObject, ValidationResult
from contracts.records import DeliveryDecision
from reporting import build_run_manifest


def run(rows_evaluated_lb: int = 7):
    inputs = [
        InputObject("SZ003/102/D2/lb.csv", "102", "lb", "b" * 64, rows_read=6, rows_rejected=2,
                    rejected_reasons={"unparseable_date": 2}, version_id="v2"),
        InputObject("SZ003/101/D1/lb.csv", "101", "lb", "a" * 64, rows_read=5, etag="e1"),
        InputObject("SZ003/101/D1/dm.csv", "101", "dm", "c" * 64, rows_read=3),
        InputObject("SZ003/101/D1/manifest.json", "101", None, "d" * 64, rows_read=0),
    ]
    ingest = IngestResult(
        study="SZ003", domains={}, inputs=inputs,
        deliveries=[DeliveryDecision("102", "D2", "USED", "newer D3 rejected, D2 used"),
                    DeliveryDecision("102", "D3", "REJECTED", "lb.csv sha256 mismatch"),
                    DeliveryDecision("101", "D1", "USED"),
                    DeliveryDecision("103", "D9", "INCOMPLETE", "no manifest.json for 30 hours")],
        findings=pl.DataFrame({"X": [1, 2]}), sites_audited=["102", "101"],
        sites_not_audited={"103": "no complete delivery"},
    )
    rejected = pl.DataFrame({"SOURCE_KEY": ["SZ003/101/D1/lb.csv"] * 2, "SOURCE_ROW": [4, 4], "DOMAIN": ["LB", "LB"],
                             "VARIABLE": ["USUBJID", "LBDTC"], "MESSAGE": ["orphan", "dup"]}, schema=EXCLUSIONS)
    validation = ValidationResult(rejected=rejected, rows_validated={"lb": 9, "dm": 3})
    evaluation = Evaluation(subjects=pl.DataFrame({"A": [1, 2, 3]}), eligibility=pl.DataFrame(),
                            discrepancies=pl.DataFrame({"A": [1]}), protocol_id="SZ003", protocol_version="v1.2",
                            rows_evaluated={"lb": rows_evaluated_lb, "dm": 3})
    return build_run_manifest(study="SZ003", as_of=date(2026, 11, 28), ingest=ingest, validation=validation,
                              evaluation=evaluation, software_version="0.1.0")


def test_manifest_records_inputs_deliveries_and_versions():
    manifest = run()
    assert manifest["as_of"] == "2026-11-28"
    assert manifest["protocol"] == {"id": "SZ003", "version": "v1.2"}
    assert manifest["software_version"] == "0.1.0"
    assert [i["key"] for i in manifest["inputs"]] == sorted(i["key"] for i in manifest["inputs"])
    lb102 = next(i for i in manifest["inputs"] if i["key"] == "SZ003/102/D2/lb.csv")
    assert lb102 == {"key": "SZ003/102/D2/lb.csv", "site": "102", "domain": "LB", "version_id": "v2", "etag": None,
                     "sha256": "b" * 64, "rows_read": 6, "rows_rejected": 2,
                     "rejected_reasons": {"unparseable_date": 2}, "rows_rejected_validation": 0}
    # a row validation rejected is counted on its file (once, whichever checks rejected it): a user trial found
    # no per-file count of the rows validation dropped
    lb101 = next(i for i in manifest["inputs"] if i["key"] == "SZ003/101/D1/lb.csv")
    assert (lb101["rows_read"], lb101["rows_rejected"], lb101["rows_rejected_validation"]) == (5, 0, 1)
    assert [(d["site"], d["delivery"], d["status"]) for d in manifest["deliveries_not_used"]] == [
        ("102", "D3", "REJECTED"), ("103", "D9", "INCOMPLETE")]
    assert manifest["sites_audited"] == ["101", "102"]
    assert manifest["sites_not_audited"] == [{"site": "103", "reason": "no complete delivery"}]
    assert manifest["findings"] == {"ingest": 2, "validation": 0}
    json.dumps(manifest)  # JSON-ready


def test_reconciliation_balances_per_domain():
    manifest = run()
    rows = {r["DOMAIN"]: r for r in manifest["reconciliation"]}
    assert list(rows) == ["DM", "LB"]  # DTS order, manifest.json (no domain) left out
    # LB: 11 received; 2 rejected at ingestion + 9 validated = 11; 1 row rejected by validation (one SOURCE,
    # two causes), 7 evaluated + 3 rejected = 10 -> does not balance when evaluation lost one row
    assert rows["LB"] == {"DOMAIN": "LB", "RECEIVED": 11, "REJECTED_INGEST": 2, "VALIDATED": 11,
                          "REJECTED_VALIDATION": 1, "EVALUATED": 7, "REJECTED": 3, "BALANCED": False}
    assert rows["DM"]["BALANCED"] is True
    assert manifest["balanced"] is False
    balanced = run(rows_evaluated_lb=8)
    assert all(r["BALANCED"] for r in balanced["reconciliation"]) and balanced["balanced"] is True
    assert balanced["totals"]["rows_received"] == 14 and balanced["totals"]["rows_rejected"] == 3


def test_what_changed_in_the_protocol_since_the_previous_run_is_one_sentence() -> None:
    from contracts.protocol import load_protocol
    from reporting.manifest import protocol_change, protocol_section

    tonight = {"protocol": protocol_section("SZ003", "1.0", load_protocol())}
    (version,) = tonight["protocol"]["versions"]
    assert (version["tivers"], version["file"], len(version["digest"])) == ("1.0", "sz003.yaml", 64)
    assert protocol_change(tonight, tonight) is None
    assert protocol_change(None, tonight) is None  # a first night: nothing to compare with
    amended = {"protocol": {"id": "SZ003", "version": "1.0, 2.0"}}
    assert protocol_change(tonight, amended) == (
        "The protocol changed since the previous run: version(s) 1.0 then, 1.0, 2.0 tonight. Findings new tonight "
        "may come from the change.")
    edited = {"protocol": {**tonight["protocol"], "versions": [{**version, "digest": "0" * 64}]}}
    assert "the criteria of version(s) 1.0 differ" in protocol_change(tonight, edited)
    # a manifest written before versions were recorded tells only the version text
    assert protocol_change({"protocol": {"id": "SZ003", "version": "1.0"}}, edited) is None


def test_a_protocols_content_digest_follows_what_it_judges_by_not_its_layout(tmp_path) -> None:
    from contracts.protocol import bundled_protocol_path, load_protocol

    text = bundled_protocol_path().read_text(encoding="utf-8")
    assert text.count('op: ">=", limit: 60}') == 1
    digests = []
    for name, body in {"same.yaml": text, "comment.yaml": "# a comment\n" + text,
                       "limit.yaml": text.replace("op: \">=\", limit: 60}", "op: \">=\", limit: 61}", 1)}.items():
        folder = tmp_path / name.removesuffix(".yaml")
        folder.mkdir()
        (folder / name).write_text(body, encoding="utf-8")
        digests.append(load_protocol(folder / name).content_digest())
    assert digests[0] == digests[1] != digests[2]
