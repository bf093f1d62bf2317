"""The Store interface behaves the same on a local folder and on S3 over HTTP (moto server)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from storage import LocalStore, S3Store, UnsafeKeyError, open_store, safe_key


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "local":
        return LocalStore(tmp_path / "root")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(f"s3://{bucket}/landing", endpoint_url=endpoint)


def test_write_list_read_roundtrip(store) -> None:
    store.write_bytes("SZ003/101/20261127T230000Z/lb.csv", b"a,b\n1,2\n", content_type="text/csv")
    store.write_bytes("SZ003/102/20261127T230000Z/dm.csv", b"x\n")
    keys = [o.key for o in store.list("SZ003")]
    assert keys == ["SZ003/101/20261127T230000Z/lb.csv", "SZ003/102/20261127T230000Z/dm.csv"]
    assert store.list_dirs("SZ003") == ["101", "102"]
    assert store.read_bytes("SZ003/101/20261127T230000Z/lb.csv") == b"a,b\n1,2\n"
    assert store.head("SZ003/101/20261127T230000Z/lb.csv").size == 8
    assert store.head("SZ003/nope.csv") is None


def test_create_exclusive_is_a_lock(store) -> None:
    assert store.create_exclusive("SZ003/.lock", b"run 1") is True
    assert store.create_exclusive("SZ003/.lock", b"run 2") is False
    assert store.read_bytes("SZ003/.lock") == b"run 1"
    store.delete("SZ003/.lock")
    assert store.create_exclusive("SZ003/.lock", b"run 3") is True


def test_s3_listing_is_paginated(s3_endpoint: str, s3_bucket: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for i in range(1105):
        client.put_object(Bucket=s3_bucket, Key=f"p/k{i:05d}", Body=b"")
    store = S3Store(f"s3://{s3_bucket}/p", endpoint_url=s3_endpoint)
    assert len(list(store.list())) == 1105


def test_s3_writes_are_encrypted_at_rest(s3_endpoint: str, s3_bucket: str) -> None:
    store = S3Store(f"s3://{s3_bucket}", endpoint_url=s3_endpoint)
    store.write_bytes("r/report.html", b"<html>", content_type="text/html")
    meta = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").head_object(
        Bucket=s3_bucket, Key="r/report.html"
    )
    assert meta["ServerSideEncryption"] == "AES256"
    assert meta["ContentType"] == "text/html"


UNSAFE_KEYS = ["../x", "a/../../x", "/etc/passwd", "a//b", "a\\b", "a/./b", "c:/x", "a\x00b", ""]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_refused(key: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafeKeyError):
        safe_key(key)
    with pytest.raises(UnsafeKeyError):
        LocalStore(tmp_path).read_bytes(key)


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
