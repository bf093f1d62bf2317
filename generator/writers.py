"""Serialising one domain frame to the bytes a site would upload, and the delivery manifest.

Every output is deterministic for the same frame: XLSX core properties and the SAS transport
header timestamps are pinned to the delivery time instead of the wall clock.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from generator.config import FormatProfile

#: numeric XPT variables: SDTM keeps these numeric in SAS datasets (everything else is character)
XPT_NUMERIC = re.compile(r"^(AGE|[A-Z]{2}SEQ|[A-Z]{2}STRESN)$")
_XPT_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
_NUMBER = r"^[<>]?-?\d+\.\d+$"
CONTENT_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
    "xpt": "application/x-sas-xport",
    "json": "application/json",
}


@dataclass(frozen=True)
class Encoded:
    """One file as written: its bytes and what the manifest says about it."""

    name: str
    data: bytes
    rows: int
    encoding: str
    decimal: str = "."

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def manifest_entry(self) -> dict[str, object]:
        entry: dict[str, object] = {"name": self.name, "sha256": self.sha256, "rows": self.rows,
                                    "encoding": self.encoding}
        if self.decimal != ".":
            entry["decimal"] = self.decimal
        return entry


def with_decimal_comma(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Numbers in result columns written `9,5` (only text that is a decimal number is touched)."""
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(_NUMBER)).then(pl.col(c).str.replace(".", ",", literal=True))
        .otherwise(pl.col(c)).alias(c)
        for c in columns if c in frame.columns
    )


def _line_end(profile: FormatProfile) -> str:
    """Windows-configured sites (any encoding but plain UTF-8) end lines with CRLF."""
    return "\n" if profile.encoding == "utf-8" else "\r\n"


def _recode(utf8: bytes, profile: FormatProfile) -> tuple[bytes, str]:
    """UTF-8 CSV bytes in the site's encoding, and the encoding name the manifest declares."""
    if profile.encoding == "utf-8":
        return utf8, "utf-8"
    if profile.encoding == "utf-8-sig":
        return b"\xef\xbb\xbf" + utf8, "utf-8"
    return utf8.decode("utf-8").encode(profile.encoding), profile.encoding


def encode_csv(frame: pl.DataFrame, profile: FormatProfile) -> tuple[bytes, str]:
    text = frame.write_csv(separator=profile.separator, line_terminator=_line_end(profile))
    return _recode(text.encode("utf-8"), profile)


def encode_csv_sites(frame: pl.DataFrame, domain: str, positions: list[int], counts: np.ndarray,
                     profile: FormatProfile, numeric_columns: list[str]) -> dict[int, Encoded]:
    """The CSV files of several sites with one convention from one serialisation of their rows.

    `frame` holds the rows of the sites in `positions`, site after site; `counts[pos]` is the number
    of rows of site `pos`. The text is cut at line ends, which is exact because no generated value
    contains a line break (checked: otherwise every site is serialised on its own).
    """
    if profile.decimal == ",":
        frame = with_decimal_comma(frame, numeric_columns)
    line_end = _line_end(profile)
    header = frame.clear().write_csv(separator=profile.separator, line_terminator=line_end).encode("utf-8")
    body = frame.write_csv(separator=profile.separator, line_terminator=line_end, include_header=False)
    raw = body.encode("utf-8")
    ends = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 10) + 1
    out: dict[int, Encoded] = {}
    if ends.size != frame.height:  # a value with a line break: serialise site by site
        start = 0
        for pos in positions:
            part = frame.slice(start, int(counts[pos]))
            start += int(counts[pos])
            data, encoding = encode_csv(part, profile)
            out[pos] = Encoded(f"{domain}.csv", data, part.height, encoding, profile.decimal)
        return out
    line = 0
    begin = 0
    for pos in positions:
        n = int(counts[pos])
        finish = int(ends[line + n - 1]) if n else begin
        data, encoding = _recode(header + raw[begin:finish], profile)
        out[pos] = Encoded(f"{domain}.csv", data, n, encoding, profile.decimal)
        line, begin = line + n, finish
    return out


def encode_xlsx(frame: pl.DataFrame, sheet: str, stamp: datetime) -> bytes:
    """One sheet, header row, every cell a text cell (a formula-looking string stays a string)."""
    import xlsxwriter

    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {
        "in_memory": True, "strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False,
    })
    workbook.set_properties({"created": stamp.replace(tzinfo=None), "author": "site EDC export"})
    sheet_obj = workbook.add_worksheet(sheet)
    sheet_obj.write_row(0, 0, frame.columns)
    for col, name in enumerate(frame.columns):
        # with strings_to_* off, write_column writes every str as a text cell and skips None
        sheet_obj.write_column(1, col, frame.get_column(name).to_list())
    workbook.close()
    return buffer.getvalue()


def encode_parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=False)
    return buffer.getvalue()


def encode_xpt(frame: pl.DataFrame, dataset: str, label: str, stamp: datetime) -> bytes:
    """SAS v5 transport via pyreadstat; AGE, --SEQ and --STRESN numeric, every other variable character."""
    import pyreadstat

    frame = frame.with_columns(
        pl.col(c).cast(pl.Float64) if XPT_NUMERIC.match(c) else pl.col(c).fill_null("")
        for c in frame.columns
    )
    fd, path = tempfile.mkstemp(suffix=".xpt")
    os.close(fd)
    try:
        pyreadstat.write_xport(frame, path, file_label=label[:40], table_name=dataset, file_format_version=5)
        with open(path, "rb") as handle:
            data = handle.read()
    finally:
        os.unlink(path)
    # the header records carry "created / modified" stamps: pin them to the delivery time
    header_end = data.find(b"HEADER RECORD*******OBS")
    head = _XPT_STAMP.sub(stamp.strftime("%d%b%y:%H:%M:%S").upper().encode("ascii"), data[:header_end])
    return head + data[header_end:]


def encode(frame: pl.DataFrame, domain: str, fmt: str, profile: FormatProfile, numeric_columns: list[str],
           stamp: datetime) -> Encoded:
    """The file `<domain>.<fmt>` as the site's conventions write it."""
    rows = frame.height
    if fmt == "csv":
        if profile.decimal == ",":
            frame = with_decimal_comma(frame, numeric_columns)
        data, encoding = encode_csv(frame, profile)
        return Encoded(f"{domain}.csv", data, rows, encoding, profile.decimal)
    if fmt == "xlsx":
        return Encoded(f"{domain}.xlsx", encode_xlsx(frame, domain.upper(), stamp), rows, "utf-8")
    if fmt == "parquet":
        return Encoded(f"{domain}.parquet", encode_parquet(frame), rows, "utf-8")
    if fmt == "xpt":
        return Encoded(f"{domain}.xpt", encode_xpt(frame, domain.upper(), f"{domain.upper()} domain", stamp),
                       rows, "utf-8")
    raise ValueError(f"unknown format {fmt!r}")


#: formats whose text is Unicode inside the file: an encoding given for them means nothing (DTS section 1)
BINARY_FORMATS = ("xlsx", "parquet")


def manifest_bytes(study: str, site: str, delivery: str, entries: list[dict[str, object]],
                   defaults: dict[str, str] | None = None) -> bytes:
    """manifest.json; with `defaults` (`encoding`, `decimal`) written once at the top level as every file's
    default, each entry keeping only the settings that differ (none for a binary format's encoding)."""
    body: dict[str, object] = {"study": study, "site": site, "delivery": delivery}
    if defaults:
        body.update(defaults)
        entries = [{key: value for key, value in entry.items()
                    if not (key in defaults and value == defaults[key])
                    and not (key == "encoding" and str(entry["name"]).rsplit(".", 1)[-1] in BINARY_FORMATS)}
                   for entry in entries]
    body["files"] = entries
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def manifest_defaults(profile: FormatProfile) -> dict[str, str] | None:
    """The top-level settings of a site whose manifests carry them there (None: every file says its own)."""
    if profile.manifest != "top_level":
        return None
    defaults = {"encoding": "utf-8" if profile.encoding == "utf-8-sig" else profile.encoding}
    if profile.decimal != ".":
        defaults["decimal"] = profile.decimal
    return defaults
