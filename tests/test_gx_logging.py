"""Great Expectations logs nothing below WARNING into a night's log.

GE's `great_expectations.data_context.types.base` sets its own logger to INFO when it is imported, so
setting the `great_expectations` logger to WARNING let one `Created temporary directory ... for
ephemeral docs site` line through per suite (11 a night; found by a new-user trial). Checked in a fresh
interpreter (GE not imported yet, the root logger at INFO like Prefect's console), both when the
command line's warm-up imports GE first and when a suite does (a Dask worker).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import logging, sys
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.basicConfig(level=logging.INFO, handlers=[Keep()])
assert "great_expectations" not in sys.modules
if sys.argv[1] == "warmup":
    from expectations.warmup import import_great_expectations
    import_great_expectations()
import polars as pl
from expectations.gx_run import run_suite
frame = pl.DataFrame({"SOURCE": ["lb.csv:2", "lb.csv:3"], "LBORRES": ["1", "2"]})
for n in range(3):
    run_suite(f"s{n}", [], frame)
logging.getLogger("great_expectations.anything").warning("a warning still passes")
gx = [f"{r.levelname} {r.name} {r.getMessage()}" for r in records if r.name.startswith("great_expectations")]
print("\\n".join(gx))
"""


@pytest.mark.parametrize("first", ["warmup", "suite"])
def test_great_expectations_info_lines_do_not_reach_the_log(first: str) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, first], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines() == ["WARNING great_expectations.anything a warning still passes"]
