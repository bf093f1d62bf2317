"""A wrong landing root is refused with one line, not mistaken for sites that did not deliver."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from ingestion import LandingError, list_sites
from storage import LocalStore, S3Store


def _deliver(root: Path, *keys: str) -> None:
    for key in keys:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b"x")


def test_site_folders_of_the_study_are_listed(tmp_path: Path) -> None:
    _deliver(tmp_path / "landing", "SZ003/101/d1/dm.csv", "SZ003/102/d1/dm.csv", "SZ003/ground_truth.json")
    assert list_sites(LocalStore(tmp_path / "landing"), "SZ003") == ["101", "102"]


def test_an_existing_landing_without_the_study_folder_has_no_sites_yet(tmp_path: Path) -> None:
    _deliver(tmp_path / "landing", "SZ004/101/d1/dm.csv")
    (tmp_path / "empty").mkdir()
    assert list_sites(LocalStore(tmp_path / "landing"), "SZ003") == []
    assert list_sites(LocalStore(tmp_path / "empty"), "SZ003") == []


def test_a_landing_root_that_does_not_exist_is_refused_naming_study_and_path(tmp_path: Path) -> None:
    with pytest.raises(LandingError) as raised:
        list_sites(LocalStore(tmp_path / "landnig"), "SZ003")
    assert str(raised.value) == (f"study SZ003: the landing root {tmp_path / 'landnig'} does not exist "
                                 "(check the path or bucket in the study's `landing`)")


def test_a_landing_root_one_level_too_deep_is_refused_naming_the_right_root(tmp_path: Path) -> None:
    _deliver(tmp_path / "landing", "SZ003/101/d1/dm.csv", "SZ003/102/d1/dm.csv")
    with pytest.raises(LandingError) as raised:
        list_sites(LocalStore(tmp_path / "landing" / "SZ003"), "SZ003")
    assert str(raised.value) == (
        f"study SZ003: the landing root {tmp_path / 'landing' / 'SZ003'} looks like the study's own folder (it "
        f"holds 101, 102, and no SZ003/): sites deliver to <landing>/SZ003/<site>/, so set `landing` to "
        f"{tmp_path / 'landing'}")


def test_an_empty_folder_named_like_the_study_is_only_empty(tmp_path: Path) -> None:
    (tmp_path / "SZ003").mkdir()
    assert list_sites(LocalStore(tmp_path / "SZ003"), "SZ003") == []


def test_on_s3_a_prefix_one_level_too_deep_is_refused_and_a_bucket_is_never_the_study_folder(
        s3_endpoint: str, s3_bucket: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.put_object(Bucket=s3_bucket, Key="in/SZ003/101/d1/dm.csv", Body=b"x")
    assert list_sites(S3Store(f"s3://{s3_bucket}/in", endpoint_url=s3_endpoint), "SZ003") == ["101"]
    with pytest.raises(LandingError, match=rf"looks like the study's own folder .* set `landing` to s3://{s3_bucket}/in$"):
        list_sites(S3Store(f"s3://{s3_bucket}/in/SZ003", endpoint_url=s3_endpoint), "SZ003")
    client.create_bucket(Bucket="sz003")
    client.put_object(Bucket="sz003", Key="101/d1/dm.csv", Body=b"x")
    assert list_sites(S3Store("s3://sz003", endpoint_url=s3_endpoint), "sz003") == []  # a bucket: nothing above it


def test_on_s3_a_missing_bucket_is_named(s3_endpoint: str) -> None:
    from storage import BucketNotFound

    missing = r"cannot list s3://no-such-landing/SZ003 \(endpoint http://.*\): the bucket does not exist"
    with pytest.raises(BucketNotFound, match=missing):
        list_sites(S3Store("s3://no-such-landing", endpoint_url=s3_endpoint), "SZ003")
