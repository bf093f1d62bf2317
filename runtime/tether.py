"""A child process that dies with the process that started it, whatever kills that one.

Why: a command-line audit starts Prefect's temporary API server as a subprocess and stops it at exit
(`atexit`). SIGKILL, the out-of-memory killer or a crash skip `atexit`, and the server used to run on
with nobody to stop it. The child therefore ties its own life to its parent's, first thing when it
starts:

- **Linux: the parent-death signal.** `prctl(PR_SET_PDEATHSIG, SIGKILL)` asks the kernel to send the
  child SIGKILL the moment its parent ends; it needs no code to run in either process when that
  happens, so it holds even when the parent is killed with SIGKILL. The race where the parent dies
  before the `prctl` call is closed by checking, right after it, that the parent is still the one
  that started us (`getppid()`).
- **Elsewhere: a watchdog thread** that polls `getppid()` every second and exits when the parent is
  gone (the child is then re-parented).

Chosen over a process group (killing the group needs a survivor to do it, and the audit's own
process group belongs to the shell or systemd that started it) and over a watchdog alone (a thread
cannot run while a C extension holds the GIL). Limit of PR_SET_PDEATHSIG: it fires when the parent
*thread* that started the child ends, so the child must be started from a thread that lives as long
as the process (the CLI starts it from the main thread).

Dask's worker processes need none of this: distributed's own `AsyncProcess` gives each worker a pipe
from its parent and exits the worker when the pipe closes, which happens when the parent dies
(tested with SIGKILL in tests/test_runtime_orphans.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0


def _watch_parent(parent_pid: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when `parent_pid` (the process that started it) ends."""
    if not _set_parent_death_signal(signal.SIGKILL):
        _watch_parent(parent_pid)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
