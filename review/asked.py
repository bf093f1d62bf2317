"""Which site query asks about a finding, as the run published it: a reviewer deciding on a finding from the
command line sees the query its site was sent (`SITE_QUERY`) and, for a finding left out of the site's list
because another one asks the same (reporting.covered), the finding listed in its place (`COVERED_BY`).

Read from the run's own per-site files (publication.layout): `site_queries/detail/<SITE>.csv` names the query of
every finding a site's queries list, `site_queries/also_answered/<SITE>.csv` the query of every finding left out.
Only the sites asked about are read, so `review show` reads two small files. A finding no query asks about (a
note, a finding the sponsor's review has settled) has neither.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import polars as pl

from contracts.tables import FINDING_ID
from publication.layout import site_also_answered_key, site_detail_key
from storage import ObjectNotFound, Store, join_key

#: the columns `site_query_links` adds to a finding
LINK_COLUMNS = ["SITE_QUERY", "COVERED_BY"]
_SCHEMA = {FINDING_ID: pl.String, "SITE_QUERY": pl.String, "COVERED_BY": pl.String}
#: sites read at once (each is one or two small objects; an S3 round trip each)
_READERS = 8


def _read(store: Store, key: str, columns: list[str]) -> pl.DataFrame | None:
    """`columns` of the CSV at `key` (as text), or None when there is none or it lacks them."""
    try:
        frame = pl.read_csv(io.BytesIO(store.read_bytes(key)), infer_schema=False)
    except ObjectNotFound:
        return None
    return frame.select(columns) if set(columns) <= set(frame.columns) else None


def _site_links(store: Store, folder: str, site: str) -> list[pl.DataFrame]:
    parts = []
    listed = _read(store, join_key(folder, site_detail_key(site)), ["QUERY_ID", FINDING_ID])
    if listed is not None:
        parts.append(listed.select(FINDING_ID, pl.col("QUERY_ID").alias("SITE_QUERY"),
                                   pl.lit(None, pl.String).alias("COVERED_BY")))
    left_out = _read(store, join_key(folder, site_also_answered_key(site)), ["QUERY_ID", FINDING_ID, "COVERED_BY"])
    if left_out is not None:
        parts.append(left_out.select(FINDING_ID, pl.col("QUERY_ID").alias("SITE_QUERY"), "COVERED_BY"))
    return parts


def site_query_links(store: Store, study: str, run: date | None, sites: Iterable[str | None]) -> pl.DataFrame:
    """FINDING_ID, SITE_QUERY and COVERED_BY of every finding of `sites` that the run `run` asked a site about."""
    wanted = sorted({site for site in sites if site})
    if run is None or not wanted:
        return pl.DataFrame(schema=_SCHEMA)
    folder = join_key(study, run.isoformat())
    with ThreadPoolExecutor(max_workers=min(_READERS, len(wanted))) as pool:
        parts = [part for found in pool.map(lambda site: _site_links(store, folder, site), wanted) for part in found]
    if not parts:
        return pl.DataFrame(schema=_SCHEMA)
    # a finding is listed once (a query, or Also answered): should a file hold it twice, the first row is kept
    return pl.concat(parts, how="vertical").cast(_SCHEMA).unique(FINDING_ID, keep="first", maintain_order=True)


def with_site_queries(findings: pl.DataFrame, store: Store, study: str, run: date | None) -> pl.DataFrame:
    """`findings` (with FINDING_ID and SITEID) with LINK_COLUMNS, read for their sites only."""
    sites = findings["SITEID"].unique().to_list() if findings.height else []
    links = site_query_links(store, study, run, sites)
    return findings.join(links, on=FINDING_ID, how="left", maintain_order="left")
