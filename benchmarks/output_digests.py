"""Digests of everything a run publishes, to show that a refactoring changed no output byte.

    .venv/bin/python -m benchmarks.output_digests --case demo > before.json
    ... change the code ...
    .venv/bin/python -m benchmarks.output_digests --case demo > after.json && diff before.json after.json

Each case generates a fixed-seed study into a temporary folder, runs the `nightly_audit` flow twice
(two nights, so that the history columns are exercised too) and prints the sha256 of every published
file. report.html, report.xlsx and run_manifest.json carry the run's own timestamps; their digests are
taken after removing them (see `_normalised`), and the Data Docs (Great Expectations writes run ids
and times into every page) and the completion marker `_complete.json` (the sha256 of those same
time-stamped files) are listed by name only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

CASES = {
    "demo": {"sites": 8, "subjects": 400, "seed": 7, "formats": "mixed"},
    "small": {"sites": 4, "subjects": 120, "seed": 3, "formats": "mixed"},
    "s100": {"sites": 100, "subjects": 10_000, "seed": 5, "formats": "csv"},
    "dirty": {"sites": 20, "subjects": 2_000, "seed": 5, "formats": "csv", "profile": "dirty"},
}
AS_OF = date(2026, 11, 28)
_STAMPS = [
    re.compile(rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z| UTC)?"),
    re.compile(rb'"(run_id|flow_run_id|software_version|generated_at|started_at|finished_at)": "[^"]*"'),
]


def _normalised(name: str, data: bytes) -> bytes:
    if name.endswith(".xlsx"):
        import io
        import zipfile

        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = [archive.read(n) for n in sorted(archive.namelist()) if not n.startswith("docProps/")]
        data = b"\0".join(parts)
    if name.endswith((".html", ".json", ".xlsx")):
        for stamp in _STAMPS:
            data = stamp.sub(b"<stamp>", data)
    return data


def digests(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        if name.startswith("data_docs/"):
            out[name.split("/")[0] + "/*"] = "listed"
            continue
        if name == "_complete.json":
            out[name] = "listed"
            continue
        out[name] = hashlib.sha256(_normalised(name, path.read_bytes())).hexdigest()
    return out


def run_case(case: str, keep: Path | None = None) -> dict[str, dict[str, str]]:
    from prefect.testing.utilities import prefect_test_harness

    from flows.nightly import nightly_audit
    from generator import generate
    from storage import LocalStore

    spec = CASES[case]
    nights = [AS_OF - timedelta(days=1), AS_OF]
    result: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        root = Path(tmp)
        generate(LocalStore(root / "landing"), study="SZ003", sites=spec["sites"], subjects=spec["subjects"],
                 seed=spec["seed"], as_of=AS_OF, formats=spec["formats"], profile=spec.get("profile", "standard"))
        for night in nights:
            nightly_audit(landing=str(root / "landing"), reports=str(root / "reports"), study="SZ003",
                          as_of=night.isoformat())
            result[night.isoformat()] = digests(root / "reports" / "SZ003" / night.isoformat())
        if keep is not None:
            import shutil

            shutil.copytree(root / "reports", keep, dirs_exist_ok=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="demo")
    parser.add_argument("--keep", type=Path, help="copy the published reports into this folder, to diff them")
    args = parser.parse_args(argv)
    json.dump(run_case(args.case, args.keep), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
