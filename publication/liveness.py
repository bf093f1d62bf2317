"""Who this process is, and whether a process recorded earlier on this host has certainly ended.

Why more than a pid: a lease records the process that holds it, and a rerun on the same host after a
crash must be able to say "that run is dead" at once instead of waiting for the lease to expire. A
pid alone can lie both ways:
- the kernel hands a freed pid to a new process, so `kill(pid, 0)` finds *a* process: the lease
  therefore records the process's start time too (field 22 of `/proc/<pid>/stat`); same pid with
  another start time is not the holder;
- two machines (or two containers) can share a host name while their pids mean different things: the
  lease records the kernel's boot id and the pid namespace, and a pid is only looked up when both are
  this process's own. Otherwise nothing is concluded and the lease expires by age (the safe side).
A zombie (ended, not yet reaped by its parent) has ended.

Where `/proc` is missing (not Linux), the host name and `kill(pid, 0)` are all there is: a reused pid
then looks alive, which again errs on the safe side.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as a lease records it."""

    host: str
    pid: int
    scope: str | None = None  # "<boot id>/<pid namespace>": where `pid` means this process
    start: str | None = None  # start time in clock ticks after boot (/proc/<pid>/stat field 22)

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}"


def _scope() -> str | None:
    try:
        boot = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(_PROC / "self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name, which may hold spaces and parentheses)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def _start(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def this_process() -> ProcessIdentity:
    pid = os.getpid()
    return ProcessIdentity(host=socket.gethostname(), pid=pid, scope=_scope(), start=_start(pid))


def has_ended(holder: ProcessIdentity) -> bool:
    """True only when `holder` is a process of this host (same boot, same pid namespace) that has
    certainly ended: no such pid, a zombie, or its pid now belongs to a process started later.

    False whenever it cannot be known from here (another host, another boot or container): such a
    lease expires by age instead.
    """
    if holder.host != socket.gethostname() or holder.pid <= 0:
        return False
    mine = _scope()
    if mine is None or holder.scope is None:
        return _gone_by_signal(holder.pid) if mine is None and holder.scope is None else False
    if holder.scope != mine:
        return False
    fields = _stat_fields(holder.pid)
    if fields is None:
        return True  # no such process in this namespace
    if fields[0] in ("Z", "X"):  # zombie or dead
        return True
    return holder.start is not None and len(fields) > 19 and fields[19] != holder.start


def _gone_by_signal(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, owned by another user
        return False
    return False
