"""What a large review ledger adds to a night: `python -m benchmarks.bench_review`.

The issue's target: a ledger of 200,000 actions over 100,000 findings adds at most 10 % to a run's time
on the benchmark data (the `s100` case of benchmarks/run.py: 100 sites, 10,000 subjects). Three cold
`screening-audit run` processes on the same landing, timed as benchmarks/run.py times them (wall, and
each stage from the run's own Prefect task records), with the polars floor measured in the same session:

1. `baseline`: an empty ledger;
2. `first night`: the ledger just written, without a checkpoint (every ledger object is read once);
3. `ledger`: the next night, from the checkpoint the first one saved (the steady state).

The ledger is synthetic but valid (chained, every transition allowed): each finding of the run plus
enough made-up ones to reach `--findings` get `--actions` entries between them (acknowledged, then
closed or commented, on the run's own evidence so that nothing is reopened). Entries are packed as
they arrive in practice: most in returned workbooks of `--workbook-rows` rows, `--single-share` of
them one per command (`--single-share 1` writes every entry as its own object: the worst case).

    .venv/bin/python -m benchmarks.bench_review                       # s100, 200,000 actions
    .venv/bin/python -m benchmarks.bench_review --quick               # 20 sites, 1,000 subjects, 20,000 actions
    .venv/bin/python -m benchmarks.bench_review --single-share 1      # every action its own object
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from benchmarks.run import AS_OF, CLI, STUDY, Case, landing_for, prefect_home, stage_spans, timed_child
from review.entries import chained
from review.ledger import object_body, object_key
from storage import LocalStore


def _findings(reports: Path, as_of: str) -> pl.DataFrame:
    """FINDING_ID and EVIDENCE_HASH of every finding the baseline run published."""
    folder = reports / STUDY / as_of
    tables = [pl.read_parquet(folder / f"{name}.parquet").select("FINDING_ID", "EVIDENCE_HASH")
              for name in ("discrepancies", "validation")]
    return pl.concat(tables).unique("FINDING_ID")


def seed_ledger(reports: Path, real: pl.DataFrame, findings: int, actions: int, workbook_rows: int,
                single_share: float) -> dict[str, int]:
    """Write a valid ledger of `actions` entries over `findings` findings; the objects written."""
    made_up = max(0, findings - real.height)
    ids = real["FINDING_ID"].to_list() + [f"D-{i:016x}" for i in range(made_up)]
    evidence = real["EVIDENCE_HASH"].to_list() + [f"{i:032x}" for i in range(made_up)]
    first = [{"FINDING_ID": f, "ACTION": "ACKNOWLEDGE", "FROM_STATE": "UNREVIEWED", "TO_STATE": "ACKNOWLEDGED",
              "BY": "reviewer", "TEXT": None, "EVIDENCE_HASH": h} for f, h in zip(ids, evidence, strict=True)]
    second = []
    for i, (f, h) in enumerate(zip(ids, evidence, strict=True)):
        if len(first) + len(second) >= actions:
            break
        closing = i % 2 == 0
        second.append({"FINDING_ID": f, "ACTION": "CLOSE" if closing else "COMMENT", "FROM_STATE": "ACKNOWLEDGED",
                       "TO_STATE": "CLOSED" if closing else "ACKNOWLEDGED", "BY": "reviewer",
                       "TEXT": None if closing else "asked the site", "EVIDENCE_HASH": h})
    rows = (first + second)[:actions]
    start = date.fromisoformat(AS_OF) - timedelta(days=400)
    for n, row in enumerate(rows):
        row.update(STUDYID=STUDY, AT=f"{(start + timedelta(days=n * 400 // len(rows))).isoformat()}T09:00:00Z",
                   VIA="benchmark")
    entries = chained(rows, 1, None)
    store = LocalStore(reports)
    singles = int(len(entries) * single_share)
    objects = 0
    position = 0
    while position < len(entries):
        size = 1 if position < singles else workbook_rows
        batch = entries[position:position + size]
        store.create_exclusive(object_key(STUDY, batch[0]["SEQ"]), object_body(STUDY, batch))
        objects += 1
        position += size
    return {"entries": len(entries), "objects": objects, "findings": len(ids)}


def _night(landing: Path, reports: Path, as_of: str, env: dict[str, str], log: Path, home: Path) -> dict:
    code, wall, _peak, _rss = timed_child([CLI, "run", "--landing", str(landing), "--reports", str(reports),
                                           "--as-of", as_of, "--study", STUDY], env, log)
    flow, spans = stage_spans(home / "prefect.db")
    stages = {name: (end - start).total_seconds() for name, (start, end) in spans.items()}
    manifest = json.loads((reports / STUDY / as_of / "run_manifest.json").read_text()) if code == 0 else {}
    return {"exit": code, "wall_s": wall, "flow_s": (flow[1] - flow[0]).total_seconds() if flow else 0.0,
            "review_s": stages.get("review", 0.0), "validation_history_s": stages.get("validation-history", 0.0),
            "publish_s": stages.get("publish", 0.0), "ledger": manifest.get("review", {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 sites, 1,000 subjects, a tenth of the ledger")
    parser.add_argument("--actions", type=int)
    parser.add_argument("--findings", type=int)
    parser.add_argument("--workbook-rows", type=int, default=250)
    parser.add_argument("--single-share", type=float, default=0.05)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "screening-audit-bench")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_review.json"))
    args = parser.parse_args(argv)
    case = Case("s100", 20, 1_000) if args.quick else Case("s100", 100, 10_000)
    actions = args.actions or (20_000 if args.quick else 200_000)
    findings = args.findings or actions // 2
    (args.workdir / "review-bench").mkdir(parents=True, exist_ok=True)
    landing = landing_for(args.workdir, case)
    # a Prefect home of its own: the stage times are read from the latest flow run in its database, which
    # another benchmark sharing the workdir's home could have written meanwhile
    home = prefect_home(args.workdir / "review-bench", fresh=False)
    env = {**os.environ, "PREFECT_HOME": str(home), "COLUMNS": "120"}
    reports = args.workdir / "reports-review"
    shutil.rmtree(reports, ignore_errors=True)
    nights = [(date.fromisoformat(AS_OF) + timedelta(days=i)).isoformat() for i in range(3)]

    print(f"{case.sites} sites, {case.subjects} subjects: baseline night (empty ledger) ...", flush=True)
    results = {"baseline": _night(landing, reports, nights[0], env, args.workdir / "review-0.log", home)}
    started = time.perf_counter()
    seeded = seed_ledger(reports, _findings(reports, nights[0]), findings, actions, args.workbook_rows,
                         args.single_share)
    print(f"ledger written: {seeded} ({time.perf_counter() - started:.0f} s)", flush=True)
    results["first night"] = _night(landing, reports, nights[1], env, args.workdir / "review-1.log", home)
    results["ledger"] = _night(landing, reports, nights[2], env, args.workdir / "review-2.log", home)

    out = args.workdir / "review-floor.json"
    timed_child([sys.executable, "-m", "benchmarks.run", "--floor", str(landing), "--floor-out", str(out)], env,
                args.workdir / "review-floor.log")
    floor = json.loads(out.read_text())["wall"]
    base = results["baseline"]["wall_s"]
    print(f"\npolars floor {floor:.2f} s; ledger {seeded['entries']:,} entries in {seeded['objects']:,} objects over "
          f"{seeded['findings']:,} findings")
    print(f"{'night':<13}{'wall s':>8}{'x floor':>9}{'flow s':>8}{'review s':>10}{'review/wall':>13}"
          f"{'wall vs baseline':>18}")
    for name, m in results.items():
        print(f"{name:<13}{m['wall_s']:>8.1f}{m['wall_s'] / floor:>9.0f}{m['flow_s']:>8.1f}{m['review_s']:>10.2f}"
              f"{m['review_s'] / m['wall_s']:>12.1%}{m['wall_s'] / base - 1:>+17.1%}")
        if m["exit"]:
            print(f"  FAILED with exit {m['exit']}")
    # the review stage against its own run: a shared machine's load changes both alike, whereas two runs
    # minutes apart can differ by a factor of two (docs/benchmarks.md)
    steady = results["ledger"]
    share = steady["review_s"] / steady["wall_s"]
    verdict = "ok" if share <= 0.10 else "MISS"
    print(f"{verdict}: with the ledger the review stage takes {steady['review_s']:.2f} s = {share:.1%} of its run's "
          f"{steady['wall_s']:.1f} s (target <= 10 %); {steady['review_s'] / base:.1%} of the baseline run's "
          f"{base:.1f} s")
    args.out.write_text(json.dumps({"case": case.__dict__, "seeded": seeded, "floor_s": floor, "nights": results,
                                    "single_share": args.single_share, "workbook_rows": args.workbook_rows,
                                    "load_avg": list(os.getloadavg())}, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0 if all(m["exit"] == 0 for m in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
