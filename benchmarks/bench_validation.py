"""Benchmark: validate a synthetic 1,000,000-row trial (all 11 domains, all sites at once).

Builds the frames directly with numpy/polars (no files), in the shape ingestion hands over (all text
plus SOURCE / DELIVERY_SITEID / DECIMAL), with a small share of planted problems so that the failure
mapping is exercised too. Times `validate_domain` over every domain plus `finish_validation` (Data
Docs included), with Great Expectations already imported (its import is reported separately).

    .venv/bin/python -m benchmarks.bench_validation [--rows 1000000] [--sites 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

STUDY = "SZ003"
LB_TESTS = {  # test: (unit, low, high, typical value, spread)
    "WBC": ("10^9/L", "4", "10", 6.0, 2.0), "PLAT": ("10^9/L", "150", "400", 220.0, 60.0),
    "HGB": ("g/dL", "12", "16", 13.0, 1.5), "LYM": ("10^9/L", "1", "4", 1.8, 0.5),
    "ALB": ("g/L", "35", "50", 40.0, 4.0), "LIPASE": ("U/L", "10", "60", 35.0, 10.0),
    "AMYLASE": ("U/L", "30", "110", 70.0, 15.0), "CREAT": ("umol/L", "60", "110", 80.0, 15.0),
    "ALT": ("U/L", "7", "56", 30.0, 10.0), "AST": ("U/L", "10", "40", 28.0, 8.0),
    "BILI": ("mg/dL", "0.1", "1.2", 0.7, 0.2), "PT": ("s", "11", "13.5", 12.0, 0.8),
    "HBVDNA": ("IU/mL", None, None, 50.0, 20.0), "HBA1C": ("%", "4", "5.6", 5.5, 0.6),
}
QUALITATIVE = ["HBSAG", "HBCAB", "HCVAB", "HCVRNA", "HIV12AB", "HCG"]
VS_TESTS = {"WEIGHT": ("kg", 70.0, 12.0), "HEIGHT": ("cm", 168.0, 9.0), "SYSBP": ("mmHg", 125.0, 12.0),
            "DIABP": ("mmHg", 78.0, 8.0), "PULSE": ("beats/min", 75.0, 10.0), "TEMP": ("C", 36.8, 0.3)}
FA_TESTS = {"HISTCONF": "Y", "BCLC": "C", "LRTXINEL": "Y", "SURGSUIT": "N", "STDTXPI": "Y", "GPC3IHC": "POSITIVE",
            "KPS": "90", "LIFEEXP": "24", "VSSTABLE": "Y", "LVEF": "60", "FEV1PP": "85", "ASCDEPTH": "1",
            "LIVTUMPC": "20", "VASCOCCL": "N", "PREGNANT": "N", "LACTAT": "N", "CONSENTA": "Y", "INVJUDG": "Y"}
ROWS_PER_SUBJECT = 1 + 2 + 28 + 2 * (len(LB_TESTS) + len(QUALITATIVE)) + 6 + 22 + 3 + 2 + 2 + 2 + len(FA_TESTS)


def _with_ingest_columns(frame: pl.DataFrame, domain: str) -> pl.DataFrame:
    site = pl.col("USUBJID").str.slice(6, 3)
    return frame.with_columns(
        pl.format("{}/{}/20261127T230000Z/{}.csv", pl.lit(STUDY), site, pl.lit(domain)).alias("SOURCE_KEY"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(site).alias("SOURCE_ROW"),
        site.alias("DELIVERY_SITEID"), pl.lit(".").alias("DECIMAL"))


def _long(subjects: pl.DataFrame, tests: list[str], test_var: str, repeat: int = 1) -> pl.DataFrame:
    """subjects x tests (x repeat draws), as the skeleton of a findings domain."""
    draws = pl.DataFrame({test_var: tests * repeat, "DRAW": np.repeat(np.arange(repeat), len(tests))})
    return subjects.join(draws, how="cross")


def synthesise(n_rows: int, n_sites: int, seed: int = 7) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    n_subjects = max(n_rows // ROWS_PER_SUBJECT, n_sites)
    sites = np.array([f"{101 + i:03d}" for i in range(n_sites)])
    site_of = sites[np.arange(n_subjects) % n_sites]
    usubjid = [f"{STUDY}-{s}-{i:05d}" for s, i in zip(site_of, range(n_subjects), strict=True)]
    sex = rng.choice(["M", "F"], n_subjects)
    subjects = pl.DataFrame({"USUBJID": usubjid, "STUDYID": STUDY})
    enrolled = rng.random(n_subjects) < 0.6
    dm = pl.DataFrame({
        "STUDYID": STUDY, "USUBJID": usubjid, "SITEID": site_of, "SUBJID": [u[-5:] for u in usubjid],
        "BRTHDTC": [f"{y}-{m:02d}-15" for y, m in zip(rng.integers(1946, 1990, n_subjects),
                                                       rng.integers(1, 13, n_subjects), strict=True)],
        "SEX": sex, "RFICDTC": "2026-01-05", "RFXSTDTC": np.where(enrolled, "2026-02-01", None),
        "AGE": "60", "COUNTRY": "DEU"})
    ds = pl.concat([
        subjects.with_columns(pl.lit("PROTOCOL MILESTONE").alias("DSCAT"),
                              pl.lit("INFORMED CONSENT OBTAINED").alias("DSDECOD"),
                              pl.lit("2026-01-05").alias("DSSTDTC")),
        subjects.with_columns(pl.lit("DISPOSITION EVENT").alias("DSCAT"),
                              pl.Series(np.where(enrolled, "ENROLLED", "SCREEN FAILURE")).alias("DSDECOD"),
                              pl.lit("2026-02-01").alias("DSSTDTC")),
    ])
    from contracts.protocol import load_protocol

    criteria = [(c.id, c.category.value) for c in load_protocol().criteria]
    ie = subjects.join(pl.DataFrame({"IETESTCD": [c for c, _ in criteria], "IECAT": [k for _, k in criteria]}),
                       how="cross").with_columns(
        pl.when(pl.col("IECAT") == "INCLUSION").then(pl.lit("Y")).otherwise(pl.lit("N")).alias("IEORRES"),
        pl.lit("2026-01-30").alias("IEDTC"))
    lb_num = _long(subjects, list(LB_TESTS), "LBTESTCD", repeat=2)
    n = lb_num.height
    spec = {k: pl.Series([v[i] for v in LB_TESTS.values()]) for k, i in (("U", 0), ("LO", 1), ("HI", 2))}
    mean = lb_num["LBTESTCD"].replace_strict({k: v[3] for k, v in LB_TESTS.items()}, return_dtype=pl.Float64)
    sd = lb_num["LBTESTCD"].replace_strict({k: v[4] for k, v in LB_TESTS.items()}, return_dtype=pl.Float64)
    values = (mean + sd * pl.Series(rng.standard_normal(n))).abs().round(2)
    planted = rng.random(n)
    values = pl.Series(np.where(planted < 0.001, values.to_numpy() * 1000, values.to_numpy())).round(2)
    units = lb_num["LBTESTCD"].replace_strict(dict(zip(LB_TESTS, spec["U"], strict=True)), return_dtype=pl.String)
    lb_num = lb_num.with_columns(
        values.cast(pl.String).alias("LBORRES"),
        pl.Series(np.where(planted > 0.999, "furlongs", units.to_numpy())).alias("LBORRESU"),
        pl.col("LBTESTCD").replace_strict(dict(zip(LB_TESTS, spec["LO"], strict=True)), return_dtype=pl.String)
        .alias("LBORNRLO"),
        pl.col("LBTESTCD").replace_strict(dict(zip(LB_TESTS, spec["HI"], strict=True)), return_dtype=pl.String)
        .alias("LBORNRHI"))
    lb_qual = _long(subjects, QUALITATIVE, "LBTESTCD", repeat=2).with_columns(
        pl.lit("NEGATIVE").alias("LBORRES"), pl.lit(None, pl.String).alias("LBORRESU"),
        pl.lit(None, pl.String).alias("LBORNRLO"), pl.lit(None, pl.String).alias("LBORNRHI"))
    lb = pl.concat([lb_num, lb_qual], how="diagonal").with_columns(
        pl.lit(None, pl.String).alias("LBSTAT"),
        pl.format("2026-01-{}", (pl.col("DRAW") * 7 + 10).cast(pl.String)).alias("LBDTC")).drop("DRAW")
    vs = _long(subjects, list(VS_TESTS), "VSTESTCD").with_columns(
        pl.col("VSTESTCD").replace_strict({k: v[1] for k, v in VS_TESTS.items()}, return_dtype=pl.Float64)
        .round(1).cast(pl.String).alias("VSORRES"),
        pl.col("VSTESTCD").replace_strict({k: v[0] for k, v in VS_TESTS.items()}, return_dtype=pl.String)
        .alias("VSORRESU"), pl.lit("2026-01-20").alias("VSDTC")).drop("DRAW")
    from contracts.domains import DOMAINS

    mh = _long(subjects, list(DOMAINS["mh"].allowed["MHTERM"]), "MHTERM").with_columns(
        pl.lit("N").alias("MHOCCUR"), pl.lit(None, pl.String).alias("MHSTDTC")).drop("DRAW")
    cm = _long(subjects, ["ENTECAVIR", "PARACETAMOL", "OMEPRAZOLE"], "CMTRT").with_columns(
        pl.col("CMTRT").alias("CMDECOD"),
        pl.when(pl.col("CMTRT") == "ENTECAVIR").then(pl.lit("ANTI-HBV THERAPY")).otherwise(pl.lit("OTHER"))
        .alias("CMCAT"), pl.lit("2025-06").alias("CMSTDTC"), pl.lit(None, pl.String).alias("CMENDTC"),
        pl.lit("ONGOING").alias("CMENRF")).drop("DRAW")
    pr = _long(subjects, ["TACE", "HEPATECTOMY"], "PRTRT").with_columns(
        pl.when(pl.col("PRTRT") == "TACE").then(pl.lit("LOCOREGIONAL THERAPY")).otherwise(pl.lit("SURGERY"))
        .alias("PRCAT"), pl.lit("2025-03-01").alias("PRSTDTC"), pl.lit("2025-03-02").alias("PRENDTC"),
        pl.lit("INEFFECTIVE").alias("PROUTC")).drop("DRAW")
    tu = _long(subjects, ["T01", "T02"], "TULNKID").with_columns(
        pl.lit("TUMIDENT").alias("TUTESTCD"), pl.lit("TARGET").alias("TUORRES"), pl.lit("LIVER").alias("TULOC"),
        pl.lit("2026-01-15").alias("TUDTC")).drop("DRAW")
    tr = _long(subjects, ["T01", "T02"], "TRLNKID").with_columns(
        pl.lit("LDIAM").alias("TRTESTCD"), pl.lit("34").alias("TRORRES"), pl.lit("mm").alias("TRORRESU"),
        pl.lit("2026-01-15").alias("TRDTC")).drop("DRAW")
    fa = _long(subjects, list(FA_TESTS), "FATESTCD").with_columns(
        pl.col("FATESTCD").replace_strict(FA_TESTS, return_dtype=pl.String).alias("FAORRES"),
        pl.col("FATESTCD").replace_strict({"LIFEEXP": "weeks", "ASCDEPTH": "cm"}, default=None,
                                          return_dtype=pl.String).alias("FAORRESU"),
        pl.lit("2026-01-18").alias("FADTC")).drop("DRAW")
    frames = {"dm": dm, "ds": ds, "ie": ie, "lb": lb, "vs": vs, "mh": mh, "cm": cm, "pr": pr, "tu": tu, "tr": tr,
              "fa": fa}
    return {name: _with_ingest_columns(frame.cast(pl.String), name) for name, frame in frames.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="validate domains in this many threads")
    args = parser.parse_args()

    start = time.perf_counter()
    from expectations.gx_run import _gx

    _gx()
    import_seconds = time.perf_counter() - start
    from contracts.protocol import load_protocol
    from expectations import finish_validation, validate_domain

    domains = synthesise(args.rows, args.sites)
    total_rows = sum(f.height for f in domains.values())
    protocol = load_protocol()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        start, cpu = time.perf_counter(), time.process_time()
        per_domain: dict[str, tuple[float, float]] = {}

        def one(name: str):
            t0, c0 = time.perf_counter(), time.process_time()
            part = validate_domain(name, domains, study=STUDY, protocol=protocol)
            per_domain[name] = (time.perf_counter() - t0, time.process_time() - c0)
            return part

        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            parts = list(pool.map(one, domains))
        t0, c0 = time.perf_counter(), time.process_time()
        result = finish_validation(parts, workdir=workdir)
        finish_seconds, finish_cpu = time.perf_counter() - t0, time.process_time() - c0
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"rows: {total_rows:,} across {len(domains)} domains, {args.sites} sites, "
          f"{domains['dm'].height:,} subjects")
    print(f"expectations: {len(result.expectations)}; findings: {result.findings.height:,}; "
          f"exclusions: {result.exclusions.height:,}; rejected: {result.rejected.height:,}")
    print("per domain, wall/CPU s (CPU counts every thread; per-domain CPU is exact with --threads 1): "
          + ", ".join(f"{k} {w:.2f}/{c:.2f}" for k, (w, c) in per_domain.items()))
    print(f"finish_validation incl. Data Docs: {finish_seconds:.2f} s wall, {finish_cpu:.2f} s CPU")
    print(f"validate all domains + finish: {total:.2f} s wall, {cpu:.2f} s CPU "
          f"(Great Expectations import before: {import_seconds:.1f} s)")
    print("findings by check: " + ", ".join(f"{c} {n}" for c, n in
                                            result.findings.group_by("CHECK").len().sort("CHECK").rows()))


if __name__ == "__main__":
    main()
