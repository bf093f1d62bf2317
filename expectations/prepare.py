"""One prepared polars frame per domain: delivered text plus every derived column the suite needs.

Reference data is joined here (the subject's DM row and site, the subject-level completeness lists
for DM), then the builders' derived columns are added in dependency layers, and finally the narrow
frame Great Expectations sees is selected from it (only the columns the expectations read, indexed
by SOURCE so that every failure names its row).
"""

from __future__ import annotations

import polars as pl

from checks.values import blank_to_null
from contracts.domains import DomainSpec
from expectations.checks import Piece
from expectations.subjects import decisions, missing_criteria, missing_results

#: columns ingestion adds to every frame (see contracts.records.SiteIngest)
INGEST_COLUMNS = ("SOURCE", "DELIVERY_SITEID", "DECIMAL")


def delivered(domains: dict[str, pl.DataFrame], spec: DomainSpec) -> pl.DataFrame:
    """The domain's frame with every DTS variable present (absent ones as null text)."""
    frame = domains.get(spec.code.lower())
    if frame is None:
        frame = pl.DataFrame(schema={c: pl.String for c in INGEST_COLUMNS})
    wanted = [*spec.variables, *INGEST_COLUMNS]
    return frame.with_columns(pl.lit(None, pl.String).alias(c) for c in wanted if c not in frame.columns)


def _with_subject(frame: pl.DataFrame, domains: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Join the subject's DM site (X_DM_SITEID) and whether the subject is in DM at all (X_IN_DM)."""
    dm = domains.get("dm")
    if dm is None or "USUBJID" not in dm.columns:
        subjects = pl.DataFrame(schema={"X_USUBJID": pl.String, "X_DM_SITEID": pl.String, "X_IN_DM": pl.Boolean})
    else:
        site = blank_to_null("SITEID") if "SITEID" in dm.columns else pl.lit(None, pl.String)
        subjects = (dm.select(blank_to_null("USUBJID").alias("X_USUBJID"), site.alias("X_DM_SITEID"))
                    .filter(pl.col("X_USUBJID").is_not_null())
                    .group_by("X_USUBJID", maintain_order=True).agg(pl.col("X_DM_SITEID").first())
                    .with_columns(pl.lit(True).alias("X_IN_DM")))
    joined = frame.join(subjects, on="X_USUBJID", how="left", maintain_order="left")
    return joined.with_columns(
        pl.when(pl.col("X_USUBJID").is_not_null()).then(pl.col("X_IN_DM").fill_null(False)).alias("X_IN_DM"))


def _with_needs(frame: pl.DataFrame, domains: dict[str, pl.DataFrame], ctx) -> pl.DataFrame:
    """DM only: the subject's decision and its missing results / IE answers (lists, empty when complete)."""
    subjects = decisions(domains)
    needs = missing_results(domains, ctx.needs, ctx.config, ctx.catalog, subjects) if ctx.needs else None
    ie = missing_criteria(domains, ctx.criteria, ctx.config, subjects) if ctx.criteria else None
    table = subjects
    for extra in (needs, ie):
        if extra is not None:
            table = table.join(extra, on="USUBJID", how="left")
    lists = [c for c in table.columns if c.startswith("X_MISSING_")]
    table = table.with_columns(pl.col(c).fill_null([]) for c in lists).rename({"USUBJID": "X_USUBJID"})
    joined = frame.join(table, on="X_USUBJID", how="left", maintain_order="left")
    # a subject's completeness is reported once, on its first DM row (a duplicated DM key is its own finding)
    first = pl.int_range(pl.len()).over("X_USUBJID") == 0
    return joined.with_columns(pl.when(first).then(pl.col(c)).otherwise(pl.lit([], pl.List(pl.String))).alias(c)
                               for c in lists)


def _layers(derived: dict[str, pl.Expr], available: set[str]) -> list[dict[str, pl.Expr]]:
    """Split derived columns into layers so that each layer only reads columns of earlier ones."""
    pending, layers = dict(derived), []
    while pending:
        layer = {name: expr for name, expr in pending.items()
                 if set(expr.meta.root_names()) <= available}
        if not layer:
            raise ValueError(f"derived columns read unknown columns: {sorted(pending)}")
        layers.append(layer)
        available |= set(layer)
        for name in layer:
            del pending[name]
    return layers


def prepare(domains: dict[str, pl.DataFrame], ctx, pieces: list[Piece]) -> pl.DataFrame:
    """The prepared frame of ctx.spec's domain: delivered columns + joins + derived columns."""
    frame = delivered(domains, ctx.spec)
    content = [c for c in frame.columns if c != "SOURCE"]
    frame = frame.with_columns(
        pl.struct(content).hash().alias("X_ROW_HASH"),
        blank_to_null("USUBJID").alias("X_USUBJID"),
    )
    frame = _with_needs(frame, domains, ctx) if ctx.spec.code == "DM" else _with_subject(frame, domains)
    derived: dict[str, pl.Expr] = {}
    for piece in pieces:
        derived.update(piece.derived)
    lazy = frame.lazy()
    for layer in _layers(derived, set(frame.columns)):
        lazy = lazy.with_columns(expr.alias(name) for name, expr in layer.items())
    return lazy.collect()


def ge_frame(prepared: pl.DataFrame, pieces: list[Piece]) -> pl.DataFrame:
    """The narrow frame the suite runs on: SOURCE plus every column an expectation reads."""
    columns: dict[str, pl.Expr] = {}
    for piece in pieces:
        columns.update(piece.ge)
    return prepared.select(pl.col("SOURCE"), *(expr.alias(name) for name, expr in columns.items()))
