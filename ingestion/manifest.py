"""`manifest.json`: parse it strictly and check it names this study, site and delivery (DTS section 1).

The manifest is the site's statement of what it delivered. Anything in it that cannot be trusted
(not JSON, unknown keys, a file name with a path, an unknown encoding, another study) rejects the
whole delivery: reading it anyway could mean auditing data the site never meant to send.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass

from ingestion.codes import Code
from ingestion.errors import ManifestProblem

MANIFEST_NAME = "manifest.json"

_TOP_KEYS = {"study", "site", "delivery", "files"}
_FILE_REQUIRED = {"name", "sha256", "rows"}
_FILE_KEYS = _FILE_REQUIRED | {"encoding", "decimal"}
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_PLAIN_NAME = re.compile(r"^[^/\\\x00-\x1f\x7f:]{1,255}$")  # no path, no control characters

#: codec name (as `codecs.lookup` spells it) -> the Python codec used to read the file
ENCODINGS: dict[str, str] = {
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8",  # a UTF-8 BOM is tolerated in any case
    "iso8859-1": "latin-1",
    "cp1252": "cp1252",
    "utf-16": "utf-16",
    "utf-16-le": "utf-16-le",
    "utf-16-be": "utf-16-be",
}
DECIMALS = (".", ",")


@dataclass(frozen=True)
class ManifestFile:
    name: str
    sha256: str  # lower-case hex
    rows: int
    encoding: str = "utf-8"  # a key of ENCODINGS' values
    decimal: str = "."


@dataclass(frozen=True)
class Manifest:
    study: str
    site: str
    delivery: str
    files: tuple[ManifestFile, ...]

    def file(self, name: str) -> ManifestFile | None:
        return next((f for f in self.files if f.name == name), None)


def _invalid(detail: str, variable: str | None = None) -> ManifestProblem:
    return ManifestProblem(Code.MANIFEST_INVALID, f"manifest.json {detail}", variable=variable)


def _encoding(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{where}: encoding must be a string", "encoding")
    try:
        canonical = codecs.lookup(value).name
    except LookupError:
        canonical = ""
    if canonical not in ENCODINGS:
        raise _invalid(f"{where}: encoding {value!r} is not one of utf-8, latin-1, cp1252, utf-16", "encoding")
    return ENCODINGS[canonical]


def _file_entry(entry: object, index: int) -> ManifestFile:
    where = f"files[{index}]"
    if not isinstance(entry, dict):
        raise _invalid(f"{where} is not an object")
    unknown = sorted(set(entry) - _FILE_KEYS)
    if unknown:
        raise _invalid(f"{where} has unknown keys {unknown}", ",".join(unknown))
    missing = sorted(_FILE_REQUIRED - set(entry))
    if missing:
        raise _invalid(f"{where} lacks {missing}", ",".join(missing))
    name, sha, rows = entry["name"], entry["sha256"], entry["rows"]
    if not isinstance(name, str) or not _PLAIN_NAME.match(name) or name in (".", ".."):
        raise _invalid(f"{where}: name must be a plain file name in the delivery folder", "name")
    if name == MANIFEST_NAME:
        raise _invalid(f"{where}: the manifest cannot list itself", "name")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise _invalid(f"{where} ({name}): sha256 must be 64 hexadecimal digits", "sha256")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise _invalid(f"{where} ({name}): rows must be a whole number >= 0", "rows")
    decimal = entry.get("decimal", ".")
    if decimal not in DECIMALS:
        raise _invalid(f"{where} ({name}): decimal must be \".\" or \",\"", "decimal")
    encoding = _encoding(entry.get("encoding", "utf-8"), f"{where} ({name})")
    return ManifestFile(name=name, sha256=sha.lower(), rows=rows, encoding=encoding, decimal=decimal)


def parse_manifest(data: bytes, *, study: str, site: str, delivery: str) -> Manifest:
    """The manifest of delivery `study/site/delivery`, or `ManifestProblem` naming what is wrong."""
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestProblem(Code.MANIFEST_UNPARSEABLE,
                              f"manifest.json is not valid UTF-8 JSON ({error.__class__.__name__}"
                              f"{_position(error)})") from None
    if not isinstance(raw, dict):
        raise _invalid("is not a JSON object")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise _invalid(f"has unknown keys {unknown}", ",".join(unknown))
    missing = sorted(_TOP_KEYS - set(raw))
    if missing:
        raise _invalid(f"lacks {missing}", ",".join(missing))
    for key, expected in (("study", study), ("site", site), ("delivery", delivery)):
        if raw[key] != expected:
            shown = raw[key] if isinstance(raw[key], str) and len(raw[key]) <= 40 else "another value"
            raise ManifestProblem(Code.MANIFEST_MISMATCH,
                                  f"manifest.json names {key} {shown!r} but the delivery folder is "
                                  f"{study}/{site}/{delivery}", variable=key, observed=str(shown))
    if not isinstance(raw["files"], list):
        raise _invalid("files must be a list", "files")
    files = tuple(_file_entry(entry, i) for i, entry in enumerate(raw["files"]))
    names = [f.name for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _invalid(f"lists {duplicates} more than once", "name")
    return Manifest(study=study, site=site, delivery=delivery, files=files)


def _position(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f" at line {error.lineno}, column {error.colno}"
    return ""
