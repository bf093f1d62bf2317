"""Scale-out benchmark (issue 17): the audit on a 2-worker Dask cluster against the single process.

    .venv/bin/python -m benchmarks.bench_cluster                      # n40k, n100k, runall (long)
    .venv/bin/python -m benchmarks.bench_cluster --cases n40k

For each study size, two cold `screening-audit run` processes on the same landing (local folders,
generated once and cached like `benchmarks.run`): with threads (the single process) and with
`--runner dask --dask-workers 2`. The memory of every process of the run's tree is sampled every
50 ms and attributed by role: the flow (the CLI process itself, which with a local cluster also hosts
the Dask scheduler and the nannies), each Dask worker process, Prefect's temporary API server.
`runall` audits 8 studies of 5,000 subjects with `run-all --runner dask` on one 2-worker cluster.
Targets (issue 17): flow <= 1 GB whatever the study size, each worker <= 2.5 GB, cluster time <=
1.2 x the single process; run-all parent <= 1 GB. Results go to benchmarks/results_cluster.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from benchmarks.run import AS_OF, CLI, SEED, STUDY, Case, landing_for, prefect_home, stage_spans

RESULTS = Path(__file__).with_name("results_cluster.json")
SIZES = {"n40k": Case("n40k", 100, 40_000), "n100k": Case("n100k", 100, 100_000)}
RUN_ALL_STUDIES, RUN_ALL_SITES, RUN_ALL_SUBJECTS = 8, 20, 5_000
FLOW_GB, WORKER_GB, TIME_FACTOR = 1.0, 2.5, 1.2


@dataclass
class Run:
    """One cold CLI process: wall time and the peak RSS of each role's processes (MB)."""

    argv: list[str]
    exit_code: int = 0
    wall_s: float = 0.0
    flow_mb: float = 0.0
    workers_mb: list[float] = field(default_factory=list)
    server_mb: float = 0.0
    tree_mb: float = 0.0
    flow_stage_mb: dict[str, float] = field(default_factory=dict)  # the flow process's peak during each stage
    worker_stage_mb: dict[str, float] = field(default_factory=dict)  # the largest worker's peak during each stage
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds (user + system) per role, last sample


def _role(proc, root: int) -> str:
    if proc.pid == root:
        return "flow"
    with contextlib.suppress(Exception):
        line = " ".join(proc.cmdline())
        if "runtime.api_server" in line or ("prefect" in line and ("server" in line or "uvicorn" in line)):
            return "server"
        if "multiprocessing" in line or "dask" in line or "distributed" in line:
            return "worker"
    return "other"


def timed(argv: list[str], env: dict[str, str], log: Path) -> Run:
    """Run `argv` cold, sampling every process of its tree every 50 ms."""
    from datetime import UTC, datetime

    import psutil

    run = Run(argv)
    peaks: dict[int, tuple[str, int]] = {}
    cpu: dict[int, float] = {}
    flow_samples: list[tuple[datetime, int]] = []
    worker_samples: list[tuple[datetime, int]] = []
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            total = 0
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(proc.pid)
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        rss = p.memory_info().rss
                        times = p.cpu_times()
                        cpu[p.pid] = times.user + times.system
                        total += rss
                        role = peaks[p.pid][0] if p.pid in peaks else _role(p, proc.pid)
                        peaks[p.pid] = (role, max(rss, peaks.get(p.pid, (role, 0))[1]))
                        if p.pid == proc.pid:
                            flow_samples.append((datetime.now(UTC), rss))
                        elif role == "worker":
                            worker_samples.append((datetime.now(UTC), rss))
            run.tree_mb = max(run.tree_mb, total / 1e6)
            time.sleep(0.05)
        run.wall_s, run.exit_code = time.perf_counter() - started, proc.returncode
    by_role = {role: [rss / 1e6 for r, rss in peaks.values() if r == role] for role in ("flow", "worker", "server")}
    run.flow_mb = max(by_role["flow"], default=0.0)
    run.workers_mb = sorted((mb for mb in by_role["worker"] if mb > 150), reverse=True)  # not the tiny helpers
    run.server_mb = max(by_role["server"], default=0.0)
    for pid, seconds in cpu.items():
        role = peaks[pid][0]
        run.cpu_s[role] = round(run.cpu_s.get(role, 0.0) + seconds, 1)
    _, spans = stage_spans(Path(env["PREFECT_HOME"]) / "prefect.db")
    run.flow_stage_mb = {name: max((rss for t, rss in flow_samples if start <= t <= end), default=0) / 1e6
                         for name, (start, end) in spans.items()}
    run.worker_stage_mb = {name: max((rss for t, rss in worker_samples if start <= t <= end), default=0) / 1e6
                           for name, (start, end) in spans.items()}
    return run


def _env(workdir: Path) -> dict[str, str]:
    """A Prefect home of this benchmark's own (warmed once): the stage spans are read from its database."""
    home = workdir / "cluster-bench"
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PREFECT_HOME": str(prefect_home(home, False)), "COLUMNS": "120"}


MODES = {"single": [], "cluster": ["--runner", "dask", "--dask-workers", "2"]}


def size_case(case: Case, workdir: Path, modes: tuple[str, ...] = tuple(MODES)) -> dict:
    landing = landing_for(workdir, case)
    runs = {}
    for mode in modes:
        extra = MODES[mode]
        reports = workdir / f"reports-cluster-{case.name}-{mode}"
        shutil.rmtree(reports, ignore_errors=True)
        argv = [CLI, "run", "--landing", str(landing), "--reports", str(reports), "--as-of", AS_OF,
                "--study", STUDY, *extra]
        runs[mode] = timed(argv, _env(workdir), workdir / f"cluster-{case.name}-{mode}.log")
        shutil.rmtree(reports, ignore_errors=True)
    if len(runs) < 2:
        return {"case": case.name, **{mode: asdict(run) for mode, run in runs.items()}, "checks": []}
    single, cluster = runs["single"], runs["cluster"]
    checks = [
        _check(cluster.flow_mb / 1e3 <= FLOW_GB, f"flow process {cluster.flow_mb:,.0f} MB <= {FLOW_GB:g} GB"),
        _check(max(cluster.workers_mb, default=0) / 1e3 <= WORKER_GB,
               f"each worker <= {WORKER_GB:g} GB (peaks {', '.join(f'{w:,.0f}' for w in cluster.workers_mb)} MB)"),
        _check(cluster.wall_s <= TIME_FACTOR * single.wall_s,
               f"cluster {cluster.wall_s:.1f} s <= {TIME_FACTOR:g} x single {single.wall_s:.1f} s "
               f"({cluster.wall_s / single.wall_s:.2f} x)"),
        _check(single.exit_code == cluster.exit_code == 0, "both runs exit 0"),
    ]
    return {"case": case.name, "sites": case.sites, "subjects": case.subjects, "single": asdict(single),
            "cluster": asdict(cluster), "checks": checks}


def _run_all_configs(workdir: Path) -> Path:
    """8 studies of 5,000 subjects, each generated once under its own id and audited against a protocol with
    that id (SZ003's criteria), with its study file in one folder."""
    from generator import generate
    from storage import LocalStore
    from tests.support.protocols import write_protocol

    root = workdir / f"runall-{RUN_ALL_STUDIES}x{RUN_ALL_SUBJECTS}"
    configs = root / "studies"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        configs.mkdir(parents=True)
        for n in range(RUN_ALL_STUDIES):
            study = STUDY if n == 0 else f"SZ9{n:02d}"
            landing = root / "landing"
            generate(LocalStore(landing), study=study, sites=RUN_ALL_SITES, subjects=RUN_ALL_SUBJECTS, seed=SEED + n,
                     as_of=date.fromisoformat(AS_OF), formats="csv")
            protocol = "" if study == STUDY else f"protocol: {write_protocol(root / 'protocols', study)}\n"
            (configs / f"{study.lower()}.yaml").write_text(
                f"study: {study}\nlanding: {landing}\nreports: {root / 'reports'}\n{protocol}", encoding="utf-8")
        (root / ".complete").write_text("done")
    shutil.rmtree(root / "reports", ignore_errors=True)
    return configs


def run_all_case(workdir: Path) -> dict:
    configs = _run_all_configs(workdir)
    argv = [CLI, "run-all", "--config-dir", str(configs), "--as-of", AS_OF, "--runner", "dask", "--dask-workers", "2"]
    run = timed(argv, _env(workdir), workdir / "cluster-runall.log")
    checks = [
        _check(run.flow_mb / 1e3 <= FLOW_GB, f"parent process {run.flow_mb:,.0f} MB <= {FLOW_GB:g} GB"),
        _check(max(run.workers_mb, default=0) / 1e3 <= WORKER_GB,
               f"each worker <= {WORKER_GB:g} GB (peaks {', '.join(f'{w:,.0f}' for w in run.workers_mb)} MB)"),
        _check(run.exit_code == 0, "run-all exits 0 (every study published)"),
    ]
    return {"case": "runall", "studies": RUN_ALL_STUDIES, "subjects": RUN_ALL_SUBJECTS, "cluster": asdict(run),
            "checks": checks}


def _check(ok: bool, text: str) -> str:
    return f"{'ok' if ok else 'MISS'} {text}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="n40k,n100k,runall")
    parser.add_argument("--modes", default="single,cluster", help="single, cluster or both (study sizes only)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "screening-audit-bench")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    results = []
    for name in args.cases.split(","):
        result = (run_all_case(args.workdir) if name == "runall"
                  else size_case(SIZES[name], args.workdir, tuple(args.modes.split(","))))
        result["load_average_before"] = load
        results.append(result)
        print(json.dumps(result, indent=1), flush=True)
        load = os.getloadavg()[0]
    RESULTS.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0 if all(c.startswith("ok") for r in results for c in r["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
