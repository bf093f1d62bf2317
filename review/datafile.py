"""YAML read safely, with the line of every mapping key, so that an error names the file and the line.

A data manager who edits review/states.yaml gets `states.yaml line 31: unknown key 'txt' in
actions.CLOSE` rather than a stack trace. Only the safe loader is used (no Python objects from YAML).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

Path_ = tuple[str, ...]


class DataFileError(ValueError):
    """A data file that cannot be used as it is; the message names the file and, where known, the line."""


def _lines(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = (*path, str(key.value))
            out[here] = key.start_mark.line + 1
            _lines(value, here, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, str(i))] = item.start_mark.line + 1
            _lines(item, (*path, str(i)), out)


class YamlDocument:
    """The parsed data of one YAML file and the line of each of its keys."""

    def __init__(self, text: str, name: str) -> None:
        self.name = name
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data: Any = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise DataFileError(f"{name}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
        self.lines: dict[Path_, int] = {}
        if node is not None:
            _lines(node, (), self.lines)

    def error(self, path: Path_, message: str) -> DataFileError:
        """An error about the key at `path` (its line, or the nearest enclosing key's)."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return DataFileError(f"{self.name} line {line}: {message}")
        return DataFileError(f"{self.name}: {message}")

    def mapping(self, value: Any, path: Path_, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
        """`value` as a mapping with only `allowed` keys and every `required` one, else an error."""
        where = ".".join(path) or "the top level"
        if not isinstance(value, dict):
            raise self.error(path, f"{where} must be a mapping")
        allowed = set(allowed)
        for key in value:
            if str(key) not in allowed:
                raise self.error((*path, str(key)),
                                 f"unknown key {key!r} in {where} (allowed: {', '.join(sorted(allowed))})")
        missing = [key for key in required if key not in value]
        if missing:
            raise self.error(path, f"{where} lacks {', '.join(missing)}")
        return value
