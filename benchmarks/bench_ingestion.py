"""Benchmark: ingestion of every site of a generated landing, in-process, without Prefect.

    .venv/bin/python -m benchmarks.bench_ingestion [--landing DIR ...] [--batch 0] [--repeat 1] [--profile N]

By default it times the landings `benchmarks.run` caches in /tmp/screening-audit-bench for the
s100 (100 sites) and s1000 (1,000 sites, the same ~1M rows) cases, generating a missing one first
(not timed). Both hold the same rows, so the difference between them is the per-site cost that
`make bench` showed dominating the s1000 run. It prints sites, files, rows, wall and CPU time and
the cost per site, then a checksum of what was ingested (rows kept, rows rejected, findings) so
that a speed-up that changes the result is visible at a glance.

`--batch N` ingests N sites per `ingest_sites` call (the flow's batches; 0 = all sites in one call),
`--profile N` prints the N most expensive functions of one cProfile'd pass (cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.run import FULL, landing_for
from ingestion import combine_sites, ingest_sites, list_sites
from storage import LocalStore

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def _batches(sites: list[str], size: int) -> list[list[str]]:
    size = size or len(sites) or 1
    return [sites[i:i + size] for i in range(0, len(sites), size)]


def ingest_all(landing: Path, batch: int) -> tuple[list, float, float]:
    """(SiteIngest of every site, wall seconds, CPU seconds) of one pass over the landing."""
    store = LocalStore(str(landing))
    began, began_cpu = time.perf_counter(), time.process_time()
    sites = list_sites(store, "SZ003")
    results = [r for chunk in _batches(sites, batch) for r in ingest_sites(store, "SZ003", chunk, now=NOW)]
    return results, time.perf_counter() - began, time.process_time() - began_cpu


def _summary(results: list) -> dict[str, int]:
    inputs = [i for r in results for i in r.inputs]
    return {
        "sites": len(results),
        "audited": sum(r.audited for r in results),
        "files": sum(1 for i in inputs if i.domain is not None),
        "rows_read": sum(i.rows_read for i in inputs),
        "rows_kept": sum(f.height for r in results for f in r.frames.values()),
        "rows_rejected": sum(i.rows_rejected for i in inputs),
        "findings": sum(r.findings.height for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, action="append",
                        help="a landing folder holding SZ003/ (default: the s100 and s1000 cases)")
    parser.add_argument("--batch", type=int, default=0, help="sites per ingest_sites call (0: all)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    args = parser.parse_args()
    workdir = Path(tempfile.gettempdir()) / "screening-audit-bench"
    landings = args.landing or [landing_for(workdir, case) for case in FULL if case.name in ("s100", "s1000")]
    for landing in landings:
        timings, cpu = [], []
        for _ in range(args.repeat):
            results, wall, used = ingest_all(landing, args.batch)
            timings.append(wall)
            cpu.append(used)
        best = min(range(len(timings)), key=timings.__getitem__)
        facts = _summary(results)
        began = time.perf_counter()
        combined = combine_sites("SZ003", results)
        combine_s = time.perf_counter() - began
        # CPU time is reported too: on a shared machine the wall time depends on the neighbours
        print(f"{landing.name}: {facts['sites']:,} sites, {facts['files']:,} files, {facts['rows_read']:,} rows: "
              f"{timings[best]:.2f} s wall, {cpu[best]:.2f} s CPU (best of {args.repeat}), "
              f"{1000 * timings[best] / max(facts['sites'], 1):.1f} ms wall / site; "
              f"combine_sites {combine_s:.2f} s")
        print(f"  {facts}, domains {sorted(combined.domains)}")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            ingest_all(landing, args.batch)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
