"""Benchmark: evaluate() on a synthetic SZ003 study (default 100,000 subjects).

    .venv/bin/python benchmarks/bench_evaluation.py [--subjects 100000] [--seed 7] [--repeat 1]

The population is built vectorised (numpy + polars, no loop over subjects): every subject gets the
full screening data set of checks.sample, with values drawn around the protocol thresholds, a mix of
units (SI and conventional), some censored and some missing results, partial dates, stale results,
medication and procedure histories. It prints the rows per domain, the wall time of evaluate() and
the outcome counts, so that a regression in speed or in behaviour is visible at a glance.
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np
import polars as pl

from checks import evaluate, load_protocol
from checks.sample import FA_VALUES, LB_VALUES, MH_TERMS

START = date(2025, 3, 1)


def _text(values: np.ndarray, decimals: int) -> pl.Series:
    return pl.Series(np.round(values, decimals)).cast(pl.String)


def _frame(base: pl.DataFrame, domain: str, site: pl.Expr) -> pl.DataFrame:
    """Add the ingestion columns: SOURCE (key:row), DELIVERY_SITEID, DECIMAL; all columns text."""
    return base.with_columns(pl.all().cast(pl.String)).with_columns(
        pl.format("SZ003/{}/20250301T000000Z/{}.csv:{}", site, pl.lit(domain), pl.int_range(1, pl.len() + 1))
        .alias("SOURCE"),
        site.alias("DELIVERY_SITEID"),
        pl.lit(".").alias("DECIMAL"),
    )


def synthesise(n: int, seed: int = 7) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = pl.DataFrame({"N": np.arange(n)}).with_columns(
        pl.format("SZ003-{}-{}", (pl.col("N") % 40 + 101), pl.col("N").cast(pl.String).str.zfill(6)).alias("USUBJID"),
        (pl.col("N") % 40 + 101).cast(pl.String).alias("SITEID"),
    )
    site = pl.col("USUBJID").str.slice(6, 3)
    offsets = rng.integers(0, 365, n)
    start = pl.Series(np.datetime64("2025-03-01") + offsets.astype("timedelta64[D]")).cast(pl.Date)
    decision = np.where(rng.random(n) < 0.7, "ENROLLED", np.where(rng.random(n) < 0.6, "SCREEN FAILURE", ""))
    birth_year = rng.integers(1940, 2010, n)
    birth = pl.Series(birth_year).cast(pl.String)
    full_birth = rng.random(n) < 0.9
    subjects = ids.with_columns(
        start.alias("_START"), pl.Series(decision).alias("_DECISION"),
        pl.when(pl.Series(full_birth)).then(pl.format("{}-{}-{}", birth, pl.lit("05"), pl.lit("17")))
        .otherwise(birth).alias("BRTHDTC"),
        pl.Series(np.where(rng.random(n) < 0.5, "M", "F")).alias("SEX"),
    ).with_columns(
        (pl.col("_START") - pl.duration(days=20)).dt.to_string("%Y-%m-%d").alias("RFICDTC"),
        (pl.col("_START") - pl.duration(days=7)).dt.to_string("%Y-%m-%d").alias("_SCREEN"),
        pl.col("_START").dt.to_string("%Y-%m-%d").alias("_START_TEXT"),
    )
    dm = subjects.select(
        pl.lit("SZ003").alias("STUDYID"), "USUBJID", "SITEID", "BRTHDTC", "SEX", "RFICDTC",
        pl.when(pl.col("_DECISION") == "ENROLLED").then(pl.col("_START_TEXT")).otherwise(pl.lit(""))
        .alias("RFXSTDTC"),
    )
    ds = subjects.filter(pl.col("_DECISION") != "").select(
        pl.lit("SZ003").alias("STUDYID"), "USUBJID", pl.lit("PROTOCOL MILESTONE").alias("DSCAT"),
        pl.col("_DECISION").alias("DSDECOD"), pl.col("_START_TEXT").alias("DSSTDTC"))

    # LB: every test per subject; numeric values spread around the thresholds, mixed units
    tests = pl.DataFrame({"LBTESTCD": list(LB_VALUES),
                          "_BASE": [float(v[0]) if v[0][0].isdigit() else np.nan for v in LB_VALUES.values()],
                          "LBORRESU": [v[1] for v in LB_VALUES.values()],
                          "LBORNRHI": [v[2] for v in LB_VALUES.values()]})
    lb = subjects.select("USUBJID", "_SCREEN").join(tests, how="cross")
    m = lb.height
    factor = rng.uniform(0.3, 1.6, m)
    qualitative = np.where(rng.random(m) < 0.9, "NEGATIVE", np.where(rng.random(m) < 0.5, "POSITIVE", "REACTIVE"))
    value = _text(lb["_BASE"].to_numpy() * factor, 2)
    censored = rng.random(m) < 0.02
    lb = lb.with_columns(
        pl.when(pl.col("_BASE").is_nan()).then(pl.Series(qualitative))
        .when(pl.Series(censored)).then(pl.format("<{}", value)).otherwise(value).alias("LBORRES"),
        pl.when(pl.Series(rng.random(m) < 0.05)).then(pl.lit("2024-12-01"))
        .when(pl.Series(rng.random(m) < 0.02)).then(pl.col("_SCREEN").str.slice(0, 7))
        .otherwise(pl.col("_SCREEN")).alias("LBDTC"),
    ).filter(pl.Series(rng.random(m) > 0.02))  # some results missing
    # HGB in g/L and PLAT in /uL for a third of the rows: same numbers in another unit
    swap = pl.Series(rng.random(lb.height) < 0.33)
    lb = lb.with_columns(
        pl.when(swap & (pl.col("LBTESTCD") == "HGB") & ~pl.col("LBORRES").str.starts_with("<"))
        .then((pl.col("LBORRES").cast(pl.Float64, strict=False) * 10).round(1).cast(pl.String))
        .otherwise(pl.col("LBORRES")).alias("LBORRES"),
        pl.when(swap & (pl.col("LBTESTCD") == "HGB")).then(pl.lit("g/L"))
        .when(swap & (pl.col("LBTESTCD") == "PLAT")).then(pl.lit("10^3/uL")).otherwise(pl.col("LBORRESU"))
        .alias("LBORRESU"),
    ).select(pl.lit("SZ003").alias("STUDYID"), "USUBJID", "LBTESTCD", "LBORRES", "LBORRESU",
             pl.lit("").alias("LBORNRLO"), "LBORNRHI", pl.lit("").alias("LBSTAT"), "LBDTC")

    vs = subjects.select(pl.lit("SZ003").alias("STUDYID"), "USUBJID", pl.lit("WEIGHT").alias("VSTESTCD"),
                         _text(rng.uniform(40, 100, n), 1).alias("VSORRES"), pl.lit("kg").alias("VSORRESU"),
                         pl.col("_SCREEN").alias("VSDTC"))
    fa_tests = pl.DataFrame({"FATESTCD": list(FA_VALUES), "FAORRES": [v[0] for v in FA_VALUES.values()],
                             "FAORRESU": [v[1] for v in FA_VALUES.values()]})
    fa = subjects.select("USUBJID", "_SCREEN").join(fa_tests, how="cross")
    flip = pl.Series(rng.random(fa.height) < 0.05)
    fa = fa.select(
        pl.lit("SZ003").alias("STUDYID"), "USUBJID", "FATESTCD",
        pl.when(flip & pl.col("FAORRES").is_in(["Y", "N"]))
        .then(pl.when(pl.col("FAORRES") == "Y").then(pl.lit("N")).otherwise(pl.lit("Y")))
        .when(flip & (pl.col("FATESTCD") == "KPS")).then(pl.lit("70")).otherwise(pl.col("FAORRES")).alias("FAORRES"),
        "FAORRESU", pl.col("_SCREEN").alias("FADTC"))
    mh = subjects.select("USUBJID").join(pl.DataFrame({"MHTERM": list(MH_TERMS)}), how="cross")
    occur = pl.Series(np.where(rng.random(mh.height) < 0.03, "Y", "N"))
    mh = mh.select(pl.lit("SZ003").alias("STUDYID"), "USUBJID", "MHTERM", occur.alias("MHOCCUR"),
                   pl.when(occur == "Y").then(pl.lit("2022-06")).otherwise(pl.lit("")).alias("MHSTDTC"),
                   pl.lit("").alias("MHENDTC"), pl.when(occur == "Y").then(pl.lit("ONGOING")).otherwise(pl.lit(""))
                   .alias("MHENRF"))
    with_cm = subjects.filter(pl.Series(rng.random(n) < 0.4))
    k = with_cm.height
    cm = with_cm.select(
        pl.lit("SZ003").alias("STUDYID"), "USUBJID", pl.lit("drug").alias("CMTRT"),
        pl.Series(rng.choice(["SORAFENIB", "PREDNISONE", "ENTECAVIR", "XYZ-1"], k)).alias("CMDECOD"),
        pl.Series(rng.choice(["ANTI-TUMOR THERAPY", "SYSTEMIC CORTICOSTEROID", "ANTI-HBV THERAPY",
                              "INVESTIGATIONAL AGENT"], k)).alias("CMCAT"),
        (pl.col("_START") - pl.duration(days=pl.Series(rng.integers(20, 200, k)))).dt.to_string("%Y-%m-%d")
        .alias("CMSTDTC"),
        (pl.col("_START") - pl.duration(days=pl.Series(rng.integers(0, 20, k)))).dt.to_string("%Y-%m-%d")
        .alias("CMENDTC"),
        pl.lit("").alias("CMENRF"))
    with_pr = subjects.filter(pl.Series(rng.random(n) < 0.3))
    pr = with_pr.select(
        pl.lit("SZ003").alias("STUDYID"), "USUBJID", pl.lit("procedure").alias("PRTRT"),
        pl.Series(rng.choice(["SURGERY", "LOCOREGIONAL THERAPY", "RADIOTHERAPY", "CELL THERAPY"],
                             with_pr.height)).alias("PRCAT"),
        pl.lit("2024-06-01").alias("PRSTDTC"), pl.lit("2024-06-02").alias("PRENDTC"), pl.lit("").alias("PROUTC"))
    tu = subjects.select(pl.lit("SZ003").alias("STUDYID"), "USUBJID", pl.lit("T01").alias("TULNKID"),
                         pl.lit("TUMIDENT").alias("TUTESTCD"), pl.lit("TARGET").alias("TUORRES"),
                         pl.lit("LIVER").alias("TULOC"), pl.col("_SCREEN").alias("TUDTC"))
    tr = subjects.select(pl.lit("SZ003").alias("STUDYID"), "USUBJID", pl.lit("T01").alias("TRLNKID"),
                         pl.lit("LDIAM").alias("TRTESTCD"), _text(rng.uniform(5, 60, n), 0).alias("TRORRES"),
                         pl.lit("mm").alias("TRORRESU"), pl.col("_SCREEN").alias("TRDTC"))
    raw = {"dm": dm, "ds": ds, "lb": lb, "vs": vs, "fa": fa, "mh": mh, "cm": cm, "pr": pr, "tu": tu, "tr": tr}
    return {name: _frame(frame, name, site) for name, frame in raw.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    began = time.perf_counter()
    domains = synthesise(args.subjects, args.seed)
    built = time.perf_counter() - began
    rows = {name: frame.height for name, frame in domains.items()}
    print(f"synthesised {args.subjects:,} subjects, {sum(rows.values()):,} rows in {built:.1f} s: {rows}")
    protocol = load_protocol()
    timings, cpu = [], []
    for _ in range(args.repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        result = evaluate(domains, protocol, date(2026, 6, 1))
        timings.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    # CPU time is reported too: on a shared machine the wall time depends on the neighbours
    print(f"evaluate(): {min(timings):.2f} s wall, {min(cpu):.2f} s CPU (best of {args.repeat}) -> "
          f"{result.eligibility.height:,} subject x component rows, "
          f"{result.criteria.height:,} subject x criterion rows")
    print(result.eligibility.group_by("OUTCOME").len().sort("OUTCOME"))
    print(result.eligibility.group_by("REASON_CODE").len().sort("len", descending=True).head(8))


if __name__ == "__main__":
    main()
