"""The Store interface behaves the same on a local folder and on S3 over HTTP (moto server)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

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


def test_local_listing_is_in_path_order_with_sizes(tmp_path: Path) -> None:
    """Path order (folder by folder), not plain string order: "a/z" before "a-b/x" as in S3 listings of a tree."""
    store = LocalStore(tmp_path)
    for key, data in {"S/a-b/x.csv": b"12", "S/a/z.csv": b"1", "S/a/b/c.csv": b"123", "S/b.csv": b""}.items():
        store.write_bytes(key, data)
    listed = [(o.key, o.size) for o in store.list("S")]
    assert listed == [("S/a/b/c.csv", 3), ("S/a/z.csv", 1), ("S/a-b/x.csv", 2), ("S/b.csv", 0)]
    assert [o.key for o in store.list()] == [k for k, _ in listed]
    assert list(store.list("S/none")) == []


def test_local_symbolic_links_are_not_listed_or_followed_out_of_the_root(tmp_path: Path) -> None:
    """A site that can write to a local landing folder cannot make the audit read outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_bytes(b"not landing data")
    root = tmp_path / "root"
    store = LocalStore(root)
    store.write_bytes("SZ003/101/D/dm.csv", b"ok")
    (root / "SZ003/101/D/lb.csv").symlink_to(outside / "secret.csv")
    (root / "SZ003/101/E").symlink_to(outside, target_is_directory=True)
    assert [o.key for o in store.list("SZ003")] == ["SZ003/101/D/dm.csv"]
    for key in ("SZ003/101/D/lb.csv", "SZ003/101/E/secret.csv"):
        with pytest.raises(ValueError, match="escapes the store root"):
            store.read_bytes(key)
    assert store.read_bytes("SZ003/101/D/dm.csv") == b"ok"


def test_presigned_link_opens_the_object_over_http(s3_endpoint: str, s3_bucket: str) -> None:
    """What a Prefect artifact links to: a plain GET of the URL returns the report, no credentials needed.

    Signed with Signature Version 4 (the expiry is in the URL); moto does not check signatures, so
    that the link is refused once expired is S3's to enforce, not something this test can show.
    """
    import httpx

    store = S3Store(f"s3://{s3_bucket}/reports", endpoint_url=s3_endpoint)
    store.write_bytes("SZ003/2026-11-28/report.html", b"<html>report</html>", content_type="text/html")
    url = store.presigned_url("SZ003/2026-11-28/report.html", timedelta(hours=24))
    assert url.startswith(f"{s3_endpoint}/{s3_bucket}/reports/SZ003/2026-11-28/report.html?")
    query = parse_qs(urlparse(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["86400"]
    assert "X-Amz-Signature" in query and "AWSAccessKeyId" not in query  # never the legacy version 2
    response = httpx.get(url, timeout=10)
    assert (response.status_code, response.content) == (200, b"<html>report</html>")


@pytest.mark.parametrize("lifetime", [timedelta(0), timedelta(days=7, seconds=1)])
def test_presigned_link_lifetime_is_what_s3_accepts(lifetime: timedelta) -> None:
    store = S3Store("s3://bucket/reports", client=object())
    with pytest.raises(ValueError, match="at most 7 days"):
        store.presigned_url("report.html", lifetime)


def test_local_link_is_a_file_url_of_the_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "reports")
    store.write_bytes("SZ003/2026-11-28/report.html", b"<html>")
    url = store.presigned_url("SZ003/2026-11-28/report.html", timedelta(hours=1))
    assert url == (tmp_path / "reports" / "SZ003" / "2026-11-28" / "report.html").resolve().as_uri()
    assert Path(urlparse(url).path).read_bytes() == b"<html>"


def test_exists_tells_a_missing_root_from_an_empty_one(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    assert LocalStore(tmp_path).exists() and not LocalStore(tmp_path / "nope").exists()
    assert S3Store(f"s3://{s3_bucket}/empty/prefix", endpoint_url=s3_endpoint).exists()
    assert not S3Store("s3://no-such-bucket-here/x", endpoint_url=s3_endpoint).exists()


def test_a_bucket_these_credentials_may_not_inspect_exists(s3_endpoint: str, s3_bucket: str) -> None:
    """A least-privilege role may list only its study's prefix: HeadBucket's 403 means the bucket is there."""
    from faults import Action, FaultProxy, Rule

    with FaultProxy(s3_endpoint) as proxy:
        proxy.add(Rule(Action.DENY, method="HEAD", count=None))
        assert S3Store(f"s3://{s3_bucket}/in", endpoint_url=proxy.url).exists()
        assert proxy.seen(outcome="deny")


def test_a_storage_error_in_context_keeps_its_class_and_attributes() -> None:
    from storage import AccessDenied

    error = AccessDenied("cannot list s3://b/: access denied (AccessDenied)", where="s3://b/", operation="list",
                         code="AccessDenied")
    named = error.in_context("study SZ003, landing")
    assert type(named) is AccessDenied and isinstance(named, PermissionError)
    assert str(named) == "study SZ003, landing: cannot list s3://b/: access denied (AccessDenied)"
    assert (named.where, named.operation, named.code) == ("s3://b/", "list", "AccessDenied")
