"""One typed loader for every YAML file the audit reads: bundled defaults, or a file a study names.

Protocols, the unit catalog, the process checks, the discrepancy policy and the validation suites are
data. Each has a pydantic model (unknown keys forbidden, values typed); this module reads the YAML
safely, validates it with the model and, when it fails, says where: the file, the line and the key
(`sz003.yaml:97: criteria[9].components[1].rule.op: Input should be '>=', '>', '<=' or '<'`), so that a
protocol author finds a typo without reading Python. Line numbers come from PyYAML's node marks
(`compose`), matched to pydantic's error locations.

Parsers take text (or an already parsed mapping), never a path, so that a caller may read the bytes
from anywhere (a local file, object storage) first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)

Loc = tuple[str | int, ...]


class FileModel(BaseModel):
    """A part of a data file: frozen, unknown keys are errors (a typo must never silently do nothing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataFileError(ValueError):
    """A data file that cannot be used: every problem with its file, line and key."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class LocatedError(ValueError):
    """A problem found after the model validated (a cross-reference, a duplicate), at `loc` in the file."""

    def __init__(self, loc: Loc, message: str) -> None:
        self.loc = tuple(loc)
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Document:
    """A parsed YAML document and its node tree (for line numbers); `node` is None for a mapping built in
    memory (tests, callers that parsed the text themselves)."""

    data: Any
    node: yaml.Node | None
    source: str

    def where(self, loc: Iterable[str | int]) -> str:
        """`source:line: path` for a location (as deep as the file has it)."""
        line, path = locate(self.node, tuple(loc), self.data)
        prefix = f"{self.source}:{line}" if line else self.source
        return f"{prefix}: {path}" if path else prefix


def parse_document(text: str, source: str, error: type[DataFileError] | None = None) -> Document:
    """Parse one YAML document safely (no Python objects), keeping its node tree for line numbers.

    `error`: the DataFileError subclass a caller's readers catch (ProtocolError, PolicyError...)."""
    error = error or DataFileError
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        reason = getattr(problem, "problem", None) or str(problem)
        raise error(source, [f"{where}: not valid YAML: {reason}"]) from None
    finally:
        loader.dispose()
    return Document(data=data, node=node, source=source)


def locate(node: yaml.Node | None, loc: Loc, data: Any = None) -> tuple[int | None, str]:
    """(1-based line, readable path) of the deepest part of `loc` the document has.

    Parts of `loc` that are not keys or indexes of the document (pydantic adds the tag of a union
    member, or the member type of a union) are skipped, so a location inside a rule reads as the file
    does. Without a node tree (a mapping built in memory) the path is found in `data` and has no line."""
    line = node.start_mark.line + 1 if node is not None else None
    path = ""
    for part in loc:
        if node is not None:
            found = _step_node(node, part)
            if found is None:
                continue
            node, line = found
        else:
            in_data = (isinstance(data, dict) and part in data) or (
                isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data))
            if not in_data:
                continue
            data = data[part]  # type: ignore[index]
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else str(part))
    return line, path


def _step_node(node: yaml.Node, part: str | int) -> tuple[yaml.Node, int] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value, key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part], node.value[part].start_mark.line + 1
    return None


def _message(error: dict[str, Any]) -> str:
    """pydantic's message, in the words of a file format: an extra input is an unknown key."""
    if error["type"] == "extra_forbidden":
        return f"unknown key {str(error['loc'][-1])!r} (a typo, or not part of this file's format)"
    if error["type"] == "missing":
        return f"missing key {str(error['loc'][-1])!r}"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _problems(document: Document, errors: list[dict[str, Any]]) -> list[str]:
    """One line per problem; a union's members failing at the same place are told once."""
    problems: list[str] = []
    seen: set[str] = set()
    for item in errors:
        where = document.where(item["loc"])
        if where not in seen:
            seen.add(where)
            problems.append(f"{where}: {_message(item)}")
    return problems


def validate(model: type[M], document: Document, *, context: dict[str, Any] | None = None,
             check: Callable[[M], None] | None = None, error: type[DataFileError] | None = None) -> M:
    """`document` validated by `model`; every error names the file, line and key (`error`, a
    DataFileError).

    `check` runs after the model validated and may raise LocatedError for what the model alone cannot
    see (references between parts of the file)."""
    error = error or DataFileError
    try:
        value = model.model_validate(document.data, context=context)
    except ValidationError as problems:
        raise error(document.source, _problems(document, problems.errors())) from None
    if check is not None:
        try:
            check(value)
        except LocatedError as problem:
            raise error(document.source, [f"{document.where(problem.loc)}: {problem.message}"]) from None
    return value


def parse_yaml(model: type[M], text: str, source: str, *, context: dict[str, Any] | None = None,
               check: Callable[[M], None] | None = None, error: type[DataFileError] | None = None) -> M:
    """Parse and validate the YAML text of one file."""
    return validate(model, parse_document(text, source, error), context=context, check=check, error=error)


def parse_mapping(model: type[M], data: Any, source: str = "<memory>", *, context: dict[str, Any] | None = None,
                  check: Callable[[M], None] | None = None, error: type[DataFileError] | None = None) -> M:
    """Validate an already parsed document (no line numbers: the errors name the key)."""
    return validate(model, Document(data=data, node=None, source=source), context=context, check=check,
                    error=error)


def read_text(path: str | Path, error: type[DataFileError] | None = None) -> str:
    """The text of a local data file; a missing or unreadable file is a DataFileError naming it."""
    error = error or DataFileError
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as problem:
        raise error(str(path), [f"{path}: cannot read: {problem.strerror or problem}"]) from None
    except UnicodeDecodeError:
        raise error(str(path), [f"{path}: not UTF-8 text"]) from None


def bundled_text(package: str, name: str) -> str:
    """The text of a data file shipped inside a package (`contracts`, `policy.yaml`)."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def bundled_path(package: str, name: str) -> str:
    """How a bundled file is named in messages: its path inside the installed package."""
    return str(resources.files(package).joinpath(name))


T = TypeVar("T")


def load_data_file(parse: Callable[[str, str], T], package: str, name: str, path: str | Path | None = None,
                   error: type[DataFileError] | None = None) -> T:
    """The one way a data file is loaded: `path` (a study's own file) or, when None, the file bundled in
    `package` (read once per process). `parse(text, source)` validates it (errors with file and line)."""
    if path is None:
        return _bundled(parse, package, name)
    return parse(read_text(path, error), str(path))


@cache
def _bundled(parse: Callable[[str, str], T], package: str, name: str) -> T:
    return parse(bundled_text(package, name), bundled_path(package, name))
