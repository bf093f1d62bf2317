"""The protocol file: criteria, components and rule trees as validated, frozen data.

A protocol file holds one version of one protocol (TIVERS and the date it took effect), its named
parameters (screening window, lookbacks...) and its criteria. Each component has a rule tree whose
leaves are generic rule kinds (contracts.rule_kinds.RULE_KINDS) and whose inner nodes are `all`, `any` and
`not` (three-valued logic). Every key is checked at load time: an unknown key, kind, parameter
reference or comparison is an error, so that a typo never silently weakens a criterion.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from contracts.enums import Category
from contracts.rule_kinds import RULE_KINDS, leaf_inputs


class ProtocolError(ValueError):
    """The protocol file is malformed."""


@dataclass(frozen=True)
class Rule:
    """A node of a rule tree: `all` / `any` / `not` with children, or a leaf of a rule kind."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    children: tuple[Rule, ...] = ()

    def leaves(self) -> list[Rule]:
        if self.kind in _LOGIC:
            return [leaf for child in self.children for leaf in child.leaves()]
        return [self]


@dataclass(frozen=True)
class Component:
    id: str
    text: str
    rule: Rule
    applies_when: Rule | None = None  # inclusion: MET when False; exclusion: NOT_APPLICABLE when False


@dataclass(frozen=True)
class Criterion:
    id: str
    category: Category
    text: str
    kind: str  # C / P / A as in the criteria specification
    components: tuple[Component, ...]


@dataclass(frozen=True)
class ProtocolVersion:
    tivers: str
    effective: dt.date


@dataclass(frozen=True)
class Protocol:
    id: str
    title: str
    version: ProtocolVersion  # the version whose criteria this file holds
    versions: tuple[ProtocolVersion, ...]  # every known version (files with the same id beside it)
    parameters: dict[str, int | float]
    criteria: tuple[Criterion, ...]
    path: str = ""
    #: which of several measurements of one test on the day a criterion uses counts (repeated measurements
    #: told apart by time point or position): `latest` (the default) or `mean` (of the replicates)
    same_day_measurements: str = "latest"

    @property
    def tivers(self) -> str:
        return self.version.tivers

    def components(self) -> list[tuple[Criterion, Component]]:
        return [(criterion, component) for criterion in self.criteria for component in criterion.components]

    def needed_tests(self) -> dict[str, set[str]]:
        """Lower-case domain -> test codes (MH: terms) the criteria read, for completeness checks."""
        needed: dict[str, set[str]] = {}
        for test in self.readers():
            domain, code = test.split(".", 1)
            needed.setdefault(domain.lower(), set()).add(code)
        return needed

    def readers(self) -> dict[str, tuple[str, ...]]:
        """"DOMAIN.CODE" (upper case) -> the components whose rules read it (IN09.DNA, EX05.HBV), sorted."""
        users: dict[str, set[str]] = {}
        for _, component in self.components():
            trees = [component.rule, *([component.applies_when] if component.applies_when else [])]
            for leaf in (leaf for tree in trees for leaf in tree.leaves()):
                for domain, codes in leaf_inputs(leaf.kind, leaf.params).items():
                    for code in codes:
                        users.setdefault(f"{domain.upper()}.{code.upper()}", set()).add(component.id)
        return {test: tuple(sorted(ids)) for test, ids in sorted(users.items())}


_LOGIC = {"all", "any", "not"}
_TOP_KEYS = {"id", "title", "version", "parameters", "criteria", "same_day_measurements"}
SAME_DAY_CHOICES = ("latest", "mean")
_VERSION_KEYS = {"tivers", "effective"}
_CRITERION_KEYS = {"id", "category", "text", "kind", "components"}
_COMPONENT_KEYS = {"id", "text", "rule", "applies_when"}
REQUIRED_PARAMETERS = ("screening_window_days",)


def _resolve(where: str, value: Any, parameters: dict[str, int | float]) -> Any:
    """Replace `$name` parameter references (also inside lists and mappings); unknown names are errors."""
    if isinstance(value, str) and value.startswith("$"):
        name = value[1:]
        if name not in parameters:
            raise ProtocolError(f"{where}: unknown parameter ${name}")
        return parameters[name]
    if isinstance(value, list):
        return [_resolve(where, item, parameters) for item in value]
    if isinstance(value, dict):
        return {key: _resolve(f"{where}.{key}", item, parameters) for key, item in value.items()}
    return value


def _rule(where: str, raw: Any, parameters: dict[str, int | float]) -> Rule:
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: a rule must be a mapping")
    logic = set(raw) & _LOGIC
    if logic:
        if len(raw) != 1:
            raise ProtocolError(f"{where}: `{next(iter(logic))}` must be the only key of its node")
        op = next(iter(logic))
        body = raw[op]
        items = [body] if op == "not" else body
        if op != "not" and (not isinstance(body, list) or not body):
            raise ProtocolError(f"{where}.{op}: needs a non-empty list")
        children = tuple(_rule(f"{where}.{op}[{i}]", item, parameters) for i, item in enumerate(items))
        return Rule(kind=op, children=children)
    kind = raw.get("kind")
    if kind not in RULE_KINDS:
        raise ProtocolError(f"{where}: unknown rule kind {kind!r} (known: {sorted(RULE_KINDS)})")
    params = _resolve(where, {k: v for k, v in raw.items() if k != "kind"}, parameters)
    try:
        params = RULE_KINDS[kind].validate(params)
    except ValueError as error:
        raise ProtocolError(f"{where} ({kind}): {error}") from error
    return Rule(kind=kind, params=params)


def _component(where: str, raw: Any, parameters: dict[str, int | float]) -> Component:
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: a component must be a mapping")
    unknown = set(raw) - _COMPONENT_KEYS
    if unknown or "id" not in raw or "rule" not in raw:
        raise ProtocolError(f"{where}: unknown keys {sorted(unknown)} or missing id/rule")
    when = raw.get("applies_when")
    return Component(
        id=str(raw["id"]),
        text=str(raw.get("text", "")),
        rule=_rule(f"{where}.rule", raw["rule"], parameters),
        applies_when=None if when is None else _rule(f"{where}.applies_when", when, parameters),
    )


def _criterion(where: str, raw: Any, parameters: dict[str, int | float]) -> Criterion:
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: a criterion must be a mapping")
    unknown = set(raw) - _CRITERION_KEYS
    if unknown:
        raise ProtocolError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        category = Category(str(raw.get("category", "")).upper())
    except ValueError as error:
        raise ProtocolError(f"{where}: category must be INCLUSION or EXCLUSION") from error
    ident = str(raw.get("id", ""))
    components = tuple(
        _component(f"{where}.components[{i}]", item, parameters) for i, item in enumerate(raw.get("components") or [])
    )
    if not ident or not components:
        raise ProtocolError(f"{where}: a criterion needs an id and at least one component")
    return Criterion(id=ident, category=category, text=str(raw.get("text", "")), kind=str(raw.get("kind", "C")),
                     components=components)


def _version(where: str, raw: Any) -> ProtocolVersion:
    if not isinstance(raw, dict) or set(raw) != _VERSION_KEYS:
        raise ProtocolError(f"{where}: version needs exactly `tivers` and `effective`")
    effective = raw["effective"]
    if isinstance(effective, str):
        effective = dt.date.fromisoformat(effective)
    if not isinstance(effective, dt.date):
        raise ProtocolError(f"{where}: effective must be an ISO date")
    return ProtocolVersion(tivers=str(raw["tivers"]), effective=effective)


def parse_protocol(raw: Any, path: str = "<memory>") -> Protocol:
    """Build a Protocol from a parsed YAML document (`versions` holds only this file's version)."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"{path}: the document must be a mapping")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ProtocolError(f"{path}: unknown keys {sorted(unknown)}")
    parameters = dict(raw.get("parameters") or {})
    for name, value in parameters.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"{path}: parameter {name} must be a number")
    missing = [name for name in REQUIRED_PARAMETERS if name not in parameters]
    if missing:
        raise ProtocolError(f"{path}: missing parameters {missing}")
    criteria = tuple(_criterion(f"{path}: criteria[{i}]", item, parameters)
                     for i, item in enumerate(raw.get("criteria") or []))
    component_ids = [component.id for criterion in criteria for component in criterion.components]
    criterion_ids = [criterion.id for criterion in criteria]
    duplicated = sorted({i for i in component_ids if component_ids.count(i) > 1}
                        | {i for i in criterion_ids if criterion_ids.count(i) > 1})
    if duplicated:
        raise ProtocolError(f"{path}: duplicated ids {duplicated}")
    version = _version(f"{path}: version", raw.get("version"))
    same_day = str(raw.get("same_day_measurements", "latest"))
    if same_day not in SAME_DAY_CHOICES:
        raise ProtocolError(f"{path}: same_day_measurements must be one of {list(SAME_DAY_CHOICES)}")
    return Protocol(id=str(raw.get("id", "")), title=str(raw.get("title", "")), version=version,
                    versions=(version,), parameters=parameters, criteria=criteria, path=path,
                    same_day_measurements=same_day)


def _sibling_versions(path: Path, protocol_id: str) -> tuple[ProtocolVersion, ...]:
    """Versions declared by the protocol files beside `path` that carry the same protocol id."""
    versions: dict[str, ProtocolVersion] = {}
    for other in sorted(path.parent.glob("*.yaml")):
        raw = yaml.safe_load(other.read_text(encoding="utf-8"))
        if isinstance(raw, dict) and str(raw.get("id")) == protocol_id and "version" in raw:
            version = _version(str(other), raw["version"])
            versions[version.tivers] = version
    return tuple(sorted(versions.values(), key=lambda v: v.effective))


def load_protocol(path: str | Path | None = None) -> Protocol:
    """Load a protocol file (None: the bundled contracts/protocols/sz003.yaml) and validate it fully."""
    if path is None:
        path = Path(str(resources.files("contracts").joinpath("protocols", "sz003.yaml")))
    path = Path(path)
    protocol = parse_protocol(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    versions = _sibling_versions(path, protocol.id) or (protocol.version,)
    return replace(protocol, versions=versions, path=str(path))


class ProtocolMismatch(ProtocolError):
    """A study paired with another study's protocol: its audit would be a wrong clinical result."""


def load_study_protocol(study: str, path: str | Path | None = None) -> Protocol:
    """The protocol a study is audited against, refused unless it is that study's protocol.

    Without a path the bundled protocol is loaded, and it belongs to one study only: a new study that
    forgot to name its protocol must stop, not run to a green report against someone else's criteria.
    """
    protocol = load_protocol(path)
    if protocol.id != study:
        if path is None:
            raise ProtocolMismatch(f"study {study} names no protocol file, and the bundled protocol is {protocol.id}'s "
                                   f"(TIVERS {protocol.tivers}): give study {study} its own protocol file")
        raise ProtocolMismatch(f"study {study} names the protocol of {protocol.id} ({path}, TIVERS {protocol.tivers}): "
                               f"a study is audited against its own protocol only")
    return protocol
