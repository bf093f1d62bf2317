"""Keep Python's cyclic garbage collector off the objects a run's imports make.

Importing Prefect, polars, Great Expectations and the audit makes about 390,000 objects that live as
long as the process. Every full collection walks all of them: the two that an audit partition asks for
(flows.tasks.release_garbage, which frees what a standing Dask worker's night leaves in cycles) cost
0.44-0.47 s of a dirty run, and the collections that run while importing free next to nothing. So a
process imports with collection paused and then freezes what it holds (`gc.freeze`: a permanent
generation that collections skip). Measured on dirty (docs/benchmarks.md): the run's collection time
fell from 1.2-1.5 s to about 0.6 s, the audit partition's from 0.45 s to 0.03 s.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def imports_without_collection() -> Iterator[None]:
    """Pause cyclic collection while the body imports, then freeze every object made so far.

    Once per process: a process that already froze (a test session running several commands, a Dask
    worker) only runs the body, so nothing its earlier work left behind is ever frozen with the imports.
    Collection is restarted as it was, also when the body raises.
    """
    if gc.get_freeze_count():
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if enabled:
            gc.enable()
