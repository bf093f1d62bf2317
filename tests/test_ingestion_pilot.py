"""The public CDISC pilot study (CDISCPILOT01) excerpts ingest as standard SDTM: every row, every value."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from test_ingestion_support import D3, NOW, assert_balanced, codes, delivered
from test_ingestion_support import store as store

from ingestion import Code, ingest_site
from tests.support.delivery_writer import DeliveryFile, write_delivery

PILOT = Path(__file__).parent / "data" / "ingestion" / "cdiscpilot01"
STUDY = "CDISCPILOT01"
DOMAINS = ("dm", "ds", "lb", "vs")


def _expected(domain: str) -> pl.DataFrame:
    """The rows as CDISC published them (Dataset-JSON), as text: the oracle for the CSV read."""
    lines = (PILOT / f"{domain}.ndjson").read_text(encoding="utf-8").splitlines()
    columns = json.loads(lines[0])["columns"]
    rows = [[None if v is None or v == "" else str(v) for v in json.loads(line)] for line in lines[1:]]
    return pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.String), orient="row")


def _deliver(landing, drop: dict[str, str] | None = None) -> None:
    files = []
    for domain in DOMAINS:
        data = (PILOT / f"{domain}.csv").read_bytes()
        if drop and domain in drop:
            frame = pl.read_csv(data, infer_schema=False).drop(drop[domain])
            data = frame.write_csv().encode()
        files.append(DeliveryFile(f"{domain}.csv", data, data.count(b"\n") - 1))
    write_delivery(landing, STUDY, "701", D3, files)


def test_pilot_every_row_and_value_read(store) -> None:
    _deliver(store)
    result = ingest_site(store, STUDY, "701", now=NOW)
    assert result.delivery == D3 and result.findings.height == 0
    for domain in DOMAINS:
        expected = _expected(domain)
        got = result.frames[domain]
        assert got.height == expected.height
        assert delivered(got).equals(expected)
    dm = result.frames["dm"]
    assert dm["BRTHDTC"].to_list()[:3] == ["1928", "1936", "1951"]  # partial dates stay text
    # DM rows of other sites than the delivery's are kept; validation compares SITEID and DELIVERY_SITEID
    assert sorted(set(dm["SITEID"].to_list())) == ["701", "704", "708", "710", "711", "718"]
    assert set(dm["DELIVERY_SITEID"].to_list()) == {"701"}
    lb = result.frames["lb"]
    assert lb.filter(pl.col("LBTESTCD") == "TSH")["LBORNRLO"].to_list() == [".32"]  # text kept as sent
    assert_balanced(result)
    assert [i.rows_read for i in result.inputs if i.domain] == [18, 11, 15, 9]


@pytest.mark.parametrize(("domain", "column"), [("dm", "BRTHDTC"), ("dm", "RFICDTC"), ("lb", "LBORRESU")])
def test_pilot_without_a_required_dts_column(store, domain: str, column: str) -> None:
    """The original 2013 pilot DM has no BRTHDTC: that file is rejected, the other domains are used."""
    _deliver(store, drop={domain: column})
    result = ingest_site(store, STUDY, "701", now=NOW)
    assert codes(result.findings) == [Code.FILE_MISSING_COLUMN]
    assert result.findings["VARIABLE"][0] == column
    assert domain not in result.frames
    assert sorted(result.frames) == sorted(set(DOMAINS) - {domain})
    assert_balanced(result)
