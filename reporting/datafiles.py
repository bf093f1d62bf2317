"""Load the reporting package's YAML data files (query wording, risk indicators, XPT labels).

Read through the one typed loader (contracts.datafile: safe YAML, errors naming the file and line);
the shapes of these wording files are still checked by their readers with `check_keys`, refusing
unknown keys (a typo must not silently do nothing).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from contracts.datafile import DataFileError as _FileError
from contracts.datafile import bundled_path, bundled_text, parse_document


class DataFileError(_FileError):
    """A reporting data file has an unknown or missing key."""

    def __init__(self, message: str) -> None:
        super().__init__(message.split(":", 1)[0], [message])


@cache
def load(name: str) -> dict[str, Any]:
    document = parse_document(bundled_text("reporting", f"data/{name}"), bundled_path("reporting", f"data/{name}"))
    if not isinstance(document.data, dict):
        raise DataFileError(f"{name}: expected a mapping at the top")
    return document.data


def check_keys(where: str, mapping: dict[str, Any], allowed: set[str], required: set[str] = frozenset()) -> None:
    unknown = set(mapping) - allowed
    if unknown:
        raise DataFileError(f"{where}: unknown keys {sorted(unknown)}")
    missing = set(required) - set(mapping)
    if missing:
        raise DataFileError(f"{where}: missing keys {sorted(missing)}")
