"""Import Great Expectations in the background while a run does other work.

Importing it costs several seconds of CPU. A nightly run first starts Prefect's API and ingests
every site, which wait mostly on I/O; importing GE on a side thread meanwhile takes that cost off
the critical path. The first suite to run simply waits on Python's import lock if it is not done.
"""

from __future__ import annotations

import importlib
import threading

_started = threading.Event()


def _import() -> None:
    try:
        importlib.import_module("great_expectations")
    except Exception:  # the suite that needs it will raise the real error in its own task
        return


def start_background_import() -> None:
    """Start importing great_expectations on a daemon thread (once per process)."""
    if _started.is_set():
        return
    _started.set()
    threading.Thread(target=_import, name="import-great-expectations", daemon=True).start()
