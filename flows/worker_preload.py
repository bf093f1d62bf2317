"""What a Dask worker imports as it starts, in its main thread: `dask worker --preload flows.worker_preload`.

Why at start and not at the first task:
- A worker runs its tasks on side threads. Without this module, the first ingest task imports the
  readers (pyreadstat, the Excel reader), the first partition imports Great Expectations, and two
  side threads importing packages that share dependencies can deadlock on Python's per-module import
  locks (expectations/warmup.py: seen on a worker, and the night failed). Here every import happens
  once, in the worker's main thread, before the worker takes a task.
- A worker that runs as a service imports once when it starts, not in a night: about 4 CPU-seconds
  per worker process (Prefect's task engine, polars, GE, the readers and writers) that would
  otherwise land on the first night after each restart.

The local cluster of `--runner dask` preloads it too (flows.runners.local_cluster). Nothing here runs
a task or reads a setting: it only imports.
"""

from __future__ import annotations

import importlib

from expectations.warmup import import_great_expectations

#: the modules the worker-side tasks (ingest-sites, audit-partition, render-outputs, audit-study) reach
WORKER_MODULES = (
    "prefect.task_engine",
    "flows.tasks",
    "flows.partition",
    "flows.multi",
    "ingestion",
    "ingestion.partition",
    "ingestion.excel_reader",
    "storage",
    "boto3",
    "checks.evaluation",
    "checks.comparison",
    "reporting",
    "reporting.parted",
    "pyreadstat",
    "xlsxwriter",
)


def preload() -> None:
    """Import what the worker's tasks need, in this (the main) thread; GE with its INFO logging quieted."""
    for name in WORKER_MODULES:
        importlib.import_module(name)
    import_great_expectations()


preload()
