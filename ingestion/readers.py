"""Which reader reads which file: the delivered file name is `<domain>.<ext>` (DTS section 1)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from contracts import DOMAINS
from ingestion.binary_readers import read_parquet, read_xpt
from ingestion.codes import Code
from ingestion.csv_reader import PlainCsv, read_csv, read_csv_or_plain
from ingestion.errors import FileRejected
from ingestion.excel_reader import read_xlsx
from ingestion.manifest import ManifestFile
from ingestion.table import RawTable

Reader = Callable[[Path, ManifestFile], RawTable]

#: file extension -> reader
READERS: dict[str, Reader] = {
    "csv": lambda path, entry: read_csv(path, entry.encoding),
    "xlsx": lambda path, entry: read_xlsx(path, entry.decimal, sheet=entry.name.rpartition(".")[0]),
    "parquet": lambda path, entry: read_parquet(path, entry.decimal),
    "xpt": lambda path, entry: read_xpt(path, entry.decimal, entry.encoding),
}


def domain_of(name: str) -> tuple[str, str]:
    """(lower-case domain, extension) of a delivered file name; FileRejected when it is neither."""
    stem, dot, ext = name.rpartition(".")
    if not dot or ext.lower() not in READERS:
        raise FileRejected(Code.FILE_UNKNOWN_FORMAT,
                           f"the file type is not one of {', '.join(READERS)} (DTS section 1)",
                           observed=ext.lower() if dot else "")
    if stem.lower() not in DOMAINS:
        raise FileRejected(Code.FILE_UNKNOWN_DOMAIN,
                           f"{stem!r} is not a domain of the DTS ({', '.join(DOMAINS)})",
                           observed=stem[:40])
    return stem.lower(), ext.lower()


def read_file(path: Path, entry: ManifestFile, *, plain_csv: bool = False) -> RawTable | PlainCsv:
    """The RawTable of one delivered file, by its extension.

    With `plain_csv`, a plain CSV file comes back unparsed (csv_reader.PlainCsv), to be parsed
    together with others by `csv_reader.parse_plain`.
    """
    _, ext = domain_of(entry.name)
    if path.stat().st_size == 0:
        raise FileRejected(Code.FILE_EMPTY, "the file is empty (0 bytes)")
    if plain_csv and ext == "csv":
        return read_csv_or_plain(path, entry.encoding)
    return READERS[ext](path, entry)
