"""Write a delivery the way the DTS asks a site to: data files first, manifest.json last.

The reference for sites and EDC export jobs, and what the generator, the demo and the tests use
to lay deliveries in a landing area. Values are written as text as they are in the frame.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ingestion.manifest import MANIFEST_NAME
from storage import Store

FORMATS = ("csv", "xlsx", "parquet", "xpt")


@dataclass(frozen=True)
class DeliveryFile:
    name: str  # e.g. "lb.csv"
    data: bytes
    rows: int
    encoding: str = "utf-8"
    decimal: str = "."

    def entry(self) -> dict[str, object]:
        entry: dict[str, object] = {"name": self.name, "sha256": hashlib.sha256(self.data).hexdigest(),
                                    "rows": self.rows}
        if self.encoding != "utf-8":
            entry["encoding"] = self.encoding
        if self.decimal != ".":
            entry["decimal"] = self.decimal
        return entry


def encode_csv(frame: pl.DataFrame, *, encoding: str = "utf-8", separator: str = ",", bom: bool = False) -> bytes:
    text = frame.write_csv(separator=separator, null_value="")
    prefix = b"\xef\xbb\xbf" if bom and encoding == "utf-8" else b""
    return prefix + text.encode(encoding)


def encode_xlsx(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_excel(buffer, autofit=False)
    return buffer.getvalue()


def encode_parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def encode_xpt(frame: pl.DataFrame, table_name: str = "DATA") -> bytes:
    import pyreadstat

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.xpt"
        pyreadstat.write_xport(frame.to_pandas(), str(path), file_format_version=5,
                               table_name=table_name[:8].upper())
        return path.read_bytes()


def encode(frame: pl.DataFrame, fmt: str, *, encoding: str = "utf-8", separator: str = ",",
           bom: bool = False) -> bytes:
    """`frame` in one of the DTS formats (encoding / separator / BOM apply to CSV only)."""
    if fmt == "csv":
        return encode_csv(frame, encoding=encoding, separator=separator, bom=bom)
    if fmt == "xlsx":
        return encode_xlsx(frame)
    if fmt == "parquet":
        return encode_parquet(frame)
    if fmt == "xpt":
        return encode_xpt(frame)
    raise ValueError(f"unknown format {fmt!r}; one of {FORMATS}")


def manifest_bytes(study: str, site: str, delivery: str, files: list[DeliveryFile]) -> bytes:
    body = {"study": study, "site": site, "delivery": delivery, "files": [f.entry() for f in files]}
    return json.dumps(body, indent=2).encode("utf-8")


def write_delivery(store: Store, study: str, site: str, delivery: str, files: list[DeliveryFile], *,
                   manifest: bool = True) -> str:
    """Write `files` then (unless `manifest=False`) manifest.json; return the delivery's key prefix."""
    prefix = f"{study}/{site}/{delivery}"
    for f in files:
        store.write_bytes(f"{prefix}/{f.name}", f.data)
    if manifest:
        store.write_bytes(f"{prefix}/{MANIFEST_NAME}", manifest_bytes(study, site, delivery, files),
                          content_type="application/json")
    return prefix
