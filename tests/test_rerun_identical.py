"""Re-running the same night gives byte-identical tables (docs/audit-outputs.md).

The same study is audited as of the same date twice into one reports folder: an operator re-running
a night, whose second run finds the first run's outputs (and its history) already published. Every
table, in both formats, and every site's query file must be the same bytes; only report.html,
report.xlsx and run_manifest.json may carry the run's own timestamp. (That a separate process gives
the same bytes is reporting's own test.)
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from generator import generate
from storage import LocalStore

AS_OF = "2026-11-28"
TABLES = ("subjects", "eligibility", "discrepancies", "validation", "validation_resolved", "dv")


def _audit(landing: Path, reports: Path):
    from flows.nightly import nightly_audit

    return nightly_audit(landing=str(landing), reports=str(reports), study="SZ003", as_of=AS_OF)


def _tables(reports: Path) -> dict[str, bytes]:
    folder = reports / "SZ003" / AS_OF
    files = {f"{name}.{ext}": folder / f"{name}.{ext}" for name in TABLES for ext in ("csv", "parquet")}
    queries = folder / "site_queries"  # the queries of each site, and (detail/) every finding they list
    files.update({f"site_queries/{p.relative_to(queries).as_posix()}": p for p in sorted(queries.rglob("*"))
                  if p.is_file()})
    return {name: path.read_bytes() for name, path in files.items()}


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> list[dict[str, bytes]]:
    root = tmp_path_factory.mktemp("rerun")
    generate(LocalStore(root / "landing"), study="SZ003", sites=3, subjects=40, seed=9,
             as_of=date.fromisoformat(AS_OF), formats="mixed")
    runs, written = [], []
    for reports in (root / "reports", root / "reports"):
        _audit(root / "landing", reports)
        runs.append(_tables(reports))
        written.append((reports / "SZ003" / AS_OF / "subjects.csv").stat().st_mtime_ns)
    assert written[1] > written[0]  # the second run did publish again (an identical table is not a skipped one)
    return runs


def test_the_tables_are_not_trivially_empty(nights: list[dict[str, bytes]]) -> None:
    first = nights[0]
    assert len(first) >= 10 + 3  # five tables in two formats, and one query file per site
    assert first["discrepancies.csv"].count(b"\n") > 1 and first["validation.csv"].count(b"\n") > 1
    assert first["eligibility.csv"].count(b"\n") > 40


def test_rerunning_the_same_night_gives_byte_identical_tables(nights: list[dict[str, bytes]]) -> None:
    first, again = nights
    assert sorted(again) == sorted(first)
    assert [name for name in first if again[name] != first[name]] == []
