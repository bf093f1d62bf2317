"""`make bench`: the end-to-end benchmark of `screening-audit run`, with the issue's targets.

Each case generates a study into a local folder (`--formats csv`, not timed, cached between runs),
then times one cold `screening-audit run` process on it, landing and reports in local folders, and
records its wall time and peak memory. The floor is a cold process in which polars reads the same
CSV files the audit reads (each site's newest complete delivery), so the table says how far the
product is from just reading its input. Results are printed as a table and written to
`benchmarks/results.json`.

    .venv/bin/python -m benchmarks.run             # the issue's sizes (several minutes)
    .venv/bin/python -m benchmarks.run --quick     # smaller sizes, same shape
    .venv/bin/python -m benchmarks.run --cases demo,s100
    .venv/bin/python -m benchmarks.run --cases dirty   # real-world habits: >= 100,000 findings to publish

Peak memory is sampled (every 50 ms, psutil) over the whole process tree of the run, which
includes Prefect's temporary API server; `RSS max` is the kernel's peak of the largest single
process (wait4's ru_maxrss), which a sampler cannot miss. The same samples give each stage's CPU
seconds (user + system, whole tree, from the last sample before the stage to the first after it: up
to one sample period of the neighbouring work at each end), which tell a stage that waits from one
that computes, and one CPU from several.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

AS_OF = "2026-11-28"
STUDY = "SZ003"
SEED = 5
RESULTS = Path(__file__).with_name("results.json")
CLI = str(Path(sys.executable).with_name("screening-audit"))


@dataclass(frozen=True)
class Case:
    """One benchmark size, and the absolute targets of the issue that apply to it."""

    name: str
    sites: int
    subjects: int
    max_seconds: float | None = None
    max_rss_gb: float | None = None
    profile: str = "standard"  # the generator's profile (profiles.yaml): dirty = real-world habits at scale
    max_floor_ratio: float | None = None  # wall <= this x the floor measured in the same run
    min_findings: int | None = None  # validation + discrepancy rows the run must publish (before consolidation)
    publish_within_ingest: bool = False  # the publish stage takes no longer than ingestion of the same run


@dataclass(frozen=True)
class Relative:
    """A target relative to another case: `case` time <= `factor` x `base` time."""

    case: str
    base: str
    factor: float
    meaning: str


FULL = [
    Case("demo", 8, 400, max_seconds=25),
    Case("s100", 100, 10_000, max_seconds=45, max_rss_gb=2.5, max_floor_ratio=4.0),
    Case("s1000", 1000, 10_000),
    Case("n40k", 100, 40_000),
    Case("dirty", 100, 10_000, profile="dirty", min_findings=100_000, publish_within_ingest=True),
]
QUICK = [
    Case("demo", 8, 400, max_seconds=25),
    Case("s100", 20, 1_000),
    Case("s1000", 200, 1_000),
    Case("n40k", 20, 4_000),
    Case("dirty", 20, 1_000, profile="dirty", publish_within_ingest=True),
]
RELATIVE = [
    Relative("s1000", "s100", 1.3, "same subjects over 10x the sites"),
    Relative("n40k", "s100", 4.5, "4x the subjects (linear)"),
]


@dataclass
class Measure:
    case: str
    sites: int
    subjects: int
    input_rows: int = 0
    input_files: int = 0
    input_mb: float = 0.0
    generate_s: float = 0.0
    wall_s: float = 0.0
    peak_tree_mb: float = 0.0
    rss_max_mb: float = 0.0
    floor_s: float = 0.0  # the floor process, cold: from its start to its exit
    floor_read_s: float = 0.0  # of which reading the files (polars imported)
    floor_rss_mb: float = 0.0
    exit_code: int = 0
    findings: int = 0  # validation + discrepancy rows published (before any consolidation)
    site_query_rows: int = 0
    flow_s: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    stage_peak_mb: dict[str, float] = field(default_factory=dict)
    stage_cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds of the process tree per stage
    ingestion_cpu_s: float | None = None  # from the first ingestion stage's start to the last one's end
    checks: list[str] = field(default_factory=list)
    repeats: list[dict[str, float]] = field(default_factory=list)  # every run of the case (--repeat), in order

    @property
    def ratio(self) -> float:
        return self.wall_s / self.floor_s if self.floor_s else float("nan")


def landing_for(workdir: Path, case: Case) -> Path:
    """Generate the case's study once (cached by size, profile and seed); generation is not timed."""
    profile = "" if case.profile == "standard" else f"-{case.profile}"
    landing = workdir / f"landing-{case.sites}x{case.subjects}{profile}-seed{SEED}"
    marker = landing / ".complete"
    if not marker.exists():
        shutil.rmtree(landing, ignore_errors=True)
        from generator import generate
        from storage import LocalStore

        generate(LocalStore(landing), study=STUDY, sites=case.sites, subjects=case.subjects, seed=SEED,
                 as_of=date.fromisoformat(AS_OF), formats="csv", profile=case.profile)
        marker.write_text(datetime.now(UTC).isoformat())
    return landing


def audited_files(landing: Path) -> list[tuple[Path, str]]:
    """(path, encoding) of every CSV in each site's newest delivery that has a manifest.

    The audit may reject that delivery and fall back to an older one; the floor still reads the
    newest, which is the same amount of work for every case and good enough for a floor.
    """
    files: list[tuple[Path, str]] = []
    for site in sorted(p for p in (landing / STUDY).iterdir() if p.is_dir()):
        complete = sorted(d for d in site.iterdir() if (d / "manifest.json").is_file())
        if not complete:
            continue
        manifest = json.loads((complete[-1] / "manifest.json").read_text(encoding="utf-8"))
        for entry in manifest.get("files", []):
            path = complete[-1] / str(entry.get("name", ""))
            if path.suffix == ".csv" and path.is_file():
                files.append((path, str(entry.get("encoding", "utf-8"))))
    return files


def floor(landing: Path) -> dict[str, float]:
    """Read every audited CSV with polars, all columns as text (run in a cold child process)."""
    import polars as pl

    rows = skipped = 0
    started = time.perf_counter()
    for path, encoding in audited_files(landing):
        head = path.open("rb").read(4096)
        separator = ";" if head.count(b";") > head.count(b",") else ","
        enc = "utf8" if encoding.lower().replace("-", "") in ("utf8", "ascii") else "utf8-lossy"
        try:
            rows += pl.read_csv(path, infer_schema=False, separator=separator, encoding=enc,
                                truncate_ragged_lines=True).height
        except Exception:  # a deliberately broken file: the audit reports it, the floor skips it
            skipped += 1
    return {"rows": rows, "skipped_files": skipped, "seconds": time.perf_counter() - started}


def _tree_usage(pid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds used so far) of the process `pid` and its descendants, as they are now."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0.0
    rss, cpu = 0, 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error), p.oneshot():
            rss += p.memory_info().rss
            times = p.cpu_times()
            cpu += times.user + times.system
    return rss, cpu


#: one sample of the run's process tree: (UTC time, RSS bytes, CPU seconds so far)
Sample = tuple[datetime, int, float]


def span_cpu(samples: list[Sample], start: datetime, end: datetime) -> float | None:
    """CPU seconds the tree used from `start` to `end`: between the last sample at or before `start`
    and the first at or after `end` (a process that ended in between takes its CPU time with it); None
    when the samples do not cover the span."""
    before = [cpu for t, _, cpu in samples if t <= start]
    after = [cpu for t, _, cpu in samples if t >= end]
    if not before or not after:
        return None
    return max(after[0] - before[-1], 0.0)


#: Prefect task-run name prefixes, in flow order (a task's run name is `<prefix>-<suffix>`)
STAGES = ("list-sites", "ingest", "combine-sites", "audit", "validate", "finish-validation", "build-data-docs",
          "evaluate-eligibility", "compare-with-site", "apply-history", "validation-history", "review", "render",
          "publish", "promote")


def stage_spans(prefect_db: Path) -> tuple[tuple[datetime, datetime] | None, dict[str, tuple[datetime, datetime]]]:
    """(flow run span, span per stage) read from the run's own Prefect database (UTC datetimes).

    This is the profile of a run without a profiler: every task records its start and end. A
    stage run as parallel tasks (ingest per site, validate per domain) counts from the first start
    to the last end. Process wall time minus the flow's time is Prefect's start-up and shut-down.
    """
    import sqlite3

    def utc(text: str) -> datetime:
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    if not prefect_db.is_file():
        return None, {}
    with sqlite3.connect(prefect_db) as db:
        flow = db.execute("select id, start_time, end_time from flow_run where end_time is not null "
                          "order by start_time desc limit 1").fetchone()
        if flow is None:
            return None, {}
        tasks = db.execute("select name, start_time, end_time from task_run where end_time is not null "
                           "and flow_run_id = ?", (flow[0],)).fetchall()
    spans: dict[str, tuple[str, str]] = {}
    for name, start, end in tasks:
        stage = next((s for s in STAGES if name.startswith(s + "-")), name)
        first, last = spans.get(stage, (start, end))
        spans[stage] = (min(first, start), max(last, end))
    ordered = {s: (utc(spans[s][0]), utc(spans[s][1])) for s in STAGES if s in spans}
    return (utc(flow[1]), utc(flow[2])), ordered


def timed_child(argv: list[str], env: dict[str, str], log: Path,
                samples: list[Sample] | None = None) -> tuple[int, float, int, int]:
    """Run `argv` cold; (exit code, wall seconds, peak tree RSS bytes, kernel ru_maxrss bytes).

    `samples`, when given, receives (UTC time, tree RSS bytes, tree CPU seconds) every 50 ms.
    """
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                wall = time.perf_counter() - started
                proc.returncode = os.waitstatus_to_exitcode(status)
                return proc.returncode, wall, peak, usage.ru_maxrss * 1024
            rss, cpu = _tree_usage(proc.pid)
            peak = max(peak, rss)
            if samples is not None:
                samples.append((datetime.now(UTC), rss, cpu))
            time.sleep(0.05)


WARM_UP = ("from prefect.server.api.server import SubprocessASGIServer\n"
           "server = SubprocessASGIServer()\nserver.start(timeout=900)\nserver.stop()\n")


def prefect_home(workdir: Path, fresh: bool) -> Path:
    """The PREFECT_HOME of the timed runs.

    By default one home is shared by every case and warmed once, untimed: an operator's CLI keeps
    ~/.prefect between nights, so its database is created and migrated once, not on every run.
    `--fresh-prefect-home` gives each run an empty home instead (a first run on a new machine).
    """
    if fresh:
        return Path(tempfile.mkdtemp(prefix="bench-prefect-", dir=workdir))
    home = workdir / "prefect-home"
    if not (home / "prefect.db").is_file():
        env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        subprocess.run([sys.executable, "-c", WARM_UP], env=env, check=True, capture_output=True)
    return home


def measure(case: Case, workdir: Path, fresh_home: bool = False, extra_env: dict[str, str] | None = None) -> Measure:
    result = Measure(case.name, case.sites, case.subjects)
    started = time.perf_counter()
    landing = landing_for(workdir, case)
    result.generate_s = time.perf_counter() - started
    files = audited_files(landing)
    result.input_files = len(files)
    result.input_mb = sum(p.stat().st_size for p, _ in files) / 1e6

    env = dict(os.environ)
    home = prefect_home(workdir, fresh_home)
    env.update(PREFECT_HOME=str(home), COLUMNS="120", **(extra_env or {}))
    reports = workdir / f"reports-{case.name}"
    shutil.rmtree(reports, ignore_errors=True)
    samples: list[Sample] = []
    code, wall, peak, rss_max = timed_child(
        [CLI, "run", "--landing", str(landing), "--reports", str(reports), "--as-of", AS_OF, "--study", STUDY],
        env, workdir / f"{case.name}.log", samples)
    result.exit_code, result.wall_s = code, wall
    flow, spans = stage_spans(home / "prefect.db")
    if flow:
        result.flow_s = (flow[1] - flow[0]).total_seconds()
        result.stages = {name: (end - start).total_seconds() for name, (start, end) in spans.items()}
        result.stage_peak_mb = {name: max((rss for t, rss, _ in samples if start <= t <= end), default=0) / 1e6
                                for name, (start, end) in spans.items()}
        covered = {name: span_cpu(samples, start, end) for name, (start, end) in spans.items()}
        result.stage_cpu_s = {name: cpu for name, cpu in covered.items() if cpu is not None}
        ingestion = [spans[name] for name in INGESTION if name in spans]
        if ingestion:
            result.ingestion_cpu_s = span_cpu(samples, min(a for a, _ in ingestion), max(b for _, b in ingestion))
    result.peak_tree_mb, result.rss_max_mb = peak / 1e6, rss_max / 1e6

    out = workdir / f"{case.name}-floor.json"
    _, floor_wall, _, floor_rss = timed_child(
        [sys.executable, "-m", "benchmarks.run", "--floor", str(landing), "--floor-out", str(out)],
        env, workdir / f"{case.name}-floor.log")
    measured = json.loads(out.read_text())
    # the floor is a cold process like the run it is compared with (interpreter, polars import, reading)
    result.input_rows, result.floor_s, result.floor_rss_mb = int(measured["rows"]), floor_wall, floor_rss / 1e6
    result.floor_read_s = measured["wall"]
    if fresh_home:
        shutil.rmtree(home, ignore_errors=True)

    result.findings, result.site_query_rows = published_findings(reports / STUDY / AS_OF)
    if code != 0:
        result.checks.append(f"FAIL exit code {code} (see {workdir / (case.name + '.log')})")
    _case_checks(case, result)
    if case.max_seconds is not None:
        ok = wall <= case.max_seconds
        result.checks.append(f"{'ok' if ok else 'MISS'} wall {wall:.1f} s <= {case.max_seconds:g} s")
    if case.max_rss_gb is not None:
        ok = peak / 1e9 <= case.max_rss_gb
        result.checks.append(f"{'ok' if ok else 'MISS'} peak {peak / 1e9:.2f} GB <= {case.max_rss_gb:g} GB")
    return result


#: the stages that make up ingestion: listing the sites, reading and checking them, combining them
INGESTION = ("list-sites", "ingest", "combine-sites")


def ingestion_seconds(result: Measure) -> float:
    """Ingestion of the run: the spans of its stages added up (each from its first task's start to its
    last task's end).

    A nightly run has no combine-sites task: its partition combines the sites' frames as the first step
    of the `audit` stage (0.06-0.12 s on dirty), so ingestion here is listing and reading only, a little
    less than the whole of it (publish <= ingestion is checked against that smaller figure)."""
    return sum(result.stages.get(stage, 0.0) for stage in INGESTION)


def published_findings(folder: Path) -> tuple[int, int]:
    """(validation + discrepancy rows, site-query rows) of a published run folder (0s when absent)."""
    import polars as pl

    try:
        findings = sum(pl.scan_parquet(folder / f"{name}.parquet").select(pl.len()).collect().item()
                       for name in ("validation", "discrepancies"))
        queries = sum(pl.scan_csv(path, infer_schema=False).select(pl.len()).collect().item()
                      for path in (folder / "site_queries").glob("*.csv"))
    except (OSError, pl.exceptions.PolarsError):
        return 0, 0
    return findings, queries


def _case_checks(case: Case, result: Measure) -> None:
    if case.max_floor_ratio is not None:
        ok = result.ratio <= case.max_floor_ratio
        result.checks.append(f"{'ok' if ok else 'MISS'} wall {result.ratio:.1f} x floor <= {case.max_floor_ratio:g} x")
    if case.min_findings is not None:
        ok = result.findings >= case.min_findings
        result.checks.append(f"{'ok' if ok else 'MISS'} findings {result.findings:,} >= {case.min_findings:,}")
    if case.publish_within_ingest and result.stages:
        publish, ingest = result.stages.get("publish", float("nan")), ingestion_seconds(result)
        ok = publish <= ingest
        def cpu(seconds: float | None) -> str:
            return "CPU not sampled" if seconds is None else f"{seconds:.1f} CPU-s"

        # CPU seconds beside each: a stage on one CPU and one on several compare differently on other machines
        publish_cpu = cpu(result.stage_cpu_s.get("publish"))
        result.checks.append(f"{'ok' if ok else 'MISS'} publish {publish:.2f} s ({publish_cpu}) <= ingestion "
                             f"{ingest:.2f} s ({cpu(result.ingestion_cpu_s)})")


def _publish_share(result: Measure) -> float:
    """publish / ingestion of one run (the dirty target is <= 1)."""
    ingest = ingestion_seconds(result)
    return result.stages.get("publish", float("nan")) / ingest if ingest else float("nan")


def median_run(case: Case, runs: list[Measure]) -> Measure:
    """The run of `runs` that stands for the case: the median (the lower one of an even count) by what its
    target compares (publish / ingestion for dirty, wall / floor otherwise), with every run's figures in
    `repeats` and a check line over all of them.

    Why: on a shared machine one run's verdict is noise when two stages are close (dirty's publication and
    ingestion met their target in 8 of 12 single runs); the median of several runs taken one after the other
    is the figure to judge, and the spread says how far to trust it."""
    share = case.publish_within_ingest

    def value(run: Measure) -> float:
        return _publish_share(run) if share else run.ratio

    # a run without the figure (it failed: no publish stage) ranks last, not anywhere NaN happens to sort
    ranked = sorted(runs, key=lambda run: (math.isnan(value(run)), value(run)))
    chosen = ranked[(len(ranked) - 1) // 2]
    chosen.repeats = [{"wall_s": run.wall_s, "floor_s": run.floor_s, "ratio": run.ratio,
                       "publish_s": run.stages.get("publish", float("nan")), "ingestion_s": ingestion_seconds(run),
                       "publish_share": _publish_share(run)} for run in runs]
    if len(runs) > 1:
        values = [value(run) for run in runs]
        limit = 1.0 if share else case.max_floor_ratio
        what = "publish / ingestion" if share else "wall / floor"
        met = f", met by {sum(v <= limit for v in values)} of {len(runs)}" if limit is not None else ""
        verdict = "" if limit is None else ("ok " if values[runs.index(chosen)] <= limit else "MISS ")
        chosen.checks.append(f"{verdict}median of {len(runs)} runs: {what} {values[runs.index(chosen)]:.2f} "
                             f"(from {min(values):.2f} to {max(values):.2f}{met})")
        failed = sum(run.exit_code != 0 for run in runs)
        if failed:
            chosen.checks.append(f"FAIL {failed} of {len(runs)} runs exited with an error (see the case's log)")
    return chosen


def relative_checks(results: dict[str, Measure]) -> list[str]:
    lines = []
    for rel in RELATIVE:
        if rel.case in results and rel.base in results:
            ratio = results[rel.case].wall_s / results[rel.base].wall_s
            ok = ratio <= rel.factor
            lines.append(f"{'ok' if ok else 'MISS'} {rel.case} / {rel.base} = {ratio:.2f} <= {rel.factor:g} "
                         f"({rel.meaning})")
    return lines


def print_table(results: list[Measure], notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"screening-audit run, cold process, local folders ({os.cpu_count()} CPUs)")
    for column in ("case", "sites", "subjects", "input rows", "input MB", "findings", "wall s", "peak RSS MB",
                   "RSS max MB", "floor s", "ratio", "targets"):
        table.add_column(column, justify="left" if column in ("case", "targets") else "right")
    for m in results:
        table.add_row(m.case, f"{m.sites:,}", f"{m.subjects:,}", f"{m.input_rows:,}", f"{m.input_mb:.0f}",
                      f"{m.findings:,}", f"{m.wall_s:.1f}", f"{m.peak_tree_mb:,.0f}", f"{m.rss_max_mb:,.0f}",
                      f"{m.floor_s:.2f}", f"{m.ratio:.1f}x", "\n".join(m.checks))
    console = Console(width=None if sys.stdout.isatty() else 180)
    console.print(table)
    stages = Table(title="where the time goes (seconds, from each run's Prefect task records)")
    stages.add_column("case")
    for name in ("prefect start/stop", "flow", *STAGES):
        stages.add_column(name.replace("-", " "), justify="right")
    for m in results:
        stages.add_row(m.case, f"{m.wall_s - m.flow_s:.1f}", f"{m.flow_s:.1f}",
                       *(f"{m.stages[s]:.1f}" if s in m.stages else "" for s in STAGES))
        stages.add_row("  peak MB", "", "", *(f"{m.stage_peak_mb[s]:,.0f}" if s in m.stage_peak_mb else ""
                                              for s in STAGES))
        # a stage shorter than a few sample periods would show mostly its neighbours' CPU: left blank
        stages.add_row("  CPU s", "", "", *(f"{m.stage_cpu_s[s]:.1f}" if s in m.stage_cpu_s
                                            and m.stages.get(s, 0.0) >= 0.1 else "" for s in STAGES))
    console.print(stages)
    for line in notes:
        console.print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a tenth)")
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "screening-audit-bench",
                        help="generated landings are cached here between runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment of the timed runs (to compare settings), repeatable")
    parser.add_argument("--fresh-prefect-home", action="store_true",
                        help="an empty PREFECT_HOME per run (includes creating Prefect's database)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run each case N times, one after the other, and keep the median run (its table row; "
                             "every run's figures in results.json)")
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--floor-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.floor:  # child mode: the polars floor in its own cold process
        started = time.perf_counter()
        measured = floor(args.floor)
        measured["wall"] = time.perf_counter() - started
        args.floor_out.write_text(json.dumps(measured))
        return 0

    cases = QUICK if args.quick else FULL
    if args.cases:
        wanted = set(args.cases.split(","))
        cases = [c for c in cases if c.name in wanted]
    args.workdir.mkdir(parents=True, exist_ok=True)
    extra_env = dict(item.split("=", 1) for item in args.env)
    results: dict[str, Measure] = {}
    failures = 0  # runs that exited with an error, the repeats not kept included
    for case in cases:
        print(f"{case.name}: {case.sites} sites, {case.subjects} subjects ...", flush=True)
        runs = []
        for _ in range(max(args.repeat, 1)):
            runs.append(m := measure(case, args.workdir, args.fresh_prefect_home, extra_env))
            print(f"  {m.input_rows:,} rows, wall {m.wall_s:.1f} s, peak {m.peak_tree_mb:,.0f} MB, "
                  f"floor {m.floor_s:.2f} s (generation {m.generate_s:.0f} s)", flush=True)
        results[case.name] = median_run(case, runs)
        failures += sum(run.exit_code != 0 for run in runs)
    notes = relative_checks(results)
    print_table(list(results.values()), notes)
    args.out.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "repeat": max(args.repeat, 1),
        "fresh_prefect_home": args.fresh_prefect_home,
        "env": extra_env,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg": list(os.getloadavg())},
        "cases": [{**asdict(m), "ratio": m.ratio} for m in results.values()],
        "relative": notes,
    }, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
