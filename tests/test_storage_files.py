"""storage.files: large local files are written through an in-memory file and copied by the kernel, and the
bytes are exactly what the pieces wrote, with or without an in-memory file."""

from __future__ import annotations

import errno
import io
import os
import sys
from pathlib import Path

import polars as pl
import pytest

from reporting import tables
from reporting.tables import CSV_OPTIONS, write_csv_file
from storage import LocalStore, files

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="in-memory files are Linux's")


def _frame(rows: int) -> pl.DataFrame:
    return pl.DataFrame({"USUBJID": [f"SZ003-101-{i:04d}" for i in range(rows)],
                         "VALUE": [f"{i * 0.5}" for i in range(rows)],
                         "NOTE": ["=HYPERLINK(x)" if i % 7 == 0 else "plain, with a comma" for i in range(rows)]})


@linux_only
def test_pieces_are_written_into_memory_then_appended_in_order(tmp_path: Path) -> None:
    given: list[object] = []

    def piece(text: bytes):
        def write(target: files.PieceTarget) -> None:
            given.append(target)
            with open(target, "wb") as handle:  # as polars does: opens the path it is given
                handle.write(text)
        return write

    out = files.write_in_pieces(tmp_path / "out.csv", [piece(b"a,b\n"), piece(b"1,2\n" * 100_000), piece(b"3,4\n")])
    assert out.read_bytes() == b"a,b\n" + b"1,2\n" * 100_000 + b"3,4\n"
    # each piece wrote into the in-memory file, never into the target itself
    assert all(isinstance(target, str) and target.startswith("/proc/self/fd/") for target in given)


def test_without_an_in_memory_file_the_pieces_append_to_the_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_memory_file", lambda: None)
    given: list[object] = []

    def piece(text: bytes):
        def write(target: files.PieceTarget) -> None:
            given.append(target)
            assert not isinstance(target, str)
            target.write(text)
        return write

    out = files.write_in_pieces(tmp_path / "out.bin", [piece(b"x" * 10), piece(b"y" * 5)])
    assert out.read_bytes() == b"x" * 10 + b"y" * 5
    assert len(given) == 2


@pytest.mark.parametrize("memory", [True, False], ids=["in-memory", "straight"])
def test_a_table_written_in_slices_is_the_whole_tables_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           memory: bool) -> None:
    if not memory:
        monkeypatch.setattr(files, "_memory_file", lambda: None)
    monkeypatch.setattr(tables, "CSV_SLICE_ROWS", 1_000)  # 3 slices and a part
    frame = _frame(3_500)
    whole = io.BytesIO()
    frame.with_columns(pl.when(pl.col("NOTE").str.starts_with("=")).then("'" + pl.col("NOTE"))
                       .otherwise(pl.col("NOTE")).alias("NOTE")).write_csv(whole, **CSV_OPTIONS)
    written = write_csv_file(frame, tmp_path / "t.csv").read_bytes()
    assert written == whole.getvalue()
    assert written.count(b"USUBJID") == 1  # one header
    assert b"'=HYPERLINK(x)" in written  # neutralised, slice by slice


def test_an_empty_table_is_its_header(tmp_path: Path) -> None:
    assert write_csv_file(_frame(0), tmp_path / "e.csv").read_bytes() == b"USUBJID,VALUE,NOTE\n"


@pytest.mark.parametrize("size", [10, files.SMALL_WRITE + 12_345], ids=["small", "large"])
def test_local_store_writes_the_bytes_whole(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    store = LocalStore(tmp_path)
    store.write_bytes("a/b.xlsx", data)
    assert (tmp_path / "a" / "b.xlsx").read_bytes() == data
    assert store.create_if_absent("a/c.json", data) is not None
    assert (tmp_path / "a" / "c.json").read_bytes() == data
    assert [p.name for p in (tmp_path / "a").iterdir() if p.name.startswith(".")] == []  # no leftover


@linux_only
def test_large_bytes_go_through_an_in_memory_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    real = files._memory_file

    def spy() -> int | None:
        fd = real()
        opened.append(fd)
        return fd

    monkeypatch.setattr(files, "_memory_file", spy)
    with (tmp_path / "f").open("wb") as handle:
        handle.write(b"head:")  # buffered, not yet in the file: it must come before the copy
        files.write_all(handle, b"z" * files.SMALL_WRITE)
        files.write_all(handle, b"small")
    assert (tmp_path / "f").read_bytes() == b"head:" + b"z" * files.SMALL_WRITE + b"small"
    assert len(opened) == 1 and opened[0] is not None  # the small write went straight in


def test_where_the_kernel_refuses_sendfile_the_bytes_are_copied(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A target opened for appending (sendfile answers EINVAL), or a filesystem that cannot receive it: the
    in-memory file's bytes are read and written instead (helper-47)."""
    data = os.urandom(files.SMALL_WRITE + 3 * files._READ + 7)
    with (tmp_path / "appended").open("ab") as handle:
        handle.write(b"before|")
        handle.flush()
        files.write_all(handle, data)
    assert (tmp_path / "appended").read_bytes() == b"before|" + data

    def refuse(*_args: object) -> int:
        raise OSError(errno.ENOSYS, "no sendfile here")

    monkeypatch.setattr(os, "sendfile", refuse)
    out = files.write_in_pieces(tmp_path / "copied", [lambda target: Path(target).write_bytes(data) if isinstance(
        target, str) else target.write(data)])
    assert out.read_bytes() == data


def test_a_failed_write_leaves_no_hidden_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("storage.store.write_all", full)
    with pytest.raises(OSError):
        LocalStore(tmp_path).write_bytes("a/b.xlsx", b"x" * 10)
    assert list((tmp_path / "a").iterdir()) == []


def test_an_in_memory_file_that_cannot_be_opened_by_its_path_is_not_used(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc missing, or a sandbox refusing to open the file again by its path: the pieces go straight into the
    file, as where there is no in-memory file at all."""
    real_open = os.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/self/fd/"):
            raise PermissionError(errno.EACCES, "refused", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_proc)
    assert files._memory_file() is None
    given: list[object] = []
    out = files.write_in_pieces(tmp_path / "out", [lambda target: (given.append(target), target.write(b"abc"))])
    assert out.read_bytes() == b"abc" and not isinstance(given[0], str)
