"""Storing a file made only to be stored (a rendered output): `move_file` and `scratch_folder`.

A folder store renames the file into place from a scratch folder inside its root, so a night's largest
outputs are written once and never copied (docs/benchmarks.md, "Publish within ingestion"); on another
filesystem, or on S3, the file is copied or uploaded, then removed. Either way the caller's file is gone.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from publication.marker import StagingWriter
from storage import LocalStore, S3Store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "local":
        return LocalStore(tmp_path / "reports")
    return S3Store(f"s3://{request.getfixturevalue('s3_bucket')}/reports",
                   endpoint_url=request.getfixturevalue("s3_endpoint"))


def test_a_moved_file_becomes_the_object_and_leaves_its_place(store) -> None:
    with store.scratch_folder() as folder:
        made = folder / "eligibility.csv"
        made.write_bytes(b"STUDYID,USUBJID\nSZ003,SZ003-101-0001\n")
        store.move_file("SZ003/2026-11-28/eligibility.csv", made, content_type="text/csv")
        assert not made.exists()
    assert store.read_bytes("SZ003/2026-11-28/eligibility.csv") == b"STUDYID,USUBJID\nSZ003,SZ003-101-0001\n"
    assert [o.key for o in store.list("")] == ["SZ003/2026-11-28/eligibility.csv"]


def test_a_scratch_folder_is_never_listed_and_is_removed_even_after_an_error(store) -> None:
    store.write_bytes("SZ003/2026-11-28/report.html", b"<html>")
    with pytest.raises(RuntimeError), store.scratch_folder() as folder:
        (folder / "half.csv").write_bytes(b"a,b\n")
        assert [o.key for o in store.list("")] == ["SZ003/2026-11-28/report.html"]
        assert store.list_dirs("") == ["SZ003"]
        raise RuntimeError("a renderer failed")
    assert not folder.exists()


def test_a_folder_store_renames_the_file_into_place_without_copying_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "reports")
    staging = "_audit/SZ003/staging/2026-11-28/run-1"
    with store.scratch_folder(staging) as folder:
        # in the folder the files go to: one filesystem, and no write permission needed anywhere else
        assert folder.parent == store.root / staging
        made = folder / "validation.parquet"
        made.write_bytes(b"PAR1...")
        inode = made.stat().st_ino
        store.move_file(f"{staging}/validation.parquet", made)
    assert (store.root / staging / "validation.parquet").stat().st_ino == inode
    assert [p.name for p in (store.root / staging).iterdir()] == ["validation.parquet"]


def test_folders_that_only_look_temporary_are_still_listed(tmp_path: Path) -> None:
    """Only the audit's own scratch folders are hidden: a site folder a site happened to call `.tmp` or
    `.x.tmp` is listed as S3 would list it."""
    store = LocalStore(tmp_path / "landing")
    store.write_bytes("SZ003/.tmp/20261127T230000Z/dm.csv", b"x")
    store.write_bytes("SZ003/.x.tmp/20261127T230000Z/dm.csv", b"y")
    assert store.list_dirs("SZ003") == [".tmp", ".x.tmp"]
    assert [o.key for o in store.list("SZ003")] == ["SZ003/.tmp/20261127T230000Z/dm.csv",
                                                    "SZ003/.x.tmp/20261127T230000Z/dm.csv"]


def test_a_move_replaces_an_older_object_whole(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "reports")
    store.write_bytes("SZ003/2026-11-28/dv.csv", b"old")
    with store.scratch_folder() as folder:
        (folder / "dv.csv").write_bytes(b"new")
        store.move_file("SZ003/2026-11-28/dv.csv", folder / "dv.csv")
    assert store.read_bytes("SZ003/2026-11-28/dv.csv") == b"new"


def test_a_file_on_another_filesystem_is_copied_then_removed(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "reports")
    made = tmp_path / "elsewhere" / "subjects.csv"
    made.parent.mkdir()
    made.write_bytes(b"USUBJID\nSZ003-101-0001\n")
    real_replace = os.replace

    def across_devices(src, dst):  # a rename from the caller's file: another filesystem
        if Path(src) == made:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", across_devices)
    store.move_file("SZ003/2026-11-28/subjects.csv", made)
    assert store.read_bytes("SZ003/2026-11-28/subjects.csv") == b"USUBJID\nSZ003-101-0001\n"
    assert not made.exists()
    assert [p.name for p in (store.root / "SZ003/2026-11-28").iterdir()] == ["subjects.csv"]  # no temp left


def test_a_move_across_filesystems_that_fails_leaves_the_previous_object_and_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "reports")
    store.write_bytes("SZ003/2026-11-28/eligibility.csv", b"last night's")
    made = tmp_path / "elsewhere.csv"
    made.write_bytes(b"tonight's")
    real_replace = os.replace

    def across_devices(src, dst):
        if Path(src) == made:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    def disk_full(src, dst, **_):
        Path(dst).write_bytes(b"tonig")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", across_devices)
    monkeypatch.setattr(shutil, "copyfile", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.move_file("SZ003/2026-11-28/eligibility.csv", made)
    assert store.read_bytes("SZ003/2026-11-28/eligibility.csv") == b"last night's"
    assert [p.name for p in (store.root / "SZ003/2026-11-28").iterdir()] == ["eligibility.csv"]
    assert made.read_bytes() == b"tonight's"  # nothing lost: a retry renders and moves again


def test_s3_moves_small_files_in_one_put_and_large_ones_in_parts(s3_endpoint: str, s3_bucket: str,
                                                                 tmp_path: Path) -> None:
    store = S3Store(f"s3://{s3_bucket}/reports", endpoint_url=s3_endpoint)
    small, large = tmp_path / "101.csv", tmp_path / "eligibility.csv"
    small.write_bytes(b"QUERY_ID\nQ-1\n")
    large.write_bytes(os.urandom(9 * 1024 * 1024))
    store.move_file("SZ003/2026-11-28/site_queries/101.csv", small, content_type="text/csv")
    store.move_file("SZ003/2026-11-28/eligibility.csv", large, content_type="text/csv")
    assert not small.exists() and not large.exists()
    assert store.read_bytes("SZ003/2026-11-28/site_queries/101.csv") == b"QUERY_ID\nQ-1\n"
    assert store.head("SZ003/2026-11-28/eligibility.csv").size == 9 * 1024 * 1024


def test_an_s3_upload_that_fails_keeps_the_file(s3_endpoint: str, tmp_path: Path) -> None:
    store = S3Store("s3://no-such-bucket-here/reports", endpoint_url=s3_endpoint)
    made = tmp_path / "101.csv"
    made.write_bytes(b"QUERY_ID\n")
    with pytest.raises(Exception, match="no-such-bucket-here"):
        store.move_file("SZ003/2026-11-28/site_queries/101.csv", made)
    assert made.read_bytes() == b"QUERY_ID\n"


def test_a_copy_that_fails_leaves_the_previous_object_and_no_partial_file(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "reports")
    store.write_bytes("SZ003/2026-11-28/report.xlsx", b"last night's")
    source = tmp_path / "report.xlsx"
    source.write_bytes(b"tonight's")

    def disk_full(src, dst, **_):
        Path(dst).write_bytes(b"tonig")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.write_file("SZ003/2026-11-28/report.xlsx", source)
    assert store.read_bytes("SZ003/2026-11-28/report.xlsx") == b"last night's"
    assert [p.name for p in (store.root / "SZ003/2026-11-28").iterdir()] == ["report.xlsx"]


def test_the_staging_writer_records_what_the_moved_file_held(store) -> None:
    writer = StagingWriter(store, "_audit/SZ003/staging/2026-11-28/run-1")
    data = b"QUERY_ID,SITEID\nQ-1,101\n" * 1000
    with writer.scratch_folder() as folder:
        (folder / "101.csv").write_bytes(data)
        writer.move_file("_audit/SZ003/staging/2026-11-28/run-1/site_queries/101.csv", folder / "101.csv")
    assert writer.written == {"site_queries/101.csv": (hashlib.sha256(data).hexdigest(), len(data))}
