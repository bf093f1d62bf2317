"""The workbooks' zip package (ISA-L deflate, headers written by reporting.ziparchive)."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from reporting.ziparchive import zip_bytes


def test_every_entry_reads_back_exactly_in_order_with_a_fixed_stamp():
    entries = [("[Content_Types].xml", b"<Types/>"),
               ("xl/worksheets/sheet1.xml", os.urandom(1000) + b"<row/>" * 50_000),
               ("empty.xml", b""), ("view.xml", memoryview(b"abc" * 1000)[3:])]
    data = zip_bytes(entries)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None  # every entry's CRC-32 checks out
        assert archive.namelist() == [name for name, _ in entries]
        for name, content in entries:
            assert archive.read(name) == bytes(content)
        for info in archive.infolist():
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o600
    sheet = archive.getinfo("xl/worksheets/sheet1.xml")
    assert sheet.compress_size < sheet.file_size / 10  # repetitive XML is compressed


def test_same_entries_same_bytes():
    entries = [("a.xml", b"<a>" * 1000), ("b.xml", b"text")]
    assert zip_bytes(entries) == zip_bytes(list(entries))


def test_a_name_outside_ascii_is_refused():
    with pytest.raises(UnicodeEncodeError):
        zip_bytes([("blätter.xml", b"")])
