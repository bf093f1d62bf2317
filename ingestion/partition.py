"""Partitions of a study for scale-out: consecutive batches of whole sites, closed under subjects.

Eligibility is per subject and a subject belongs to one site, so batches of sites can be audited on
separate workers (flows/partition.py) as long as every row that names a subject lands in the same
partition: validation checks that a row's subject is in DM at the site that delivered it, and that
a natural key occurs once, across all sites. A subject named by two batches (a site delivering rows
of another site's subject) therefore joins those batches, and every batch between them, into one
partition; then each partition is audited exactly as the whole study would be, restricted to its
subjects. The flow learns what it needs for that from each batch's `BatchIndex`, never its rows.
"""

from __future__ import annotations

import dataclasses
import math

import polars as pl

from contracts import SiteIngest
from contracts.records import BatchIndex, PackedSites
from core.packing import frame_bytes, frame_of
from core.values import blank_to_null
from ingestion.combine import not_audited_reason
from ingestion.shape import ADDED


def pack_sites(sites: list[SiteIngest]) -> PackedSites:
    """The batch as a worker keeps it: rows compressed (zstd Arrow IPC), its index, the rest as it is."""
    return PackedSites(sites=[dataclasses.replace(site, frames={}) for site in sites],
                       frames=[{domain: frame_bytes(frame) for domain, frame in site.frames.items()} for site in sites],
                       index=batch_index(sites))


def unpack_sites(batch: PackedSites | list[SiteIngest]) -> list[SiteIngest]:
    """The batch's SiteIngest records with their rows (a batch that is not packed is returned as it is)."""
    if not isinstance(batch, PackedSites):
        return batch
    return [dataclasses.replace(site, frames={domain: frame_of(data) for domain, data in packed.items()})
            for site, packed in zip(batch.sites, batch.frames, strict=True)]


def batch_index(batch: PackedSites | list[SiteIngest]) -> BatchIndex:
    """The batch's sites, subjects, the USUBJIDs its rows name, and its combined columns per domain."""
    if isinstance(batch, PackedSites) and batch.index is not None:
        return batch.index
    sites = unpack_sites(batch) if isinstance(batch, PackedSites) else batch
    ordered = sorted(sites, key=lambda s: s.site)
    ids = [frame.select(blank_to_null("USUBJID").alias("USUBJID")) for s in ordered for frame in s.frames.values()
           if "USUBJID" in frame.columns]
    subject_ids = (pl.concat(ids).drop_nulls().unique().sort("USUBJID") if ids
                   else pl.DataFrame(schema={"USUBJID": pl.String}))
    dm = [s.frames["dm"] for s in ordered if "dm" in s.frames and "USUBJID" in s.frames["dm"].columns]
    subjects = (pl.concat([f.select(blank_to_null("USUBJID").alias("USUBJID")) for f in dm]).drop_nulls()
                .n_unique() if dm else 0)
    return BatchIndex(sites=[s.site for s in ordered],
                      not_audited={s.site: not_audited_reason(s) for s in ordered if not s.audited},
                      subjects=subjects, subject_ids=subject_ids,
                      schemas=combined_schemas([s.frames for s in ordered]))


def combined_schemas(frames: list[dict[str, pl.DataFrame]]) -> dict[str, dict[str, pl.DataType]]:
    """Per domain, the columns `ingestion.combine.combine_domain` gives these frames (in that order):
    delivered columns as text in order of first appearance, then the columns ingestion added."""
    schemas: dict[str, dict[str, pl.DataType]] = {}
    for by_domain in frames:
        for domain, frame in by_domain.items():
            schema = schemas.setdefault(domain, {})
            schema.update({c: pl.String() for c in frame.columns if c not in ADDED and c not in schema})
    for by_domain in frames:
        for domain, frame in by_domain.items():
            schemas[domain].update({c: frame.schema[c] for c in ADDED if c in frame.columns})
    return {domain: _added_last(schema) for domain, schema in sorted(schemas.items())}


def _added_last(schema: dict[str, pl.DataType]) -> dict[str, pl.DataType]:
    """The delivered columns in their order, then those ingestion added (combine_domain's layout)."""
    return {**{c: t for c, t in schema.items() if c not in ADDED}, **{c: schema[c] for c in ADDED if c in schema}}


def study_schemas(indexes: list[BatchIndex]) -> dict[str, dict[str, pl.DataType]]:
    """The study's combined columns per domain from its batches' (in site order): what every partition
    gives its frames, so that a partition is the study restricted to its subjects, column for column."""
    merged: dict[str, dict[str, pl.DataType]] = {}
    for index in indexes:
        for domain, schema in index.schemas.items():
            target = merged.setdefault(domain, {})
            target.update({c: t for c, t in schema.items() if c not in target})
    return {domain: _added_last(schema) for domain, schema in sorted(merged.items())}


def joined_batches(indexes: list[BatchIndex]) -> list[bool]:
    """joined[i]: batch i and batch i + 1 must be in one partition (a subject spans them or batches around them)."""
    joined = [False] * max(0, len(indexes) - 1)
    frames = [index.subject_ids.with_columns(pl.lit(i, pl.Int64).alias("BATCH")) for i, index in enumerate(indexes)
              if index.subject_ids.height]
    if not frames or len(indexes) < 2:
        return joined
    spans = (pl.concat(frames).group_by("USUBJID")
             .agg(pl.col("BATCH").min().alias("LO"), pl.col("BATCH").max().alias("HI"))
             .filter(pl.col("LO") < pl.col("HI")))
    for lo, hi in spans.select("LO", "HI").unique().iter_rows():  # one pair per distinct span, a handful at most
        for i in range(lo, hi):
            joined[i] = True
    return joined


def plan_partitions(indexes: list[BatchIndex], *, max_subjects: int, min_partitions: int = 1) -> list[list[int]]:
    """Consecutive groups of batch positions, each audited as one partition.

    As many partitions as `min_partitions` (the workers, so that all of them work) or as needed to keep
    each at about `max_subjects` subjects (a worker's memory), whichever is more, never more than the
    batches; batches that share a subject (`joined_batches`) are never split. Great Expectations costs
    the same per run whatever the rows, so partitions are as few and as large as that allows.
    """
    if not indexes:
        return []
    joined = joined_batches(indexes)
    units: list[list[int]] = [[0]]
    for i in range(1, len(indexes)):
        if joined[i - 1]:
            units[-1].append(i)
        else:
            units.append([i])
    weights = [sum(indexes[i].subjects for i in unit) or 1 for unit in units]  # a site with no DM still counts
    total = sum(weights)
    count = min(len(units), max(min_partitions, math.ceil(total / max_subjects) if max_subjects > 0 else 1, 1))
    if count == len(units):
        return units
    partitions: dict[int, list[int]] = {}
    before = 0
    for unit, weight in zip(units, weights, strict=True):
        # each unit goes where its middle falls on the study's subjects cut in `count` equal parts
        at = min(count - 1, int((before + weight / 2) / total * count))
        partitions.setdefault(at, []).extend(unit)
        before += weight
    return [partitions[at] for at in sorted(partitions)]
