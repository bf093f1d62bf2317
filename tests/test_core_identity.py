"""Stable ids and fingerprints: pinned digests (an upgrade must not change a finding's identity),
missing parts distinct from empty ones, and row order irrelevant."""

from __future__ import annotations

import polars as pl

from core.identity import fingerprint, stable_id


def test_ids_are_pinned_across_versions() -> None:
    frame = pl.DataFrame({"a": ["x", "y"], "b": ["1", "2"]})
    got = frame.select(stable_id("F", "a", "b").alias("ID"), fingerprint("a", "b").alias("FP"))
    assert got["ID"].to_list() == ["F-9d8e52c806fb31e7", "F-03ccd169bd72d9ba"]
    assert got["FP"][0] == "646d8c33f47f9eaa2bbe7514b625cfec"


def test_missing_is_not_empty_and_order_does_not_matter() -> None:
    frame = pl.DataFrame({"a": [None, "", "x", "x"], "b": ["1", "1", "1", "1"]})
    ids = frame.select(stable_id("F", "a", "b").alias("ID"))["ID"].to_list()
    assert ids[0] != ids[1] and ids[2] == ids[3]
    shuffled = frame.reverse().select(stable_id("F", "a", "b").alias("ID"))["ID"].to_list()
    assert shuffled == list(reversed(ids))


def test_parts_are_not_concatenated_ambiguously() -> None:
    frame = pl.DataFrame({"a": ["ab", "a"], "b": ["c", "bc"]})
    ids = frame.select(stable_id("F", "a", "b").alias("ID"))["ID"].to_list()
    assert ids[0] != ids[1]
