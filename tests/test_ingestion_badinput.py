"""The bad-input corpus (tests/data/ingestion/corpus): each damaged file or manifest gives its finding,
the rest of the site's delivery is used, a clean site of the same study is unaffected, and every
row read is accounted for."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml
from test_ingestion_support import D2, D3, NOW, STUDY, assert_balanced, codes, deliver, sample
from test_ingestion_support import store as store

from ingestion import Code, combine_sites, ingest_site
from tests.support.delivery_writer import DeliveryFile, encode, write_delivery

CORPUS = Path(__file__).parent / "data" / "ingestion" / "corpus"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))


def _clean_site(landing) -> object:
    deliver(landing, "101", D3, {d: sample(d) for d in ("dm", "lb", "vs")})
    return ingest_site(landing, STUDY, "101", now=NOW)


def _same(a, b) -> None:
    assert sorted(a.frames) == sorted(b.frames)
    for domain in a.frames:
        assert a.frames[domain].equals(b.frames[domain])
    assert a.findings.equals(b.findings) and a.delivery == b.delivery


@pytest.mark.parametrize("case", CASES["files"], ids=lambda c: f"{c['file']}-{c.get('encoding', 'utf-8')}")
def test_bad_file_rejects_only_itself(store, case: dict) -> None:
    baseline = _clean_site(store)
    dm = sample("dm", site="102")
    data = (CORPUS / case["file"]).read_bytes()
    write_delivery(store, STUDY, "102", D3, [
        DeliveryFile("dm.csv", encode(dm, "csv"), dm.height),
        DeliveryFile(case["as"], data, case["rows"], encoding=case.get("encoding", "utf-8")),
    ])
    sites = [ingest_site(store, STUDY, site, now=NOW) for site in ("101", "102")]
    clean, bad = sites

    _same(clean, baseline)
    assert bad.delivery == D3 and bad.frames["dm"].height == 3  # the rest of the delivery is used
    expected = [case["code"]] if case["code"] else []
    found = codes(bad.findings)
    assert sorted(set(found)) == expected
    key = f"{STUDY}/102/{D3}/{case['as']}"
    for row in bad.findings.iter_rows(named=True):
        assert row["SITEID"] == "102" and row["STUDYID"] == STUDY
        assert row["MESSAGE"].startswith(f"Site 102, file {key}")
        assert row["SOURCE"].startswith(key)
        assert case.get("message", "") in row["MESSAGE"] or len(found) > 1
    if "message" in case:
        assert any(case["message"] in m for m in bad.findings["MESSAGE"])
    obj = next(i for i in bad.inputs if i.key == key)
    assert (obj.rows_read, obj.rows_rejected) == (case["rows_read"], case["rows_rejected"])
    assert_balanced(bad)
    assert_balanced(clean)
    result = combine_sites(STUDY, sites)
    assert result.sites_audited == ["101", "102"]
    kept_rows = sum(f.filter(pl.col("DELIVERY_SITEID") == "102").height for f in result.domains.values())
    assert kept_rows == sum(i.rows_read - i.rows_rejected for i in bad.inputs)


def _deliver_case(landing, case: dict) -> None:
    dm = sample("dm", site="102", n=3)
    if "manifest" in case:
        landing.write_bytes(f"{STUDY}/102/{D3}/dm.csv", encode(dm, "csv"))
        landing.write_bytes(f"{STUDY}/102/{D3}/manifest.json", (CORPUS / "manifests" / case["manifest"]).read_bytes())
    else:
        write_delivery(landing, STUDY, "102", D3, [
            DeliveryFile("dm.csv", encode(dm, "csv"), 3),
            DeliveryFile(case["as"], (CORPUS / case["file"]).read_bytes(), case["rows"]),
        ])


@pytest.mark.parametrize("case", CASES["deliveries"], ids=lambda c: c.get("manifest") or c["file"])
def test_bad_delivery_falls_back_to_previous(store, case: dict) -> None:
    baseline = _clean_site(store)
    deliver(store, "102", D2, {"dm": sample("dm", site="102", n=2)})
    _deliver_case(store, case)
    clean = ingest_site(store, STUDY, "101", now=NOW)
    bad = ingest_site(store, STUDY, "102", now=NOW)

    _same(clean, baseline)
    assert bad.delivery == D2 and bad.frames["dm"].height == 2
    assert {d.delivery: str(d.status) for d in bad.deliveries} == {D3: "REJECTED", D2: "USED"}
    assert sorted(codes(bad.findings)) == sorted([case["code"], Code.DELIVERY_FALLBACK])
    rejection = bad.findings.filter(pl.col("EXPECTATION") == case["code"])["MESSAGE"][0]
    assert rejection.startswith("Site 102") and "rejected" in rejection
    assert_balanced(bad)
