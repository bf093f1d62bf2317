"""Writing a large local file so that the kernel takes it in small pieces.

Why: Linux (6.x) gives a buffered `write()` to ext4 page-cache folios as large as the write, and polars hands
its CSV writer's whole buffer (up to 9 MB) to one `write()`. On a virtual machine that returns freed memory to
its host (virtio-balloon free page reporting: Firecracker, Cloud Hypervisor, many cloud VMs), large folios come
from exactly the memory the host has taken back, and every one of its pages is faulted in again. Measured on
this project's 2-CPU VM, 200 MB written to ext4 in new files:

- in 8 MB `write()`s: 1.8 to 2.0 s of system time (0.05 s on the rare runs that found recently freed memory);
- in 64 KiB `write()`s: 0.06 s, every run;
- into a tmpfs or an in-memory file, either way: 0.1 s;
- with one `sendfile()` from an in-memory file: the kernel copies through a pipe-sized buffer, 64 KiB at a
  time, and 73 MB took 0.02 s.

A loop of small `write()`s in Python is no answer: each one releases and takes back the GIL, and with the
other rendering threads running, 1,000 pieces waited 5 s for it. So a file is written first into an
anonymous in-memory file (`memfd_create`; polars writes it by its `/proc/self/fd/` path), then copied into place
with one `sendfile()`. A table is written in slices (each slice's bytes then copied and the in-memory file
emptied), so that the memory it takes stays a slice's, not a night's eligibility table's (730 MB of CSV at
100,000 subjects). Where there is no in-memory file (not Linux, no /proc), the pieces are written straight
into the file, as before.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

#: what a piece writer is given: the path of the in-memory file (a polars writer opens it), or, where there is
#: none, the open target file itself (every piece then appends to it)
PieceTarget = str | IO[bytes]
#: bytes below this are written by `write_all` as they are: one small write costs less than a second file and a
#: copy (`write_in_pieces` takes every piece through memory: a polars writer needs a path, and a small file's copy
#: costs well under a millisecond)
SMALL_WRITE = 256 * 1024
#: what a copy reads at a time where the kernel refuses sendfile()
_READ = 1 << 20


def _memory_file() -> int | None:
    """A new anonymous in-memory file's descriptor (closed on exec), or None where there is none to open by path."""
    create = getattr(os, "memfd_create", None)
    if create is None:
        return None
    try:
        fd = create("screening-audit-output", os.MFD_CLOEXEC)
    except OSError:
        return None
    try:  # as polars will: /proc may be missing, or a sandbox may refuse to open the file again by its path
        os.close(os.open(_path_of(fd), os.O_WRONLY))
    except OSError:
        os.close(fd)
        return None
    return fd


def _path_of(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _send_all(source: int, target: int) -> None:
    """Append the whole of the file `source` to `target` (at its position) with sendfile(); where the kernel
    refuses it for this target (a file opened for appending, a filesystem that cannot receive it), by reads and
    writes."""
    size, sent = os.fstat(source).st_size, 0
    while sent < size:
        try:
            done = os.sendfile(target, source, sent, size - sent)
        except OSError as error:
            if sent or error.errno not in _NO_SENDFILE:
                raise
            _copy_by_reads(source, target, size)
            return
        if done == 0:
            raise OSError(f"sendfile stopped after {sent} of {size} bytes")
        sent += done


#: what sendfile() answers where it cannot write into the target
_NO_SENDFILE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


def _copy_by_reads(source: int, target: int, size: int) -> None:
    """Append the first `size` bytes of the file `source` to `target`, a megabyte at a time."""
    at = 0
    while at < size:
        block = memoryview(os.pread(source, min(_READ, size - at), at))
        if not block:
            raise OSError(f"{size - at} bytes of the in-memory file could not be read back")
        written = 0
        while written < len(block):
            written += os.write(target, block[written:])
        at += len(block)


def write_in_pieces(path: Path, pieces: Iterable[Callable[[PieceTarget], object]]) -> Path:
    """Write the file `path` (created or truncated) as the bytes each of `pieces` writes, one after the other.

    Each piece writes its bytes into an in-memory file, by its path (a polars `write_csv`, `write_parquet`, or
    anything that opens a path), which is then appended to `path` by the kernel and emptied for the next
    piece; where there is no in-memory file, each piece is given the open target file instead (see the
    module's docstring)."""
    with Path(path).open("wb") as target:
        memory = _memory_file()
        if memory is None:
            for piece in pieces:
                piece(target)
            return Path(path)
        try:
            for piece in pieces:
                os.ftruncate(memory, 0)
                piece(_path_of(memory))
                _send_all(memory, target.fileno())
        finally:
            os.close(memory)
    return Path(path)


def write_all(target: IO[bytes], data: bytes | memoryview) -> None:
    """Write `data` into the open file `target` (at its position), large data through an in-memory file (see the
    module's docstring)."""
    memory = _memory_file() if len(data) >= SMALL_WRITE else None
    if memory is None:
        target.write(data)
        return
    try:
        view, written = memoryview(data).cast("B"), 0
        while written < len(view):  # an in-memory file takes it in one write; a signal may cut it short
            written += os.write(memory, view[written:])
        target.flush()
        _send_all(memory, target.fileno())
    finally:
        os.close(memory)
