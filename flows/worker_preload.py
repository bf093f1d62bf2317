"""What a Dask worker imports as it starts, in its main thread: `dask worker --preload flows.worker_preload`.

Why at start and not at the first task:
- A worker runs its tasks on side threads. Without this module, the first ingest task imports the
  readers (pyreadstat, the Excel reader), the first partition imports Great Expectations, and two
  side threads importing packages that share dependencies can deadlock on Python's per-module import
  locks (expectations/warmup.py: seen on a worker, and the night failed).
- A worker that runs as a service imports once when it starts, not in a night: about 4 CPU-seconds
  per worker process (Prefect's task engine, polars, GE, the readers and writers) that would
  otherwise land on the first night after each restart.

The imports are in `dask_setup`, which Dask calls in each worker process as it starts, on its event
loop (the process's main thread), before the worker joins the scheduler. Importing this module does
nothing else: `dask worker` also imports it in the process that hosts the nannies, to read its
options, and that process runs no task. Without the checkout in the Python the workers run, this
module is missing and `dask worker` exits with the `ModuleNotFoundError`. A dependency that fails to
import here is logged by Dask (`Failed to start preload: flows.worker_preload`, then the error) and
the worker runs on: Dask does not stop a worker over its preload; the tasks that need the module
fail with the same error, and the night with them.

The local cluster of `--runner dask` preloads it too (flows.runners.local_cluster).
"""

from __future__ import annotations

import importlib
from typing import Any

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
    """Import what the worker's tasks need, in this thread; GE first, with its INFO logging quieted; then
    freeze what the imports made, so that the partitions' full collections skip it (runtime/heap.py)."""
    from expectations.warmup import import_great_expectations
    from runtime.heap import imports_without_collection

    with imports_without_collection():
        import_great_expectations(strict=True)
        for name in WORKER_MODULES:
            importlib.import_module(name)


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: run in each worker process as it starts, before it takes a task."""
    preload()
