"""`manifest.json`: read it as sites write it, check it names this study, site and delivery (DTS section 1).

The manifest is the site's statement of what it delivered. What cannot be trusted rejects the whole
delivery: not JSON, an unknown key (a misspelt setting the audit would otherwise ignore), a missing
key, a file name with a path, a checksum or row count that is not one, another study, site or
delivery, or an encoding or decimal mark the audit cannot read a file with.

What is only a way of writing the same thing is taken as meant (the DTS allows both):

- `encoding` and `decimal` at the top level are the default of every file; a file's own entry
  overrides them.
- An `encoding` for a binary format (xlsx, parquet: their text is Unicode inside) means nothing and
  is ignored. When a file's own entry gives one that is not UTF-8, or a top-level one that no CSV or
  XPT file takes is not an encoding at all, the delivery is still used and a note says the setting
  was ignored (`ManifestNote`), so a site that believes its workbook is in cp1252 hears otherwise.

The document is validated by a pydantic model (`ManifestDocument`); `parse_manifest` turns its
errors into one readable sentence naming every problem.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from ingestion.codes import Code
from ingestion.errors import ManifestProblem

MANIFEST_NAME = "manifest.json"

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
DEFAULT_ENCODING, DEFAULT_DECIMAL = "utf-8", "."
#: formats whose text is Unicode inside the file: a declared encoding means nothing for them
BINARY_FORMATS = ("xlsx", "parquet")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntryDocument(_Strict):
    """One entry of `files`, as written (settings not yet merged with the top-level defaults)."""

    name: StrictStr
    sha256: StrictStr
    rows: Annotated[StrictInt, Field(ge=0)]
    encoding: StrictStr | None = None
    decimal: StrictStr | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not _PLAIN_NAME.match(name) or name in (".", ".."):
            raise ValueError("must be a plain file name in the delivery folder")
        if name == MANIFEST_NAME:
            raise ValueError("the manifest cannot list itself")
        return name

    @field_validator("sha256")
    @classmethod
    def _hex(cls, sha: str) -> str:
        if not _SHA256.match(sha):
            raise ValueError("must be 64 hexadecimal digits")
        return sha.lower()


class ManifestDocument(_Strict):
    """manifest.json as a site writes it (DTS section 1)."""

    study: StrictStr
    site: StrictStr
    delivery: StrictStr
    files: list[FileEntryDocument]
    encoding: StrictStr | None = None  # default of every file
    decimal: StrictStr | None = None  # default of every file


@dataclass(frozen=True)
class ManifestFile:
    """One listed file with the settings that apply to it (its own, else the manifest's defaults)."""

    name: str
    sha256: str  # lower-case hex
    rows: int
    encoding: str = DEFAULT_ENCODING  # a value of ENCODINGS (UTF-8 for a binary format)
    decimal: str = DEFAULT_DECIMAL


@dataclass(frozen=True)
class ManifestNote:
    """A setting the manifest gives that was ignored: reported, never a rejection."""

    name: str | None  # the file it was given for, None for a top-level setting
    variable: str  # the manifest key (`encoding`)
    observed: str
    detail: str  # completes "manifest.json ..."


@dataclass(frozen=True)
class Manifest:
    study: str
    site: str
    delivery: str
    files: tuple[ManifestFile, ...]
    notes: tuple[ManifestNote, ...] = ()

    def file(self, name: str) -> ManifestFile | None:
        return next((f for f in self.files if f.name == name), None)


def _invalid(detail: str, variable: str | None = None) -> ManifestProblem:
    return ManifestProblem(Code.MANIFEST_INVALID, f"manifest.json {detail}", variable=variable)


def known_encoding(value: str) -> str | None:
    """The codec the audit reads a declared encoding with, or None when it is not one it knows."""
    try:
        canonical = codecs.lookup(value).name
    except LookupError:
        return None
    return ENCODINGS.get(canonical)


def _extension(name: str) -> str:
    return name.rpartition(".")[2].lower() if "." in name else ""


def _shown(value: str) -> str:
    return value if len(value) <= 40 else value[:37] + "..."


def _settings(doc: ManifestDocument) -> tuple[tuple[ManifestFile, ...], tuple[ManifestNote, ...]]:
    """Each file's effective encoding and decimal mark, checked where they apply; notes for ignored ones."""
    files: list[ManifestFile] = []
    notes: list[ManifestNote] = []
    problems: list[tuple[str, str]] = []
    top_used = False
    for index, entry in enumerate(doc.files):
        where = f"files[{index}] ({entry.name})"
        decimal = entry.decimal if entry.decimal is not None else doc.decimal or DEFAULT_DECIMAL
        if decimal not in DECIMALS and entry.decimal is not None:
            problems.append((f"{where}: decimal must be \".\" or \",\"", "decimal"))
        encoding = DEFAULT_ENCODING
        if _extension(entry.name) in BINARY_FORMATS:
            if entry.encoding is not None and known_encoding(entry.encoding) != "utf-8":
                notes.append(ManifestNote(
                    entry.name, "encoding", _shown(entry.encoding),
                    f"gives encoding {_shown(entry.encoding)!r} for {entry.name}, a binary format whose text is "
                    f"Unicode inside the file: the setting means nothing and is ignored (nothing was rejected)"))
        else:
            declared = entry.encoding if entry.encoding is not None else doc.encoding
            top_used = top_used or (entry.encoding is None and doc.encoding is not None)
            codec = known_encoding(declared) if declared is not None else DEFAULT_ENCODING
            if codec is None:  # each detail completes "manifest.json ..." (ManifestProblem's message)
                known = "utf-8, latin-1, cp1252, utf-16"
                problems.append((f"{where}: encoding {_shown(str(declared))!r} is not one of {known}"
                                 if entry.encoding is not None else
                                 f"top-level encoding {_shown(str(declared))!r} (the default of every file) is "
                                 f"not one of {known}", "encoding"))
            encoding = codec or DEFAULT_ENCODING
        files.append(ManifestFile(name=entry.name, sha256=entry.sha256, rows=entry.rows, encoding=encoding,
                                  decimal=decimal))
    if doc.decimal is not None and doc.decimal not in DECIMALS:  # a decimal mark applies to every format
        problems.append((f"top-level decimal {_shown(str(doc.decimal))!r} (the default of every file) is not \".\" "
                         "or \",\"", "decimal"))
    if doc.encoding is not None and not top_used and known_encoding(doc.encoding) is None:
        notes.append(ManifestNote(
            None, "encoding", _shown(doc.encoding),
            f"gives encoding {_shown(doc.encoding)!r} at the top level, which is no encoding the audit knows; "
            f"no CSV or XPT file takes it, so it is ignored (nothing was rejected)"))
    problems = list(dict.fromkeys(problems))
    if problems:
        raise _invalid("; ".join(detail for detail, _ in problems),
                       ",".join(dict.fromkeys(variable for _, variable in problems)))
    return tuple(files), tuple(notes)


_MESSAGES = {
    "missing": "is missing",
    "int_type": "must be a whole number >= 0",
    "greater_than_equal": "must be a whole number >= 0",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "model_type": "is not an object",
}


def _describe(errors: list[dict[str, Any]], raw: dict) -> ManifestProblem:
    """One sentence naming every problem pydantic found, and the keys involved as VARIABLE."""
    unknown: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    other: list[tuple[str, str]] = []
    for error in errors:
        loc = [str(part) for part in error["loc"]]
        key = loc[-1] if loc else ""
        where = _where(loc[:-1], raw)
        if error["type"] == "extra_forbidden":
            unknown.setdefault(where, []).append(key)
        elif error["type"] == "missing":
            missing.setdefault(where, []).append(key)
        else:
            text = error["msg"].removeprefix("Value error, ") if error["type"] == "value_error" \
                else _MESSAGES.get(error["type"], error["msg"])
            if key.isdigit():  # an item of `files` that is not an object
                other.append((f"{_where(loc, raw)} {text}", ""))
            else:
                other.append((f"{where}{': ' if where else ''}{key} {text}", key))
    parts = [f"{where + ' ' if where else ''}has unknown keys {sorted(keys)}" for where, keys in unknown.items()]
    parts += [f"{where + ' ' if where else ''}lacks {sorted(keys)}" for where, keys in missing.items()]
    parts += [text for text, _ in other]
    variables = [k for keys in unknown.values() for k in sorted(keys)]
    variables += [k for keys in missing.values() for k in sorted(keys)]
    variables += [v for _, v in other if v]
    return _invalid("; ".join(parts), ",".join(dict.fromkeys(variables)) or None)


def _where(loc: list[str], raw: dict) -> str:
    """`files[2] (lb.csv)` for a location inside `files`, else the dotted path ('' at the top)."""
    if len(loc) >= 2 and loc[0] == "files" and loc[1].isdigit():
        index = int(loc[1])
        entries = raw.get("files")
        name = entries[index].get("name") if isinstance(entries, list) and index < len(entries) \
            and isinstance(entries[index], dict) else None
        label = f"files[{index}]" + (f" ({_shown(name)})" if isinstance(name, str) else "")
        return ".".join([label, *loc[2:]])
    return ".".join(loc)


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
    try:
        doc = ManifestDocument.model_validate(raw)
    except ValidationError as error:
        raise _describe(error.errors(), raw) from None
    for key, expected in (("study", study), ("site", site), ("delivery", delivery)):
        value = getattr(doc, key)
        if value != expected:
            shown = value if len(value) <= 40 else "another value"
            raise ManifestProblem(Code.MANIFEST_MISMATCH,
                                  f"manifest.json names {key} {shown!r} but the delivery folder is "
                                  f"{study}/{site}/{delivery}", variable=key, observed=str(shown))
    names = [f.name for f in doc.files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _invalid(f"lists {duplicates} more than once", "name")
    files, notes = _settings(doc)
    return Manifest(study=study, site=site, delivery=delivery, files=files, notes=notes)


def _position(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f" at line {error.lineno}, column {error.colno}"
    return ""
