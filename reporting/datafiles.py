"""Load the package's YAML data files, refusing unknown keys (a typo must not silently do nothing)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml


class DataFileError(ValueError):
    """A reporting data file has an unknown or missing key."""


@cache
def load(name: str) -> dict[str, Any]:
    text = resources.files("reporting").joinpath("data", name).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise DataFileError(f"{name}: expected a mapping at the top")
    return data


def check_keys(where: str, mapping: dict[str, Any], allowed: set[str], required: set[str] = frozenset()) -> None:
    unknown = set(mapping) - allowed
    if unknown:
        raise DataFileError(f"{where}: unknown keys {sorted(unknown)}")
    missing = set(required) - set(mapping)
    if missing:
        raise DataFileError(f"{where}: missing keys {sorted(missing)}")
