"""Re-running the same night gives byte-identical tables (docs/audit-outputs.md).

The same study is audited as of the same date three times: twice into one reports folder (an
operator re-running a night, which finds the first run's outputs already published) and once into
a fresh folder. Every table, in both formats, and every site's query file must be the same bytes
each time; only report.html / report.xlsx / run_manifest.json may carry the run's own timestamp.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from generator import generate
from storage import LocalStore

AS_OF = "2026-11-28"
TABLES = ("subjects", "eligibility", "discrepancies", "validation", "dv")


def _audit(landing: Path, reports: Path):
    from flows.nightly import nightly_audit

    return nightly_audit(landing=str(landing), reports=str(reports), study="SZ003", as_of=AS_OF)


def _tables(reports: Path) -> dict[str, bytes]:
    folder = reports / "SZ003" / AS_OF
    files = {f"{name}.{ext}": folder / f"{name}.{ext}" for name in TABLES for ext in ("csv", "parquet")}
    files.update({f"site_queries/{p.name}": p for p in sorted((folder / "site_queries").glob("*"))})
    return {name: path.read_bytes() for name, path in files.items()}


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> list[dict[str, bytes]]:
    root = tmp_path_factory.mktemp("rerun")
    generate(LocalStore(root / "landing"), study="SZ003", sites=3, subjects=40, seed=9,
             as_of=date.fromisoformat(AS_OF), formats="mixed")
    runs = []
    for reports in (root / "reports", root / "reports", root / "fresh-reports"):
        _audit(root / "landing", reports)
        runs.append(_tables(reports))
    return runs


def test_the_tables_are_not_trivially_empty(nights: list[dict[str, bytes]]) -> None:
    first = nights[0]
    assert len(first) >= 10 + 3  # five tables in two formats, and one query file per site
    assert first["discrepancies.csv"].count(b"\n") > 1 and first["validation.csv"].count(b"\n") > 1
    assert first["eligibility.csv"].count(b"\n") > 40


@pytest.mark.parametrize("run", [1, 2], ids=["rerun-over-published", "fresh-folder"])
def test_the_same_night_gives_byte_identical_tables(nights: list[dict[str, bytes]], run: int) -> None:
    first, again = nights[0], nights[run]
    assert sorted(again) == sorted(first)
    assert [name for name in first if again[name] != first[name]] == []
