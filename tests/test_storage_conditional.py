"""Conditional writes, the primitive of the audit's lease: create-if-absent, replace-if-match (ETag), and
reads that return the ETag of exactly what they read; on a local folder and on S3 over HTTP (moto,
whose conditional writes storage.local_endpoint makes atomic as S3's)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from storage import LocalStore, ObjectNotFound, Store


def test_create_if_absent_returns_the_etag_of_what_it_wrote(store: Store) -> None:
    etag = store.create_if_absent("_audit/SZ003/lease.json", b"one")
    assert etag
    assert store.create_if_absent("_audit/SZ003/lease.json", b"two") is None
    assert store.read_versioned("_audit/SZ003/lease.json") == (b"one", etag)
    assert store.head("_audit/SZ003/lease.json").etag == etag


def test_replace_if_match_wins_only_on_the_version_it_read(store: Store) -> None:
    first = store.create_if_absent("k.json", b"v1")
    second = store.replace_if_match("k.json", b"v2", first)
    assert second and second != first
    assert store.replace_if_match("k.json", b"stale", first) is None  # someone wrote since
    assert store.read_versioned("k.json") == (b"v2", second)
    assert store.replace_if_match("absent.json", b"x", second) is None  # a vanished object changed too
    assert store.head("absent.json") is None


def test_read_versioned_of_a_missing_object_is_not_found(store: Store) -> None:
    with pytest.raises(ObjectNotFound):
        store.read_versioned("nope.json")


def test_every_write_gives_a_new_etag_even_with_the_same_content(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    etags = {store.create_if_absent("k", b"same")}
    for _ in range(20):
        _data, current = store.read_versioned("k")
        etags.add(store.replace_if_match("k", b"same", current))
    assert len(etags) == 21 and None not in etags


def test_of_many_racing_replacements_exactly_one_wins(store: Store) -> None:
    base = store.create_if_absent("race.json", b"base")

    def attempt(i: int) -> bool:
        return store.replace_if_match("race.json", f"run {i}".encode(), base) is not None

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(16)))
    assert results.count(True) == 1
    assert store.read_bytes("race.json") == f"run {results.index(True)}".encode()


def test_of_many_racing_creations_exactly_one_wins(store: Store) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: store.create_if_absent("new.json", f"{i}".encode()), range(16)))
    assert sum(r is not None for r in results) == 1


def _replace_in_another_process(root: str, etag: str, value: str) -> bool:
    return LocalStore(root).replace_if_match("race.json", value.encode(), etag) is not None


def test_local_compare_and_swap_holds_between_processes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    base = store.create_if_absent("race.json", b"base")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_replace_in_another_process, [(str(tmp_path), base, f"p{i}") for i in range(12)])
    assert results.count(True) == 1


def test_a_local_conditional_write_never_shows_a_partial_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.create_if_absent("a/b.json", b"x" * 100_000)
    assert [o.key for o in store.list()] == ["a/b.json"]  # no temporary file left beside it


def test_a_folder_never_lists_a_file_still_being_written(tmp_path: Path) -> None:
    """A concurrent reader (the review ledger's verification) lists only whole objects, as on S3."""
    store = LocalStore(tmp_path)
    store.write_bytes("a/one.json", b"1")
    (tmp_path / "a" / ".x1y2z3.tmp").write_bytes(b"half")  # what a writer leaves while it writes
    assert [o.key for o in store.list("a")] == ["a/one.json"]
    assert store.create_if_absent("a/two.json", b"2") is not None
    assert [o.key for o in store.list("a")] == ["a/one.json", "a/two.json"]
