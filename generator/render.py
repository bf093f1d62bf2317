"""Turning latent values into what a site writes: its unit, its rounding, its censoring, ISO dates.

All functions are polars expressions or joins over whole frames; the conversion factors come from
measures.yaml and the site's unit choice from its unit profile (sites.yaml).
"""

from __future__ import annotations

import polars as pl

from generator.config import Config

MAX_DECIMALS = 4


def format_number(value: pl.Expr, decimals: pl.Expr) -> pl.Expr:
    """`value` printed with `decimals` digits after the point (0..4), like a lab system prints it."""
    out: pl.Expr = pl.lit(None, dtype=pl.String)
    for d in range(MAX_DECIMALS, -1, -1):
        scaled = (value * 10**d).round(0).cast(pl.Int64)
        magnitude = scaled.abs()
        sign = pl.when(scaled < 0).then(pl.lit("-")).otherwise(pl.lit(""))
        if d == 0:
            text = pl.concat_str([sign, magnitude.cast(pl.String)])
        else:
            text = pl.concat_str([
                sign,
                (magnitude // 10**d).cast(pl.String),
                pl.lit("."),
                (magnitude % 10**d).cast(pl.String).str.zfill(d),
            ])
        out = pl.when(decimals == d).then(text).otherwise(out)
    return pl.when(value.is_null() | value.is_nan()).then(None).otherwise(out)


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
    return choice, conv


def render_measures(frame: pl.DataFrame, cfg: Config, *, unit_column: str | None = None) -> pl.DataFrame:
    """Add ORRES / ORRESU / NRLO / NRHI (text, site unit) to a frame with UNITS, MEASURE, VALUE.

    `unit_column`, when given, names a column that forces the unit (e.g. a planted copies/mL).
    """
    choice, conv = unit_tables(cfg)
    out = frame.join(choice, on=["UNITS", "MEASURE"], how="left", maintain_order="left")
    if unit_column:
        out = out.with_columns(pl.coalesce(unit_column, "UNIT").alias("UNIT"))
    out = out.join(conv, on=["MEASURE", "UNIT"], how="left", maintain_order="left")
    site_value = convert(pl.col("VALUE"), pl.col("FACTOR"), pl.col("TRANSFORM"))
    ranged = pl.col("TRANSFORM") != "log10"
    out = out.with_columns(
        site_value.alias("_SV"),
        pl.when(ranged).then(convert(pl.col("RLO"), pl.col("FACTOR"), pl.col("TRANSFORM"))).alias("_LO"),
        pl.when(ranged).then(convert(pl.col("RHI"), pl.col("FACTOR"), pl.col("TRANSFORM"))).alias("_HI"),
    )
    censored = pl.col("LOD").is_not_null() & (pl.col("_SV") < pl.col("LOD"))
    return out.with_columns(
        pl.when(censored)
        .then(pl.concat_str([pl.lit("<"), format_number(pl.col("LOD"), pl.col("DECIMALS"))]))
        .otherwise(format_number(pl.col("_SV"), pl.col("DECIMALS")))
        .alias("ORRES"),
        pl.col("UNIT").alias("ORRESU"),
        format_number(pl.col("_LO"), pl.col("DECIMALS")).alias("NRLO"),
        format_number(pl.col("_HI"), pl.col("DECIMALS")).alias("NRHI"),
    ).drop("UNIT", "FACTOR", "TRANSFORM", "DECIMALS", "LOD", "RLO", "RHI", "_SV", "_LO", "_HI")


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
