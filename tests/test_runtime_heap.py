"""runtime/heap.py: a process imports with cyclic collection paused, then freezes what its imports made,
so that full collections (two per audit partition) no longer walk ~390,000 import-time objects."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from runtime.heap import imports_without_collection

with imports_without_collection():
    during = gc.isenabled()
    import decimal, email.parser, json  # noqa: F401
frozen = gc.get_freeze_count()
junk = [[i] for i in range(1000)]
with imports_without_collection():  # once per process: nothing made since is frozen
    pass
again = gc.get_freeze_count()
gc.unfreeze()
try:
    with imports_without_collection():
        raise KeyError("an import failed")
except KeyError:
    pass
print(during, frozen > 1000, again == frozen, gc.isenabled())
"""


def _run(code: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return result.stdout.split()


def test_imports_run_without_collection_and_what_they_made_is_frozen_once() -> None:
    assert _run(PROBE) == ["False", "True", "True", "True"]


def test_a_dask_worker_freezes_what_its_preload_imported() -> None:
    probe = ("import gc; from flows.worker_preload import preload; preload(); "
             "print(gc.get_freeze_count() > 100_000, gc.isenabled())")
    assert _run(probe) == ["True", "True"]
