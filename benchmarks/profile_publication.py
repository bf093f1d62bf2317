"""Where publication spends its time on a real landing: `python -m benchmarks.profile_publication LANDING`.

Runs the stages in-process (ingest, validate, evaluate, compare, assemble: what the nightly flow does,
without Prefect) on a landing folder once, caches the run's outputs beside it, then renders and
writes every output into a temporary folder, printing the seconds of each output family and, with
`--profile`, cProfile's top functions. Use it on the `dirty` benchmark landing
(`screening-audit generate --profile dirty --sites 100 --subjects 10000 --formats csv`).
"""

from __future__ import annotations

import argparse
import cProfile
import pickle
import pstats
import tempfile
import time
from datetime import date
from pathlib import Path

from contracts.records import RunOutputs

AS_OF = date(2026, 11, 28)


def build_outputs(landing: Path, study: str = "SZ003", as_of: date = AS_OF) -> RunOutputs:
    """The run's outputs, computed by the stage functions the flow's tasks call."""
    from checks.comparison import compare
    from checks.evaluation import evaluate
    from contracts.protocol import load_protocol
    from expectations import finish_validation, validate_domain
    from flows.config import delivery_cutoff
    from ingestion import combine_sites, ingest_sites, list_sites
    from reporting import apply_history, assemble_outputs
    from storage import LocalStore

    store = LocalStore(landing)
    protocol = load_protocol()
    ingest = combine_sites(study, ingest_sites(store, study, list_sites(store, study),
                                               cutoff=delivery_cutoff(as_of, "UTC")))
    with tempfile.TemporaryDirectory() as tmp:
        parts = [validate_domain(d, ingest.domains, study=study, protocol=protocol)
                 for d in sorted(ingest.domains)]
        validation = finish_validation(parts, workdir=Path(tmp))
        validation.data_docs = None  # the Data Docs folder goes with the temporary folder
    eligibility = evaluate(ingest.domains, protocol, as_of, exclusions=validation.exclusions,
                           rejected=validation.rejected)
    comparison = compare(eligibility, ingest.domains, protocol, as_of, exclusions=validation.exclusions,
                         rejected=validation.rejected)
    with tempfile.TemporaryDirectory() as tmp:
        discrepancies = apply_history(comparison.discrepancies, LocalStore(tmp), study=study, as_of=as_of)
    return assemble_outputs(study=study, as_of=as_of, ingest=ingest, validation=validation,
                            eligibility=eligibility, comparison=comparison, discrepancies=discrepancies,
                            software_version="profile")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("landing", type=Path)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top 30 by cumulative time")
    parser.add_argument("--repeat", type=int, default=1,
                        help="publish this many times; print the least wall and CPU time (a shared machine's noise)")
    args = parser.parse_args(argv)

    cache = args.landing.parent / f"{args.landing.name}.outputs.pickle"
    if cache.is_file():
        outputs = pickle.loads(cache.read_bytes())  # noqa: S301 - our own cache, written below
    else:
        started = time.perf_counter()
        outputs = build_outputs(args.landing)
        cache.write_bytes(pickle.dumps(outputs))
        print(f"stages: {time.perf_counter() - started:.1f} s (cached in {cache})")
    print(f"eligibility {outputs.eligibility.height} rows, discrepancies {outputs.discrepancies.height}, "
          f"validation {outputs.validation.height}")

    from reporting.publish import publish
    from storage import LocalStore

    profiler = cProfile.Profile() if args.profile else None
    walls, cpus = [], []
    for _ in range(max(args.repeat, 1)):
        with tempfile.TemporaryDirectory() as tmp:
            started, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            keys = publish(outputs, LocalStore(tmp), "SZ003/2026-11-28")
            if profiler:
                profiler.disable()
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            print(f"publish: {walls[-1]:.2f} s, {cpus[-1]:.2f} CPU-s, {len(keys)} objects")
    if len(walls) > 1:
        print(f"least of {len(walls)}: {min(walls):.2f} s wall, {min(cpus):.2f} CPU-s")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
