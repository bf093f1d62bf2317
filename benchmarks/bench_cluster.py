"""Scale-out benchmark (issue 17): the audit on a 2-worker Dask cluster against the single process.

    .venv/bin/python -m benchmarks.bench_cluster                      # n40k, n100k, runall (long)
    .venv/bin/python -m benchmarks.bench_cluster --cases n40k

For each study size, cold `screening-audit run` processes on the same landing (local folders,
generated once and cached like `benchmarks.run`), one per mode:
- `single`: with threads (the single process), reporting to Prefect's temporary API server;
- `cluster`: `--runner dask --dask-workers 2`, a local cluster started by the run itself (its two
  worker processes start, and import what the tasks need, within the timed run);
- `standing`: `--runner dask --dask-address`, on a cluster started before the timed run as
  deploy/README.md "Several machines" sets one up (`dask scheduler`, `dask worker --nworkers 2
  --nthreads 1 --preload flows.worker_preload`, a `prefect server start` that the workers and the flow
  report to), and stopped after it: what a nightly run on a deployed cluster costs.
The memory of every process of the run's tree (and of the standing workers) is sampled every 50 ms
and attributed by role: the flow (the CLI process itself, which with a local cluster also hosts the
Dask scheduler and the nannies), each Dask worker process, Prefect's temporary API server.
`runall` audits 8 studies of 5,000 subjects with `run-all --runner dask` on one 2-worker cluster.
Targets (issue 17): flow <= 1 GB whatever the study size, each worker <= 2.5 GB, cluster time <=
1.2 x the single process (checked for each cluster mode measured); run-all parent <= 1 GB.
Results go to benchmarks/results_cluster.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
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
    workers_idle_mb: list[float] = field(default_factory=list)  # standing workers: RSS before the run
    workers_lost: int = 0  # standing workers that ended during the run (a nanny restarted one)


def shown(argv: list[str]) -> list[str]:
    """The command line as recorded in the results: the CLI by its name and each path by its last part,
    no path of the machine that ran it."""
    return [Path(arg).name if arg == CLI else (f".../{Path(arg).name}" if arg.startswith("/") else arg)
            for arg in argv]


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


def timed(argv: list[str], env: dict[str, str], log: Path, standing: tuple[int, ...] = ()) -> Run:
    """Run `argv` cold, sampling every process of its tree every 50 ms, and the `standing` worker
    processes (started before, not the run's children: their CPU counts from the run's start)."""
    import psutil

    run = Run(shown(argv))
    peaks: dict[int, tuple[str, int]] = {}
    cpu: dict[int, float] = {}
    cpu_before: dict[int, float] = {}
    workers = [psutil.Process(pid) for pid in standing]  # a worker that dies mid-run fails the run's checks
    for process in workers:
        times = process.cpu_times()
        cpu_before[process.pid] = times.user + times.system
        peaks[process.pid] = ("worker", process.memory_info().rss)
        run.workers_idle_mb.append(round(peaks[process.pid][1] / 1e6, 1))
    flow_samples: list[tuple[datetime, int]] = []
    worker_samples: list[tuple[datetime, int]] = []
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            total = 0
            tree: list = list(workers)
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(proc.pid)
                tree += [root, *root.children(recursive=True)]
            for p in tree:
                try:
                    rss = p.memory_info().rss
                    times = p.cpu_times()
                except psutil.Error:
                    if p in workers:
                        run.workers_lost += 1
                        workers.remove(p)
                    continue
                cpu[p.pid] = times.user + times.system - cpu_before.get(p.pid, 0.0)
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
    if standing:
        time.sleep(2)  # a standing server records the workers' last task runs from their events, a moment later
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


MODES = {"single": [], "cluster": ["--runner", "dask", "--dask-workers", "2"], "standing": ["--runner", "dask"]}
#: nights run on one standing cluster: its first after the workers start, and a next one on the same workers
NIGHTS = ("standing_first_night", "standing_next_night")
#: the standing cluster's worker processes, one thread each (deploy/README.md)
WORKERS = 2


@dataclass(frozen=True)
class StandingCluster:
    """A cluster set up as deploy/README.md sets one up, before the night: where it is and its workers."""

    address: str
    api_url: str
    prefect_home: Path
    worker_pids: tuple[int, ...]


def _wait(what: str, ready, processes, name: str, seconds: float = 120) -> None:
    """Until `ready()` holds; an error with the end of the process's log if it exits or takes too long."""
    process = processes.started[-1]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if ready():
                return
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}): {processes.log(name)[-2000:]}")
        time.sleep(0.5)
    raise RuntimeError(f"{what} not ready after {seconds:.0f} s: {processes.log(name)[-2000:]}")


@contextlib.contextmanager
def standing_cluster(workdir: Path) -> Iterator[StandingCluster]:
    """A Prefect server, a Dask scheduler and two single-threaded preloaded workers, started (untimed) and
    waited for; all stopped on exit (each in its session, as the cluster tests start theirs). Its own
    Prefect home: two servers must not share one database."""
    import httpx
    from distributed import Client

    from tests.support.dask_processes import Processes, unused_port

    home = workdir / "cluster-bench-standing"
    shutil.rmtree(home, ignore_errors=True)
    (home / "dask").mkdir(parents=True)
    bin_dir = Path(sys.executable).parent
    api_port, scheduler_port = unused_port(), unused_port()
    api_url, address = f"http://127.0.0.1:{api_port}/api", f"tcp://127.0.0.1:{scheduler_port}"
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect"), "PREFECT_API_URL": api_url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    processes = Processes()
    try:
        processes.start("prefect-server", [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1",
                                           "--port", str(api_port)], home, env=env)
        _wait("prefect server", lambda: httpx.get(f"{api_url}/health", timeout=2).status_code == 200,
              processes, "prefect-server")
        # no dashboard; its health routes on a port of their own, not 8787
        processes.start("scheduler", [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                      str(scheduler_port), "--no-dashboard", "--dashboard-address", "127.0.0.1:0"],
                        home, env=env)
        _wait("dask scheduler", lambda: socket.create_connection(("127.0.0.1", scheduler_port), 1).close() is None,
              processes, "scheduler")
        processes.start("workers", [str(bin_dir / "dask"), "worker", address, "--nworkers", str(WORKERS),
                                    "--nthreads", "1", "--no-dashboard", "--local-directory", str(home / "dask"),
                                    "--preload", "flows.worker_preload"], home, env=env)
        with Client(address, timeout="60s") as client:
            _wait("dask workers", lambda: len(client.nthreads()) >= WORKERS, processes, "workers", seconds=180)
            pids = tuple(client.run(os.getpid).values())  # each worker process says which it is
        if len(pids) != WORKERS:
            raise RuntimeError(f"expected {WORKERS} worker processes, the scheduler has {len(pids)}")
        yield StandingCluster(address, api_url, home / "prefect", pids)
    finally:
        processes.stop()  # the workers first, then the scheduler, then the server


def _mode_runs(mode: str, argv: list[str], workdir: Path, log: str) -> dict[str, Run]:
    """The mode's run; on a standing cluster two nights, the study audited again on the same workers
    (the second is what most nights of a cluster run as a service cost: its workers have run before)."""
    if mode != "standing":
        return {mode: timed(argv, _env(workdir), workdir / f"{log}-{mode}.log")}
    runs = {}
    with standing_cluster(workdir) as cluster:
        env = {**os.environ, "PREFECT_HOME": str(cluster.prefect_home), "PREFECT_API_URL": cluster.api_url,
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "COLUMNS": "120"}
        for night in NIGHTS:
            runs[night] = timed([*argv, "--dask-address", cluster.address], env, workdir / f"{log}-{night}.log",
                                standing=cluster.worker_pids)
            shutil.rmtree(argv[argv.index("--reports") + 1], ignore_errors=True)
    return runs


#: every cluster run is checked against the memory targets (issue 17); the time target is checked on a night of
#: a standing cluster whose workers have run before (the nights of a cluster run as a service), and reported for
#: the runs whose timed part includes starting the workers
CLUSTER_RUNS = {"cluster": "local cluster started by the run", "standing_first_night": "standing cluster, first night",
                "standing_next_night": "standing cluster, next night"}
TIME_CHECKED = ("standing_next_night",)


def size_case(case: Case, workdir: Path, modes: tuple[str, ...] = tuple(MODES)) -> dict:
    landing = landing_for(workdir, case)
    runs = {}
    for mode in modes:
        reports = workdir / f"reports-cluster-{case.name}-{mode}"
        shutil.rmtree(reports, ignore_errors=True)
        argv = [CLI, "run", "--landing", str(landing), "--reports", str(reports), "--as-of", AS_OF,
                "--study", STUDY, *MODES[mode]]
        runs.update(_mode_runs(mode, argv, workdir, f"cluster-{case.name}"))
        shutil.rmtree(reports, ignore_errors=True)
    single = runs.get("single")
    checks = [_check(single.exit_code == 0, "single: the run exits 0")] if single else []
    reported = []
    for mode, label in CLUSTER_RUNS.items():
        if mode not in runs:
            continue
        run = runs[mode]
        checks += [
            _check(run.exit_code == 0, f"{label}: the run exits 0"),
            _check(len(run.workers_mb) == WORKERS and not run.workers_lost,
                   f"{label}: {WORKERS} workers measured throughout ({len(run.workers_mb)}, {run.workers_lost} lost)"),
            _check(run.flow_mb / 1e3 <= FLOW_GB, f"{label}: flow process {run.flow_mb:,.0f} MB <= {FLOW_GB:g} GB"),
            _check(max(run.workers_mb, default=0) / 1e3 <= WORKER_GB,
                   f"{label}: each worker <= {WORKER_GB:g} GB "
                   f"(peaks {', '.join(f'{w:,.0f}' for w in run.workers_mb)} MB)"),
        ]
        if single:
            timing = (f"{label}: {run.wall_s:.1f} s against single {single.wall_s:.1f} s "
                      f"({run.wall_s / single.wall_s:.2f} x)")
            if mode in TIME_CHECKED:
                checks.append(_check(run.wall_s <= TIME_FACTOR * single.wall_s, f"{timing} <= {TIME_FACTOR:g} x"))
            else:
                reported.append(timing)
    return {"case": case.name, "sites": case.sites, "subjects": case.subjects,
            **{mode: asdict(run) for mode, run in runs.items()}, "checks": checks, "reported": reported}


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
        _check(len(run.workers_mb) == WORKERS, f"{WORKERS} workers measured ({len(run.workers_mb)})"),
    ]
    return {"case": "runall", "studies": RUN_ALL_STUDIES, "subjects": RUN_ALL_SUBJECTS, "cluster": asdict(run),
            "checks": checks}


def _check(ok: bool, text: str) -> str:
    return f"{'ok' if ok else 'MISS'} {text}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="n40k,n100k,runall")
    parser.add_argument("--modes", default="single,cluster,standing",
                        help="any of single, cluster, standing (study sizes only)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "screening-audit-bench")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    results = []
    for name in args.cases.split(","):
        started = datetime.now(UTC).isoformat(timespec="seconds")
        result = (run_all_case(args.workdir) if name == "runall"
                  else size_case(SIZES[name], args.workdir, tuple(args.modes.split(","))))
        result.update(started_utc=started, finished_utc=datetime.now(UTC).isoformat(timespec="seconds"),
                      load_average_before=load)
        results.append(result)
        print(json.dumps(result, indent=1), flush=True)
        load = os.getloadavg()[0]
    _record(results)
    return 0 if all(c.startswith("ok") for r in results for c in r["checks"]) else 1


def _record(results: list[dict]) -> None:
    """The latest result of each case in RESULTS: a run of some cases keeps the others' last results."""
    kept = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.is_file() else []
    ran = {result["case"] for result in results}
    RESULTS.write_text(json.dumps([r for r in kept if r.get("case") not in ran] + results, indent=1) + "\n",
                       encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
