"""All sites of one study together, ordered so that reruns on the same inputs are byte-identical."""

from __future__ import annotations

import polars as pl

from contracts import FINDINGS, IngestResult, SiteIngest, check_table, empty_table
from core.source import SOURCE_KEY, SOURCE_ROW
from ingestion.codes import Code
from ingestion.findings import with_identity
from ingestion.shape import ADDED, DELIVERY_SITEID


def _source_order(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows by site, then object key, then data row number (numerically: row 10 after row 9)."""
    return frame.sort(DELIVERY_SITEID, SOURCE_KEY, SOURCE_ROW, maintain_order=True)


def combine_domain(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """One domain across sites: diagonal concat (a column one site lacks is null there), all String."""
    combined = pl.concat(frames, how="diagonal")
    delivered = [c for c in combined.columns if c not in ADDED]
    combined = combined.select(*(pl.col(c).cast(pl.String) for c in delivered), *ADDED)
    return _source_order(combined)


def not_audited_reason(site: SiteIngest) -> str:
    """Why a site is not audited: its SITE_NOT_AUDITED finding's words."""
    reasons = site.findings.filter(pl.col("EXPECTATION") == str(Code.SITE_NOT_AUDITED))["OBSERVED"]
    return reasons[0] if len(reasons) else "no usable delivery"


def _aligned(frame: pl.DataFrame | None, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """`frame` with exactly the columns of `schema`, in its order (a column it lacks is null)."""
    if frame is None:
        return pl.DataFrame(schema=schema)
    return frame.select(pl.col(c) if c in frame.columns else pl.lit(None, dtype).alias(c)
                        for c, dtype in schema.items())


def combine_sites(study: str, sites: list[SiteIngest],
                  schemas: dict[str, dict[str, pl.DataType]] | None = None) -> IngestResult:
    """The study's IngestResult: frames per domain across sites, with every input and decision.

    `schemas` (ingestion.partition.study_schemas): the whole study's columns per domain, when `sites`
    are one partition of it; the frames then have exactly those columns, a domain no site of the
    partition delivered is an empty frame, so that the partition is the study restricted to its sites.
    """
    ordered = sorted(sites, key=lambda s: s.site)
    domains = sorted({d for s in ordered for d in s.frames})
    findings = [s.findings for s in ordered]
    frames = {d: combine_domain([s.frames[d] for s in ordered if d in s.frames]) for d in domains}
    if schemas is not None:
        frames = {d: _aligned(frames.get(d), schema) for d, schema in schemas.items()}
    return IngestResult(
        study=study,
        domains=frames,
        inputs=[i for s in ordered for i in s.inputs],
        deliveries=[d for s in ordered for d in s.deliveries],
        findings=with_identity(check_table(pl.concat(findings, how="vertical") if findings
                                           else empty_table(FINDINGS), FINDINGS, "ingestion findings")),
        sites_audited=[s.site for s in ordered if s.audited],
        sites_not_audited={s.site: not_audited_reason(s) for s in ordered if not s.audited},
    )
