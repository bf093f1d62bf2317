"""A zip archive in memory, deflated by ISA-L: the package of every workbook the audit writes.

Why not `zipfile`: it deflates with zlib, which took a third of a night's publication on the dirty
benchmark (140 MB of sheet XML, docs/benchmarks.md). ISA-L (`isal`) writes the same standard deflate
streams about four times faster at a similar size; `zipfile` cannot take another compressor, so the
archive's headers are written here (the format's plain subset: no zip64, no encryption, no data
descriptors). Entries keep their order and a fixed timestamp, so the bytes depend only on the
entries (and ISA-L's version, as they did on zlib's).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from isal import isal_zlib

#: ISA-L's deflate level (0-3): 2 compresses sheet XML a little better than zlib's level 1, in a quarter of its time
LEVEL = 2
#: every entry's time: 1980-01-01 00:00:00 as an MS-DOS (time, date) pair, so the bytes do not depend on the clock
_DOS_TIME, _DOS_DATE = 0, (1 << 5) | 1
_MADE_BY = (3 << 8) | 20  # Unix, zip format 2.0 (as zipfile writes it)
_NEEDED = 20
_DEFLATED = 8
_FILE_MODE = 0o600 << 16  # owner read/write, as the workbook's parts were written before
_LIMIT = 0xFFFFFFFF  # beyond this an archive needs zip64, which a workbook never does here


def _deflated(data: bytes | memoryview) -> bytes:
    compressor = isal_zlib.compressobj(LEVEL, isal_zlib.DEFLATED, -15)  # raw deflate, as zip stores it
    return compressor.compress(data) + compressor.flush()


def zip_bytes(entries: Sequence[tuple[str, bytes | memoryview]]) -> bytes:
    """The zip archive of `entries` ((name, content), in that order), each deflated."""
    parts: list[bytes] = []
    directory: list[bytes] = []
    offset = 0
    for name, content in entries:
        encoded = name.encode("ascii")  # part names of a package are ASCII
        packed = _deflated(content)
        size, crc = len(content) if isinstance(content, bytes) else content.nbytes, isal_zlib.crc32(content)
        if max(size, len(packed), offset) > _LIMIT:
            raise ValueError(f"{name}: too large for a zip archive without zip64")
        fields = (_DEFLATED, _DOS_TIME, _DOS_DATE, crc, len(packed), size, len(encoded))
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, _NEEDED, 0, *fields, 0) + encoded
        directory.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, _MADE_BY, _NEEDED, 0, *fields, 0, 0, 0, 0,
                                     _FILE_MODE, offset) + encoded)
        parts += [header, packed]
        offset += len(header) + len(packed)
    central = b"".join(directory)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(directory), len(directory), len(central), offset, 0)
    return b"".join([*parts, central, end])
