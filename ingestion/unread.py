"""The files of the deliveries a night audits that ingestion rejected as a whole: what they hold was not read.

Evaluation must not read their absence as "no such record" (a rejected cm.csv made every HBV-positive subject's
antiviral therapy NOT_MET, nine false ineligible enrolments, and no steroid use for anyone: a user trial), and the
history must not take the night as a full look at the site (reporting.history.partly_read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

import polars as pl

from contracts import IngestResult
from ingestion.codes import FILE_REJECTED_PREFIX, FILE_REJECTED_REASONS, DeliveryStatus

UNREAD: dict[str, type[pl.DataType] | pl.DataType] = {"SITEID": pl.String, "DOMAIN": pl.String, "SOURCE": pl.String}


def used_deliveries(deliveries: Iterable[Mapping[str, Any]], *, own_newest_only: bool = False) -> pl.DataFrame:
    """SITEID, _DELIVERY of the deliveries audited (status USED; `own_newest_only`: not a fallback to an older one,
    whose `reason` says so), from the deliveries as run_manifest.json lists them."""
    return pl.DataFrame(
        [(str(d["site"]), str(d["delivery"])) for d in deliveries
         if d.get("status") == DeliveryStatus.USED.value and d.get("site") is not None
         and not (own_newest_only and d.get("reason"))],
        schema={"SITEID": pl.String, "_DELIVERY": pl.String}, orient="row")


def unread_files(findings: pl.DataFrame, used: pl.DataFrame) -> pl.DataFrame:
    """UNREAD: per file of a `used` delivery (used_deliveries) that ingestion rejected as a whole (`findings`:
    ingestion's), its site, its domain (upper case, null when the file name names none) and its key."""
    if findings.height == 0 or used.height == 0 or "EXPECTATION" not in findings.columns:
        return pl.DataFrame(schema=UNREAD)
    source = pl.col("SOURCE").cast(pl.String).str.replace(r":\d+$", "")
    # the finding's own domain only: a stray file named after one (`lb.txt`, `cm.csv.bak`: unknown_format, no domain)
    # says nothing about the domain's real file (helper-46)
    domain = pl.col("DOMAIN").cast(pl.String) if "DOMAIN" in findings.columns else pl.lit(None, pl.String)
    return (findings.filter(pl.col("EXPECTATION").cast(pl.String).str.starts_with(FILE_REJECTED_PREFIX))
            .select(pl.col("SITEID").cast(pl.String), domain.str.to_uppercase().alias("DOMAIN"), source.alias("SOURCE"))
            .join(used, on="SITEID", how="inner")
            .filter(pl.col("SOURCE").str.contains(pl.format("/{}/{}/", pl.col("SITEID"), pl.col("_DELIVERY")),
                                                   literal=True))
            .select(list(UNREAD)).unique(maintain_order=True))


def unread_in(ingest: IngestResult) -> pl.DataFrame:
    """unread_files of a night's (or a partition's) ingestion, with a domain: the rejected files of the deliveries it
    audits, less the domains a site's audited delivery read from another file after all."""
    unread = unread_files(ingest.findings, used_deliveries(asdict(d) for d in ingest.deliveries))
    read = pl.DataFrame([(i.site, i.domain.upper()) for i in ingest.inputs
                         if i.domain and not FILE_REJECTED_REASONS.intersection(i.rejected_reasons)],
                        schema={"SITEID": pl.String, "DOMAIN": pl.String}, orient="row")
    return (unread.filter(pl.col("DOMAIN").is_not_null())
            .join(read.unique(), on=["SITEID", "DOMAIN"], how="anti", maintain_order="left"))
