"""Great Expectations is imported ahead of the run in the caller's thread, never on a side thread.

Two threads importing packages with shared dependencies can deadlock on Python's per-module import
locks (a Dask worker importing GE on a side thread while an ingest task imported pyreadstat raised
`_DeadlockError` and failed the night; expectations/warmup.py). Checked in a fresh interpreter, where
nothing is imported yet.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, threading
from expectations.warmup import import_great_expectations
assert "great_expectations" not in sys.modules
before = {t.ident for t in threading.enumerate()}
import_great_expectations()
# imported by the time it returns, and no thread of ours is still importing
assert "great_expectations" in sys.modules, "not imported on return"
importing = [t.name for t in threading.enumerate() if t.ident not in before and "import" in t.name.lower()]
assert not importing, importing
print("ok")
"""


def test_great_expectations_is_imported_in_the_callers_thread() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_no_task_of_the_audit_starts_an_import_thread() -> None:
    """The ingest task once started GE's import on a side thread on a worker: none of the flow's modules may."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sources = [p for package in ("flows", "ingestion", "expectations", "checks", "reporting", "runtime")
               for p in (root / package).rglob("*.py")]
    offenders = [str(p.relative_to(root)) for p in sources
                 if "threading.Thread(" in p.read_text(encoding="utf-8") and "import_module" in p.read_text(
                     encoding="utf-8")]
    assert offenders == []
