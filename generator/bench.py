"""Speed of `generate()` at scale: `python -m generator.bench --sites 1000 --subjects 100000`.

Writes to a temporary local folder (or `--out`), prints wall-clock and CPU seconds, files, rows
and bytes, and removes the temporary folder. Timings belong here, never in tests.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from generator import generate
from storage import LocalStore


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--formats", default="csv", help="csv (default), mixed, or a format profile name")
    parser.add_argument("--no-history", action="store_true", help="only the newest delivery per site")
    parser.add_argument("--no-problems", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the output here (default: temporary)")
    args = parser.parse_args(argv)

    root = args.out or Path(tempfile.mkdtemp(prefix="generator-bench-"))
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        summary = generate(LocalStore(root), sites=args.sites, subjects=args.subjects, seed=args.seed,
                           as_of=date(2026, 11, 28), formats=args.formats, history=not args.no_history,
                           plant_problems=not args.no_problems)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(f"sites={summary.sites} subjects={summary.subjects} formats={args.formats} "
              f"history={not args.no_history}")
        print(f"objects={len(summary.keys)} data_files={summary.files} rows(newest)={sum(summary.rows.values())} "
              f"bytes={size / 1e6:.0f} MB")
        print(f"wall={wall:.1f}s cpu={cpu:.1f}s")
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
