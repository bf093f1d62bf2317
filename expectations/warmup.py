"""Import Great Expectations while a command-line run waits for Prefect's API server, in the main thread.

Importing it costs about 2.5 CPU-seconds. A command-line run starts Prefect's temporary API server (a
subprocess, on the other CPU) first and then waits for it; importing GE just before that wait takes
the cost off the run's critical path (the time to the flow's start is the same as with GE imported
on a side thread: docs/benchmarks.md "Start-up of a cold run").

Never on a side thread: two threads importing packages that share dependencies can deadlock on
Python's per-module import locks. Seen on a Dask worker, where GE was imported on a side thread while
the next ingest task imported pyreadstat: both reach narwhals, Python raised `_DeadlockError` in the
ingest task, and the night failed.
"""

from __future__ import annotations

from expectations.gx_run import _gx


def import_great_expectations(strict: bool = False) -> None:
    """Import great_expectations now, in this thread (a no-op when it is already imported), its INFO
    logging silenced as the suites' own import does (expectations.gx_run.quiet_gx_loggers).

    Not `strict` (the command line's warm-up), an import error is left to the suite that needs GE, which
    raises it in its own task; `strict` (a Dask worker's preload), it is raised, so that the worker's
    log names it as it starts (flows/worker_preload.py)."""
    try:
        _gx()
    except Exception:
        if strict:
            raise
