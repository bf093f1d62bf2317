"""Benchmark: evaluate() on a synthetic SZ003 study, and evaluate() + compare() on the cached landings.

    .venv/bin/python -m benchmarks.bench_evaluation [--subjects 100000] [--seed 7] [--repeat 1] [--amended]
    .venv/bin/python -m benchmarks.bench_evaluation --cases s100,n40k   # the landings of benchmarks.run

Synthetic mode: the population is built vectorised (numpy + polars, no loop over subjects): every
subject gets the full screening data set of tests.support.sample_subject, with values drawn around the protocol
thresholds, a mix of units (SI and conventional), some censored and some missing results, partial
dates, stale results, medication and procedure histories. It prints the rows per domain, the wall
time, CPU time and peak RSS of evaluate() and the outcome counts, so that a regression in speed, in
memory or in behaviour is visible at a glance.

`--amended` also evaluates the same population under a two-version SZ003 (tests.support.amended's 2.0,
effective 2025-08-15, the middle of the consent dates) with every August 2025 consent date made partial
(`2025-08`: those subjects span the amendment), and prints both timings and their ratio: the cost of
judging each subject by its version (one evaluation per version, and the merge of the spanning subjects).

Landing mode (`--cases`): each case of benchmarks.run (`s100`: 100 sites x 10,000 subjects, `n40k`:
100 x 40,000) is generated once like `make bench` does, then ingested and validated once as the
flow does (ingestion.ingest_site / combine_sites, expectations.validate_domain / finish_validation);
these inputs are cached as Parquet beside the landing. Each case then runs in its own cold child
process: inputs loaded, then evaluate() and compare() called as flows/tasks.py calls them, the
process RSS sampled every 10 ms with psutil (polars allocates outside Python's heap, so tracemalloc
would not see it). Printed per stage: wall and CPU seconds, the RSS at the start, the peak during
the stage and its rise over the start, and a digest of the outputs (a change in any output table
changes it: optimisations must keep it).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl

from checks.evaluation import evaluate
from contracts.protocol import load_protocol
from tests.support.sample_subject import FA_VALUES, LB_VALUES, MH_TERMS

START = date(2025, 3, 1)
T = TypeVar("T")


def _text(values: np.ndarray, decimals: int) -> pl.Series:
    return pl.Series(np.round(values, decimals)).cast(pl.String)


def _frame(base: pl.DataFrame, domain: str, site: pl.Expr) -> pl.DataFrame:
    """Add the ingestion columns: SOURCE_KEY, SOURCE_ROW, DELIVERY_SITEID, DECIMAL; delivered columns text."""
    return base.with_columns(pl.all().cast(pl.String)).with_columns(
        pl.format("SZ003/{}/20250301T000000Z/{}.csv", site, pl.lit(domain)).alias("SOURCE_KEY"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("SOURCE_ROW"),
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


class RssSampler:
    """Peak resident memory of this process, sampled on a thread every `interval` seconds."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        return self._process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self.rss())
            time.sleep(self._interval)

    def reset(self) -> int:
        """Start a new stage: the peak restarts from the current RSS, which is returned."""
        now = self.rss()
        self._peak = now
        return now

    def peak(self) -> int:
        time.sleep(self._interval * 2)  # the sampler's last look
        return max(self._peak, self.rss())


@dataclass(frozen=True)
class Stage:
    name: str
    wall_s: float
    cpu_s: float
    start_mb: float
    peak_mb: float
    end_mb: float

    @property
    def rise_mb(self) -> float:
        return self.peak_mb - self.start_mb


def measured(name: str, sampler: RssSampler, call: Callable[[], T]) -> tuple[T, Stage]:
    """Run `call()` as one stage: (its result, Stage)."""
    gc.collect()
    start = sampler.reset()
    began, began_cpu = time.perf_counter(), time.process_time()
    result = call()
    wall, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    peak = sampler.peak()
    return result, Stage(name, wall, cpu, start / 1e6, peak / 1e6, sampler.rss() / 1e6)


def _digest(*frames: pl.DataFrame) -> str:
    digest = hashlib.sha256()
    for frame in frames:
        buffer = io.BytesIO()
        frame.write_csv(buffer)
        digest.update(hashlib.sha256(buffer.getvalue()).digest())
    return digest.hexdigest()[:16]


def _inputs_dir(landing: Path) -> Path:
    return landing.parent / f"evaluation-inputs-{landing.name}"


def prepare_inputs(landing: Path, study: str) -> Path:
    """Ingest and validate `landing` once as the flow does; the inputs of evaluate() as Parquet."""
    folder = _inputs_dir(landing)
    if (folder / ".complete").exists():
        return folder
    import tempfile

    from expectations import finish_validation, validate_domain
    from ingestion import combine_sites, ingest_site, list_sites
    from ingestion.unread import unread_in
    from storage import LocalStore

    store = LocalStore(landing)
    ingest = combine_sites(study, [ingest_site(store, study, site) for site in list_sites(store, study)])
    protocol = load_protocol()
    unread = unread_in(ingest)
    with tempfile.TemporaryDirectory(prefix="bench-evaluation-") as tmp:
        parts = [validate_domain(domain, ingest.domains, study=study, protocol=protocol, unread=unread)
                 for domain in sorted(ingest.domains)]
        validation = finish_validation(parts, workdir=Path(tmp))
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in ingest.domains.items():
        frame.write_parquet(folder / f"domain-{name}.parquet")
    validation.exclusions.write_parquet(folder / "exclusions.parquet")
    validation.rejected.write_parquet(folder / "rejected.parquet")
    unread.write_parquet(folder / "unread.parquet")
    (folder / ".complete").write_text("ok")
    return folder


def run_case(folder: Path, as_of: date) -> dict:
    """In a cold process: load the inputs, then evaluate() and compare() as flows/tasks.py calls them."""
    from checks.comparison.compare import compare

    sampler = RssSampler()
    # one contiguous chunk per column, as combine_sites hands them over (it sorts after the concat)
    domains = {path.stem.removeprefix("domain-"): pl.read_parquet(path).rechunk()
               for path in sorted(folder.glob("domain-*.parquet"))}
    exclusions = pl.read_parquet(folder / "exclusions.parquet")
    rejected = pl.read_parquet(folder / "rejected.parquet")
    unread = pl.read_parquet(folder / "unread.parquet") if (folder / "unread.parquet").exists() else None
    protocol = load_protocol()
    result, evaluated = measured("evaluate", sampler, lambda: evaluate(
        domains, protocol, as_of, exclusions=exclusions, rejected=rejected, unread=unread))
    comparison, compared = measured("compare", sampler, lambda: compare(
        result, domains, protocol, as_of, exclusions=exclusions, rejected=rejected, unread=unread))
    return {
        "rows": sum(frame.height for frame in domains.values()),
        "subjects": result.reference.height,
        "stages": [{**stage.__dict__, "rise_mb": stage.rise_mb} for stage in (evaluated, compared)],
        "digest": _digest(result.eligibility, result.reference, result.criteria, comparison.subjects,
                          comparison.discrepancies, comparison.checklist),
    }


def landing_cases(names: list[str], workdir: Path) -> None:
    from benchmarks.run import AS_OF, FULL, STUDY, landing_for

    cases = {case.name: case for case in FULL}
    unknown = [name for name in names if name not in cases]
    if unknown:
        raise SystemExit(f"unknown cases {unknown} (known: {sorted(cases)})")
    print(f"{'case':6} {'rows':>10} {'subjects':>9}  {'stage':9} {'wall s':>7} {'CPU s':>7} {'start MB':>9} "
          f"{'peak MB':>8} {'rise MB':>8}  digest")
    for name in names:
        landing = landing_for(workdir, cases[name])
        folder = prepare_inputs(landing, STUDY)
        child = subprocess.run([sys.executable, "-m", "benchmarks.bench_evaluation", "--child", str(folder),
                                "--as-of", AS_OF], capture_output=True, text=True, check=True)
        report = json.loads(child.stdout.strip().splitlines()[-1])
        for stage in report["stages"]:
            print(f"{name:6} {report['rows']:>10,} {report['subjects']:>9,}  {stage['name']:9} "
                  f"{stage['wall_s']:>7.2f} {stage['cpu_s']:>7.2f} {stage['start_mb']:>9,.0f} "
                  f"{stage['peak_mb']:>8,.0f} {stage['rise_mb']:>8,.0f}  {report['digest']}", flush=True)


def synthetic(args: argparse.Namespace) -> None:
    began = time.perf_counter()
    domains = synthesise(args.subjects, args.seed)
    built = time.perf_counter() - began
    rows = {name: frame.height for name, frame in domains.items()}
    print(f"synthesised {args.subjects:,} subjects, {sum(rows.values()):,} rows in {built:.1f} s: {rows}")
    protocol = load_protocol()
    sampler = RssSampler()
    stages = []
    for _ in range(args.repeat):
        result, stage = measured("evaluate", sampler, lambda: evaluate(domains, protocol, date(2026, 6, 1)))
        stages.append(stage)
    best = min(stages, key=lambda stage: stage.wall_s)
    # CPU time is reported too: on a shared machine the wall time depends on the neighbours
    print(f"evaluate(): {best.wall_s:.2f} s wall, {best.cpu_s:.2f} s CPU (best of {args.repeat}), peak RSS "
          f"{stages[0].peak_mb:,.0f} MB (+{stages[0].rise_mb:,.0f} MB over its start) -> "
          f"{result.eligibility.height:,} subject x component rows, "
          f"{result.criteria.height:,} subject x criterion rows")
    print(result.eligibility.group_by("OUTCOME").len().sort("OUTCOME"))
    print(result.eligibility.group_by("REASON_CODE").len().sort("len", descending=True).head(8))


def amended_protocol(folder: Path, effective: str = "2025-08-15"):
    """The bundled SZ003 (1.0) and tests.support.amended's 2.0 moved to `effective`, as one protocol."""
    from tests.support import amended

    amended.write_protocol(folder)
    v2 = folder / "sz003-v2.yaml"
    v2.write_text(v2.read_text(encoding="utf-8").replace("effective: 2025-03-15", f"effective: {effective}"),
                  encoding="utf-8")
    return load_protocol(folder)


def amended_comparison(domains: dict[str, pl.DataFrame], repeat: int) -> None:
    """evaluate() of one population by the single-version and by the two-version protocol."""
    import tempfile

    dm = domains["dm"].with_columns(
        pl.when(pl.col("RFICDTC").str.starts_with("2025-08")).then(pl.lit("2025-08")).otherwise(pl.col("RFICDTC"))
        .alias("RFICDTC"))
    domains = {**domains, "dm": dm}
    spanning = dm.filter(pl.col("RFICDTC") == "2025-08").height
    with tempfile.TemporaryDirectory() as tmp:
        protocols = {"1 version": load_protocol(), "2 versions": amended_protocol(Path(tmp) / "sz003")}
    sampler = RssSampler()
    timings = {}
    for name, protocol in protocols.items():
        stages = []
        for _ in range(repeat):
            result, stage = measured("evaluate", sampler, lambda p=protocol: evaluate(domains, p, date(2026, 6, 1)))
            stages.append(stage)
        timings[name] = min(stages, key=lambda stage: stage.wall_s)
        tivers = result.reference.group_by("TIVERS").len().sort("TIVERS").rows()
        print(f"{name}: {timings[name].wall_s:.2f} s wall, {timings[name].cpu_s:.2f} s CPU, peak RSS "
              f"{stages[0].peak_mb:,.0f} MB (+{stages[0].rise_mb:,.0f} MB over its start) -> "
              f"{result.eligibility.height:,} rows; subjects per TIVERS {tivers}")
        del result
    single, amended_ = timings["1 version"], timings["2 versions"]
    print(f"two versions / one version: {amended_.wall_s / single.wall_s:.2f} x wall, "
          f"{amended_.cpu_s / single.cpu_s:.2f} x CPU ({spanning:,} subjects with a consent spanning the amendment)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--amended", action="store_true",
                        help="also evaluate with a two-version protocol and print the ratio")
    parser.add_argument("--cases", default="", help="landing cases of benchmarks.run, comma-separated (s100,n40k)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where benchmarks.run caches its landings (default: its own)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--as-of", default="2026-11-28", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, date.fromisoformat(args.as_of))))
        return
    if args.cases:
        import tempfile

        workdir = args.workdir or Path(tempfile.gettempdir()) / "screening-audit-bench"
        landing_cases([name for name in args.cases.split(",") if name], workdir)
        return
    synthetic(args)
    if args.amended:
        amended_comparison(synthesise(args.subjects, args.seed), args.repeat)


if __name__ == "__main__":
    main()
