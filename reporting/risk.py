"""Site risk indicators with a funnel-plot flag (risk-based monitoring).

Each indicator (data/risk.yaml) is numerator / denominator per site. A site is compared with the
rate of all sites together, p0, by a normal-approximation z-score whose spread shrinks with the
site's denominator n, as in a funnel plot: binomial z = (p - p0) / sqrt(p0 (1 - p0) / n), Poisson
z = (p - p0) / sqrt(p0 / n). A small site is not flagged for one unlucky subject, a large one is
flagged for a modest but real excess. The z-score is a screening signal for the monitor, not a test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from ingestion.codes import DELIVERY_REJECTED_REASON, FILE_REJECTED_REASONS, DeliveryStatus
from reporting.datafiles import DataFileError, check_keys, load

RISK_COLUMNS = ["SITEID", "INDICATOR", "LABEL", "NUMERATOR", "DENOMINATOR", "RATE", "STUDY_RATE", "Z", "FLAG", "NOTE"]
_TABLES = {"subjects", "discrepancies", "validation", "inputs"}


@dataclass(frozen=True)
class Side:
    table: str
    where: dict[str, Any]
    count: str


@dataclass(frozen=True)
class Indicator:
    id: str
    label: str
    unit: str
    model: str
    scale: float
    numerator: Side
    denominator: Side


@dataclass(frozen=True)
class Thresholds:
    amber: float
    red: float
    min_denominator: float


def _side(where: str, raw: dict[str, Any]) -> Side:
    check_keys(where, raw, {"table", "where", "count"}, {"table", "count"})
    if raw["table"] not in _TABLES:
        raise DataFileError(f"{where}: unknown table {raw['table']!r}")
    count = raw["count"]
    if count not in ("rows", "subjects") and not str(count).startswith("sum:"):
        raise DataFileError(f"{where}: count must be rows, subjects or sum:<COLUMN>")
    return Side(raw["table"], dict(raw.get("where") or {}), count)


def load_indicators() -> tuple[list[Indicator], Thresholds]:
    data = load("risk.yaml")
    check_keys("risk.yaml", data, {"thresholds", "indicators"}, {"thresholds", "indicators"})
    check_keys("risk.yaml thresholds", data["thresholds"], {"amber", "red", "min_denominator"},
               {"amber", "red", "min_denominator"})
    indicators = []
    for raw in data["indicators"]:
        where = f"risk.yaml indicator {raw.get('id')}"
        check_keys(where, raw, {"id", "label", "unit", "model", "scale", "numerator", "denominator"},
                   {"id", "label", "unit", "model", "numerator", "denominator"})
        if raw["model"] not in ("binomial", "poisson"):
            raise DataFileError(f"{where}: model must be binomial or poisson")
        indicators.append(Indicator(raw["id"], raw["label"], raw["unit"], raw["model"],
                                    float(raw.get("scale", 1)), _side(f"{where} numerator", raw["numerator"]),
                                    _side(f"{where} denominator", raw["denominator"])))
    return indicators, Thresholds(**{k: float(v) for k, v in data["thresholds"].items()})


def _condition(where: dict[str, Any]) -> pl.Expr:
    cond = pl.lit(True)
    for column, test in where.items():
        if isinstance(test, dict):
            check_keys(f"where {column}", test, {"matches"}, {"matches"})
            cond = cond & pl.col(column).cast(pl.String).str.contains(test["matches"]).fill_null(False)
        else:
            cond = cond & pl.col(column).cast(pl.String).is_in([str(v) for v in test]).fill_null(False)
    return cond


def _count(frame: pl.DataFrame, side: Side, name: str) -> pl.LazyFrame:
    if side.count == "rows":
        measure = pl.len().cast(pl.Float64)
    elif side.count == "subjects":
        measure = pl.col("USUBJID").drop_nulls().n_unique().cast(pl.Float64)
    else:
        measure = pl.col(side.count.removeprefix("sum:")).cast(pl.Float64).sum()
    return (frame.lazy().filter(_condition(side.where) & pl.col("SITEID").is_not_null())
            .group_by("SITEID").agg(measure.alias(name)))


def inputs_table(run_manifest: dict[str, Any]) -> pl.DataFrame:
    """Rows audited per input object, from the run manifest (the exposure for data-error rates): the rows
    read, less those of a delivery or a file rejected as a whole, which nothing audited.

    Why: on a night a site's newer delivery was rejected and an older one used, counting both doubled
    the site's exposure and halved its data-error rate, hiding the very site whose data got worse; a rejected
    lb.csv's rows likewise lowered its site's rate by the lab findings nobody looked for.
    """
    items = run_manifest.get("inputs") or []
    unaudited = {DELIVERY_REJECTED_REASON, *FILE_REJECTED_REASONS}
    audited = [(i.get("rows_read") or 0) - sum(n or 0 for reason, n in (i.get("rejected_reasons") or {}).items()
                                               if reason in unaudited)
               for i in items]
    return pl.DataFrame(
        {"SITEID": [i.get("site") for i in items], "DOMAIN": [i.get("domain") for i in items], "ROWS": audited},
        schema={"SITEID": pl.String, "DOMAIN": pl.String, "ROWS": pl.Int64},
    )


def older_delivery_notes(deliveries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Per site audited on an older delivery because its newest was rejected (a USED delivery with a reason, as
    run_manifest.json lists `deliveries`), what its rates were measured on.

    Why: such a site's rates describe the older delivery. A data-error rate far below its peers' read as a
    clean site (a user trial) where the site's newest data had been rejected and were not audited at all."""
    return {str(d["site"]): f"audited on its older delivery {d.get('delivery')} ({d['reason']})"
            for d in deliveries
            if d.get("status") == DeliveryStatus.USED and d.get("reason") and d.get("site") is not None}


def site_risk(tables: dict[str, pl.DataFrame], sites: list[str],
              notes: Mapping[str, str] | None = None) -> pl.DataFrame:
    """One row per site x indicator (columns RISK_COLUMNS); FLAG in -2..2 (0 = not outlying); NOTE from `notes`
    (by site: older_delivery_notes), null for the other sites."""
    indicators, limits = load_indicators()
    base = pl.DataFrame({"SITEID": sorted(set(sites))}, schema={"SITEID": pl.String})
    # every indicator's counts in one polars call: they run side by side, each table scanned once per count
    counted = pl.collect_all([_count(tables[side.table], side, name) for ind in indicators
                              for side, name in ((ind.numerator, "NUMERATOR"), (ind.denominator, "DENOMINATOR"))])
    parts = []
    for ind, num, den in zip(indicators, counted[0::2], counted[1::2], strict=True):
        frame = (base.join(num, on="SITEID", how="left").join(den, on="SITEID", how="left")
                 .with_columns(pl.col("NUMERATOR").fill_null(0.0), pl.col("DENOMINATOR").fill_null(0.0)))
        total_den = frame["DENOMINATOR"].sum()
        p0 = frame["NUMERATOR"].sum() / total_den if total_den else 0.0
        if ind.model == "binomial":
            variance = pl.lit(p0 * (1 - p0)) / pl.col("DENOMINATOR")
        else:
            variance = pl.lit(p0) / pl.col("DENOMINATOR")
        rate = pl.when(pl.col("DENOMINATOR") > 0).then(pl.col("NUMERATOR") / pl.col("DENOMINATOR"))
        z = pl.when((pl.col("DENOMINATOR") > 0) & (variance > 0)).then((rate - p0) / variance.sqrt())
        parts.append(frame.with_columns(
            pl.lit(ind.id).alias("INDICATOR"),
            pl.lit(ind.label).alias("LABEL"),
            (rate * ind.scale).alias("RATE"),
            pl.lit(p0 * ind.scale).alias("STUDY_RATE"),
            z.alias("Z"),
        ))
    risk = pl.concat(parts) if parts else pl.DataFrame(schema=dict.fromkeys(RISK_COLUMNS[:-1], pl.String))
    note = pl.col("SITEID").replace_strict(dict(notes or {}), default=None, return_dtype=pl.String)
    magnitude = pl.col("Z").abs()
    level = (pl.when(pl.col("DENOMINATOR") < limits.min_denominator).then(0)
             .when(magnitude >= limits.red).then(2).when(magnitude >= limits.amber).then(1).otherwise(0))
    flag = (level * pl.col("Z").sign()).fill_null(0).cast(pl.Int64)
    return (risk.with_columns(pl.col("Z").round(2), pl.col("RATE").round(4), pl.col("STUDY_RATE").round(4),
                              flag.alias("FLAG"), note.alias("NOTE"))
            .select(RISK_COLUMNS))


def funnel_limits(p0: float, n: float, z: float, model: str) -> tuple[float, float]:
    """Lower and upper funnel limits of the rate at denominator n (for the chart)."""
    spread = (p0 * (1 - p0) / n) ** 0.5 if model == "binomial" else (p0 / n) ** 0.5
    low, high = p0 - z * spread, p0 + z * spread
    return max(low, 0.0), (min(high, 1.0) if model == "binomial" else high)
