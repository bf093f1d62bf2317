"""Helpers shared by the ingestion tests (no tests here): stores, sample domain tables, deliveries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from contracts import DOMAINS
from core.source import source_text
from storage import LocalStore, S3Store, Store
from tests.support.delivery_writer import DeliveryFile, encode, write_delivery

STUDY = "SZ003"
NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
D1 = "20261125T230000Z"
D2 = "20261126T230000Z"
D3 = "20261127T230000Z"


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if kind == "local":
        return LocalStore(tmp_path / "landing")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(f"s3://{bucket}/landing", endpoint_url=endpoint)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The same tests against a local folder and a moto S3 server over HTTP."""
    return make_store(request.param, request, tmp_path)


def sample(domain: str, site: str = "101", n: int = 3, study: str = STUDY) -> pl.DataFrame:
    """A small table with every DTS variable of `domain` (all text), rows distinguishable."""
    spec = DOMAINS[domain]
    columns: dict[str, list[str]] = {}
    for variable in spec.variables:
        if variable == "STUDYID":
            values = [study] * n
        elif variable == "USUBJID":
            values = [f"{study}-{site}-{i:03d}" for i in range(1, n + 1)]
        elif variable == "SITEID":
            values = [site] * n
        elif variable in spec.allowed:
            allowed = spec.allowed[variable]
            values = [allowed[i % len(allowed)] for i in range(n)]
        elif variable in spec.dates:
            values = ["2026-01-15", "2026-02", "2025"][:n] + ["2026-03-01"] * max(0, n - 3)
        else:
            values = [f"{variable.lower()} {i}" for i in range(1, n + 1)]
        columns[variable] = values
    return pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String))


def deliver(store: Store, site: str, delivery: str, tables: dict[str, pl.DataFrame], *,
            fmt: str = "csv", study: str = STUDY, manifest: bool = True, **csv_options: str) -> str:
    """Write `tables` (domain -> frame) as one delivery; return its key prefix."""
    files = [
        DeliveryFile(f"{domain}.{fmt}", encode(frame, fmt, **csv_options), frame.height,
                     encoding=csv_options.get("encoding", "utf-8"))
        for domain, frame in tables.items()
    ]
    return write_delivery(store, study, site, delivery, files, manifest=manifest)


def delivered(frame: pl.DataFrame) -> pl.DataFrame:
    """The delivered columns of an ingested frame (without the columns ingestion adds)."""
    return frame.drop("SOURCE_KEY", "SOURCE_ROW", "DELIVERY_SITEID", "DECIMAL")


def sources(frame: pl.DataFrame) -> list[str]:
    """Each row's source as outputs render it (`<object key>:<row>`)."""
    return frame.select(source_text()).to_series().to_list()


def codes(findings: pl.DataFrame) -> list[str]:
    return findings.get_column("EXPECTATION").to_list()


def assert_balanced(site_ingest) -> None:
    """Every row read is in a frame or rejected: per object, read - rejected = rows kept."""
    kept: dict[str, int] = {}
    for frame in site_ingest.frames.values():
        keys = frame.get_column("SOURCE_KEY")
        for key, n in keys.value_counts().rows():
            kept[key] = n
    for obj in site_ingest.inputs:
        assert obj.rows_read - obj.rows_rejected == kept.get(obj.key, 0), obj
        assert sum(obj.rejected_reasons.values()) == obj.rows_rejected, obj
