"""Turning latent values into what a site writes: its unit, its rounding, its censoring, ISO dates.

All functions are polars expressions or joins over whole frames; the conversion factors come from
measures.yaml and the site's unit choice from its unit profile (sites.yaml).
"""

from __future__ import annotations

import polars as pl

from generator.config import Config


def format_number(value: pl.Expr, decimals: pl.Expr) -> pl.Expr:
    """`value` printed with `decimals` digits after the point, like a lab system prints it."""
    power = pl.lit(10, dtype=pl.Int64).pow(decimals.cast(pl.Int64))
    scaled = (value * power.cast(pl.Float64)).round(0).cast(pl.Int64)
    magnitude = scaled.abs()
    sign = pl.when(scaled < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    whole = pl.concat_str([sign, (magnitude // power).cast(pl.String)])
    fraction = pl.concat_str([pl.lit("."), (magnitude % power).cast(pl.String).str.zfill(decimals)])
    text = pl.when(decimals > 0).then(pl.concat_str([whole, fraction])).otherwise(whole)
    return pl.when(value.is_null() | value.is_nan()).then(None).otherwise(text)


def convert(value: pl.Expr, factor: pl.Expr, transform: pl.Expr) -> pl.Expr:
    """Protocol-unit value -> site-unit value (the inverse of what the audit does)."""
    return (
        pl.when(transform == "log10").then(value.log10())
        .when(transform == "ifcc").then((value - 2.152) / 0.09148)
        .when(transform == "fahrenheit").then(value * 9.0 / 5.0 + 32.0)
        .otherwise(value * factor)
    )


def unit_tables(cfg: Config) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(profile x measure -> site unit, measure x unit -> conversion) as small join tables."""
    choice_rows = []
    for name, profile in cfg.sites.unit_profiles.items():
        for code, measure in cfg.measures.items():
            if measure.units:
                choice_rows.append({"UNITS": name, "MEASURE": code, "UNIT": profile.units.get(code, measure.unit)})
    conv_rows = []
    for code, measure in cfg.measures.items():
        lo, hi = measure.range if measure.range else (None, None)
        for unit, spec in measure.units.items():
            conv_rows.append({
                "MEASURE": code, "UNIT": unit, "FACTOR": spec.factor, "TRANSFORM": spec.transform,
                "DECIMALS": spec.decimals, "LOD": spec.lod, "RLO": lo, "RHI": hi,
            })
    choice = pl.DataFrame(choice_rows, schema={"UNITS": pl.String, "MEASURE": pl.String, "UNIT": pl.String})
    conv = pl.DataFrame(conv_rows, schema={
        "MEASURE": pl.String, "UNIT": pl.String, "FACTOR": pl.Float64, "TRANSFORM": pl.String,
        "DECIMALS": pl.Int64, "LOD": pl.Float64, "RLO": pl.Float64, "RHI": pl.Float64,
    })
    # reference ranges and censoring text depend on (measure, unit) only: render them once here
    ranged = pl.col("TRANSFORM") != "log10"
    conv = conv.with_columns(
        pl.when(ranged).then(format_number(convert(pl.col(b), pl.col("FACTOR"), pl.col("TRANSFORM")),
                                           pl.col("DECIMALS"))).alias(name)
        for b, name in (("RLO", "NRLO"), ("RHI", "NRHI"))
    ).with_columns(
        pl.concat_str([pl.lit("<"), format_number(pl.col("LOD"), pl.col("DECIMALS"))]).alias("LODTEXT")
    ).drop("RLO", "RHI")
    return choice, conv


def render_measures(frame: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Add ORRES / ORRESU / NRLO / NRHI (text, in the site's unit) to a frame with UNITS, MEASURE, VALUE."""
    choice, conv = _tables(cfg)
    out = frame.join(choice, on=["UNITS", "MEASURE"], how="left", maintain_order="left")
    out = out.join(conv, on=["MEASURE", "UNIT"], how="left", maintain_order="left")
    site_value = convert(pl.col("VALUE"), pl.col("FACTOR"), pl.col("TRANSFORM"))
    censored = pl.col("LOD").is_not_null() & (site_value < pl.col("LOD"))
    return out.with_columns(
        pl.when(censored).then(pl.col("LODTEXT"))
        .otherwise(format_number(site_value, pl.col("DECIMALS")))
        .alias("ORRES"),
        pl.col("UNIT").alias("ORRESU"),
    ).drop("UNIT", "FACTOR", "TRANSFORM", "DECIMALS", "LOD", "LODTEXT")


_TABLES: dict[int, tuple[pl.DataFrame, pl.DataFrame]] = {}


def _tables(cfg: Config) -> tuple[pl.DataFrame, pl.DataFrame]:
    """unit_tables() once per configuration object (the configuration is immutable)."""
    if id(cfg) not in _TABLES:
        _TABLES[id(cfg)] = unit_tables(cfg)
    return _TABLES[id(cfg)]


def iso_date(column: str, precision: pl.Expr | None = None) -> pl.Expr:
    """A date column as ISO 8601 text, cut to `YYYY` / `YYYY-MM` where precision says Y / M."""
    text = pl.col(column).cast(pl.String)
    if precision is None:
        return text
    return (
        pl.when(precision == "Y").then(text.str.slice(0, 4))
        .when(precision == "M").then(text.str.slice(0, 7))
        .otherwise(text)
    )
