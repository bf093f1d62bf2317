"""The protocol: criteria, components and rule trees of every version, as validated, frozen data.

A protocol file holds one version of one protocol (TIVERS and the date it took effect), its named
parameters (screening window, lookbacks...) and its criteria. Each component has a rule tree whose
leaves are generic rule kinds (contracts.rule_kinds) and whose inner nodes are `all`, `any` and `not`
(three-valued logic). The files beside it with the same `id` are its other versions: a subject is
judged by the version in force at its consent (docs/criteria.md, "Versions").

The file's shape is a pydantic model (`ProtocolFile`, published as docs/schemas/protocol.schema.json);
every error names the file, the line and the key. What the engine reads is the frozen `Protocol` built
from it: parameter references resolved, defaults filled in, so that a typo never silently weakens a
criterion and the evaluation never re-checks what the loader checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BeforeValidator, Discriminator, Field, Tag, model_validator

from contracts.datafile import (
    DataFileError,
    Document,
    FileModel,
    LocatedError,
    parse_document,
    read_text,
    validate,
)
from contracts.enums import Category
from contracts.rule_kinds import (
    RULE_KINDS,
    CodedRule,
    DerivedRule,
    EventRule,
    LesionRule,
    SubjectRule,
    ThresholdRule,
    UlnDifferenceRule,
    UlnMultipleRule,
    leaf_inputs,
)


class ProtocolError(DataFileError):
    """A protocol file (or the set of its versions) is malformed: every problem with file and line."""


# ------------------------------------------------------------------------------------ the engine's model


@dataclass(frozen=True)
class Rule:
    """A node of a rule tree: `all` / `any` / `not` with children, or a leaf of a rule kind."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    children: tuple[Rule, ...] = ()

    def leaves(self) -> list[Rule]:
        if self.kind in LOGIC:
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
    """One version's criteria, with the protocol's other versions beside it (`editions()`)."""

    id: str
    title: str
    version: ProtocolVersion  # the version whose criteria this object holds
    versions: tuple[ProtocolVersion, ...]  # every known version, by effective date
    parameters: dict[str, int | float]
    criteria: tuple[Criterion, ...]
    path: str = ""
    #: which of several measurements of one test on the day a criterion uses counts (repeated measurements
    #: told apart by time point or position): `latest` (the default) or `mean` (of the replicates)
    same_day_measurements: str = "latest"
    #: the other versions of the protocol (each with its own criteria); empty for a single version
    other_versions: tuple[Protocol, ...] = ()
    #: a draft amendment (what-if only): never a version in force, never picked up beside the others
    draft: bool = False

    @property
    def tivers(self) -> str:
        return self.version.tivers

    def components(self) -> list[tuple[Criterion, Component]]:
        return [(criterion, component) for criterion in self.criteria for component in criterion.components]

    def editions(self) -> tuple[Protocol, ...]:
        """Every version of the protocol as its own Protocol, earliest first (this one among them)."""
        alone = replace(self, other_versions=())
        return tuple(sorted((alone, *self.other_versions), key=lambda p: p.version.effective))

    def edition(self, tivers: str) -> Protocol:
        return next(p for p in self.editions() if p.tivers == tivers)

    def content_digest(self) -> str:
        """sha256 of what this version judges by (its criteria, parameters and settings; not the file's layout,
        comments or path, nor the other versions): the run manifest records it per version, so that a version
        changed in place between two nights is seen (reporting.manifest.protocol_change)."""
        content = {"id": self.id, "version": asdict(self.version), "parameters": self.parameters,
                   "criteria": [asdict(criterion) for criterion in self.criteria],
                   "same_day_measurements": self.same_day_measurements}
        text = json.dumps(content, sort_keys=True, ensure_ascii=True,
                          default=lambda value: sorted(value) if isinstance(value, set | frozenset) else str(value))
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    def versions_text(self) -> str:
        """The versions as reports name them: `1.0`, or `1.0, 2.0` for an amended protocol."""
        return ", ".join(p.tivers for p in self.editions())

    def all_criteria(self) -> list[tuple[str, Category]]:
        """(criterion id, category) of every version: the latest version's order, then criteria that only
        earlier versions have (for the site's checklist, which may answer any of them)."""
        seen: dict[str, Category] = {}
        for edition in reversed(self.editions()):
            for criterion in edition.criteria:
                seen.setdefault(criterion.id, criterion.category)
        return list(seen.items())

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

    def all_readers(self) -> dict[str, tuple[str, ...]]:
        """`readers()` of every version together."""
        users: dict[str, set[str]] = {}
        for edition in self.editions():
            for test, ids in edition.readers().items():
                users.setdefault(test, set()).update(ids)
        return {test: tuple(sorted(ids)) for test, ids in sorted(users.items())}


LOGIC = ("all", "any", "not")
SAME_DAY_CHOICES = ("latest", "mean")
REQUIRED_PARAMETERS = ("screening_window_days",)

# -------------------------------------------------------------------------------------- the file's model


def _rule_tag(value: Any) -> str | None:
    """Which member of the rule union a node is: its logic key, else its `kind`."""
    if isinstance(value, dict):
        logic = [key for key in LOGIC if key in value]
        return logic[0] if logic else value.get("kind")
    return None


def _known_node(value: Any) -> Any:
    """Clear messages for the two mistakes the union alone would report obscurely."""
    if isinstance(value, dict):
        logic = [key for key in LOGIC if key in value]
        if logic and len(value) != 1:
            raise ValueError(f"`{logic[0]}` must be the only key of its node")
        if not logic and value.get("kind") not in RULE_KINDS:
            raise ValueError(f"unknown rule kind {value.get('kind')!r} (known: {', '.join(sorted(RULE_KINDS))}; "
                             "or all / any / not)")
    elif value is not None:
        raise ValueError("a rule must be a mapping")
    return value


class AllNode(FileModel):
    """True when every part is true; false as soon as one is false."""

    all: list[RuleNode] = Field(min_length=1)


class AnyNode(FileModel):
    """True as soon as one part is true; false when every part is false."""

    any: list[RuleNode] = Field(min_length=1)


class NotNode(FileModel):
    """The opposite of its part (undecided stays undecided)."""

    not_: RuleNode = Field(alias="not")


RuleNode = Annotated[
    Annotated[AllNode, Tag("all")] | Annotated[AnyNode, Tag("any")] | Annotated[NotNode, Tag("not")]
    | Annotated[ThresholdRule, Tag("threshold")] | Annotated[DerivedRule, Tag("derived")]
    | Annotated[UlnMultipleRule, Tag("uln_multiple")] | Annotated[UlnDifferenceRule, Tag("uln_difference")]
    | Annotated[CodedRule, Tag("coded")] | Annotated[EventRule, Tag("event")]
    | Annotated[LesionRule, Tag("lesion")] | Annotated[SubjectRule, Tag("subject")],
    Discriminator(_rule_tag),
    BeforeValidator(_known_node),
]
AllNode.model_rebuild()
AnyNode.model_rebuild()
NotNode.model_rebuild()


def _text(value: Any) -> Any:
    """A version or id YAML may read as a number (`tivers: 2.0`) is the text the author wrote."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Identifier = Annotated[str, BeforeValidator(_text), Field(min_length=1, pattern=r"^\S+$")]


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a parameter must be a number, got {value!r}")
    return value


ParameterValue = Annotated[int | float, BeforeValidator(_number)]


class VersionModel(FileModel):
    tivers: Annotated[str, BeforeValidator(_text), Field(min_length=1, description="the version (TIVERS)")]
    effective: dt.date = Field(description="the first day subjects consented under this version")


class ComponentModel(FileModel):
    id: Identifier = Field(description="the CHECK_ID in every output, e.g. IN10.PLT")
    text: str = ""
    rule: RuleNode
    applies_when: RuleNode | None = Field(None, description="inclusion: MET when false; exclusion: "
                                                            "NOT_APPLICABLE when false")


class CriterionModel(FileModel):
    id: Identifier = Field(description="the criterion as the site's IE checklist names it (IETESTCD)")
    category: Annotated[Category, BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)]
    text: str = ""
    kind: Literal["C", "P", "A"] = Field("C", description="computable / partly / attestation only")
    components: list[ComponentModel] = Field(min_length=1)


class ProtocolFile(FileModel):
    """One version of a protocol, as its author writes it (docs/criteria.md)."""

    id: Identifier = Field(description="the protocol (study) id; files with the same id are its versions")
    title: str = ""
    version: VersionModel
    draft: bool = Field(False, description="a draft amendment for `screening-audit whatif`: never in force")
    parameters: dict[str, ParameterValue] = Field(default_factory=dict,
                                                           description="named numbers, referenced as $name")
    same_day_measurements: Literal["latest", "mean"] = "latest"
    criteria: list[CriterionModel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _required_parameters(self) -> ProtocolFile:
        missing = [name for name in REQUIRED_PARAMETERS if name not in self.parameters]
        if missing:
            raise ValueError(f"missing parameters {missing}")
        return self


def _duplicates(protocol: ProtocolFile) -> None:
    """Criterion and component ids are the keys of every output: each may appear once."""
    seen: dict[str, tuple[str | int, ...]] = {}
    for i, criterion in enumerate(protocol.criteria):
        places = [(criterion.id, ("criteria", i, "id"))]
        places += [(c.id, ("criteria", i, "components", j, "id")) for j, c in enumerate(criterion.components)
                   if c.id != criterion.id]
        for ident, loc in places:
            if ident in seen:
                raise LocatedError(loc, f"duplicated ids: {ident!r} is already used")
            seen[ident] = loc


def _to_rule(node: Any) -> Rule:
    if isinstance(node, AllNode):
        return Rule("all", children=tuple(_to_rule(child) for child in node.all))
    if isinstance(node, AnyNode):
        return Rule("any", children=tuple(_to_rule(child) for child in node.any))
    if isinstance(node, NotNode):
        return Rule("not", children=(_to_rule(node.not_),))
    return Rule(kind=node.kind, params=node.params())


def _to_protocol(model: ProtocolFile, path: str) -> Protocol:
    version = ProtocolVersion(tivers=model.version.tivers, effective=model.version.effective)
    criteria = tuple(
        Criterion(id=c.id, category=c.category, text=c.text, kind=c.kind, components=tuple(
            Component(id=k.id, text=k.text, rule=_to_rule(k.rule),
                      applies_when=None if k.applies_when is None else _to_rule(k.applies_when))
            for k in c.components))
        for c in model.criteria)
    return Protocol(id=model.id, title=model.title, version=version, versions=(version,),
                    parameters=dict(model.parameters), criteria=criteria, path=path,
                    same_day_measurements=model.same_day_measurements, draft=model.draft)


def validation_context(data: Any) -> dict[str, Any]:
    """What the rule models read while validating: the file's parameters (for `$name`), and the set of
    parameters referenced (filled in, for the linter)."""
    parameters = data.get("parameters") if isinstance(data, dict) else None
    return {"parameters": dict(parameters) if isinstance(parameters, dict) else {}, "used": set()}


def _validated(document: Document, context: dict[str, Any] | None = None) -> ProtocolFile:
    return validate(ProtocolFile, document, context=context or validation_context(document.data),
                    check=_duplicates, error=ProtocolError)


def parse_protocol(raw: Any, path: str = "<memory>") -> Protocol:
    """A Protocol from an already parsed document (`versions` holds only this file's version)."""
    return _to_protocol(_validated(Document(data=raw, node=None, source=path)), path)


def parse_protocol_text(text: str, path: str = "<memory>") -> Protocol:
    """A Protocol from a file's YAML text; errors name `path` and the line."""
    return _to_protocol(_validated(_document(text, path)), path)


def _document(text: str, path: str) -> Document:
    return parse_document(text, path, ProtocolError)


# ------------------------------------------------------------------------------ versions: files together


def bundled_protocol_path() -> Path:
    return Path(str(resources.files("contracts").joinpath("protocols", "sz003.yaml")))


def _header(text: str) -> dict[str, Any]:
    """The top-level keys of a YAML file that may or may not be a protocol (unreadable: empty)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return raw if isinstance(raw, dict) else {}


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


P = TypeVar("P", Path, str)


def _versions_among(files: Iterable[tuple[P, str]], protocol_id: str | None) -> list[tuple[P, str]]:
    """The (source, text) of `files` that are versions of `protocol_id` (None: of any protocol): mappings
    with that `id` and a `version`, not drafts."""
    found = []
    for source, text in files:
        header = _header(text)
        if "version" not in header or header.get("draft") is True or "id" not in header:
            continue
        if protocol_id is None or str(_text(header["id"])) == protocol_id:
            found.append((source, text))
    return found


def _version_files(folder: Path, protocol_id: str | None) -> list[tuple[Path, str]]:
    """(path, text) of the files in `folder` that are versions of `protocol_id` (None: of any protocol)."""
    return _versions_among(((path, read_text(path, ProtocolError)) for path in _yaml_files(folder)), protocol_id)


def _combined(documents: list[tuple[Document, Protocol]]) -> Protocol:
    """The versions as one Protocol (the latest holding the others); overlapping versions are errors."""
    by_date = sorted(documents, key=lambda item: item[1].version.effective)
    problems: list[str] = []
    ids = {protocol.id for _, protocol in by_date}
    if len(ids) > 1:
        problems.append(f"{by_date[0][0].source}: the files hold different protocols {sorted(ids)}; "
                        "give one protocol's version files")
    for (earlier_doc, earlier), (doc, later) in itertools.pairwise(by_date):
        if later.version.effective == earlier.version.effective:
            problems.append(f"{doc.where(('version', 'effective'))}: versions {earlier.tivers} and {later.tivers} "
                            f"both take effect on {later.version.effective} ({earlier_doc.source}): which is in "
                            "force that day cannot be told")
    tivers: dict[str, str] = {}
    for doc, protocol in by_date:
        if protocol.tivers in tivers:
            problems.append(f"{doc.where(('version', 'tivers'))}: version {protocol.tivers} is also declared in "
                            f"{tivers[protocol.tivers]}")
        tivers.setdefault(protocol.tivers, doc.source)
    categories: dict[str, tuple[Category, str]] = {}
    for doc, protocol in by_date:
        for i, criterion in enumerate(protocol.criteria):
            known = categories.setdefault(criterion.id, (criterion.category, protocol.tivers))
            if known[0] is not criterion.category:
                problems.append(f"{doc.where(('criteria', i, 'category'))}: {criterion.id} is {criterion.category} "
                                f"here but {known[0]} in version {known[1]}: the site's checklist could not "
                                "answer it consistently")
    if problems:
        raise ProtocolError(by_date[0][0].source, problems)
    versions = tuple(protocol.version for _, protocol in by_date)
    editions = [replace(protocol, versions=versions) for _, protocol in by_date]
    return replace(editions[-1], other_versions=tuple(editions[:-1]))


def _parse_files(files: Sequence[tuple[Path | str, str]]) -> list[tuple[Document, Protocol]]:
    parsed, problems = [], []
    for path, text in files:
        try:
            document = _document(text, str(path))
            parsed.append((document, _to_protocol(_validated(document), str(path))))
        except ProtocolError as error:
            problems.extend(error.problems)
    if problems:
        raise ProtocolError(str(files[0][0]), problems)
    return parsed


def load_protocol(path: str | Path | None = None) -> Protocol:
    """A protocol with all its versions: a version file (the files beside it with the same `id` are the
    other versions) or a folder of version files; None is the bundled SZ003 protocol.

    The Protocol returned is the named file's version (for a folder: the latest), holding the others
    (`editions()`). Drafts (`draft: true`) are never picked up beside a file; naming one is an error here:
    a draft is for `screening-audit whatif` (load_draft)."""
    path = Path(path).expanduser() if path is not None else bundled_protocol_path()
    if path.is_dir():
        return protocol_from_texts(None, [(str(p), read_text(p, ProtocolError)) for p in _yaml_files(path)],
                                   where=str(path))
    beside = [(str(p), read_text(p, ProtocolError)) for p in _yaml_files(path.parent) if p.resolve() != path.resolve()]
    return protocol_from_texts((str(path), read_text(path, ProtocolError)), beside, where=str(path))


def protocol_from_texts(named: tuple[str, str] | None, beside: Sequence[tuple[str, str]], *,
                        where: str) -> Protocol:
    """`load_protocol` for files whose text was read elsewhere (object storage, flows.config_files).

    `named` is the (source, text) of the version file a caller gave, `beside` the (source, text) of the
    other files in its folder; `named` None means the folder itself was given (`where`), `beside` being
    its files. Sources name the files in every error."""
    if named is None:
        files = _versions_among(beside, None)
        if not files:
            raise ProtocolError(where, [f"{where}: no protocol version files (*.yaml with id and version)"])
        return _combined(_parse_files(files))
    source, text = named
    document = _document(text, source)
    protocol = _to_protocol(_validated(document), source)
    if protocol.draft:
        raise ProtocolError(source, [f"{document.where(('draft',))}: a draft amendment is not a protocol in "
                                     "force; use it with `screening-audit whatif --protocol`"])
    siblings = _versions_among([(s, t) for s, t in beside if s != source], protocol.id)
    combined = _combined([(document, protocol), *_parse_files(siblings)]) if siblings else protocol
    if not siblings:
        return combined
    # the named file's version leads (its TIVERS is the one a caller asked for); all versions are beside it
    return replace(combined.edition(protocol.tivers), other_versions=tuple(
        e for e in combined.editions() if e.tivers != protocol.tivers))


@dataclass(frozen=True)
class ProtocolSource:
    """One protocol file as its author wrote it (for the linter): its document (lines), its validated
    model, and the parameters its rules reference."""

    path: Path
    document: Document
    model: ProtocolFile
    used_parameters: frozenset[str]


def read_protocol_source(path: str | Path) -> ProtocolSource:
    """Parse and validate one file, keeping what a linter needs (ProtocolError on a schema error)."""
    path = Path(path).expanduser()
    document = _document(read_text(path, ProtocolError), str(path))
    context = validation_context(document.data)
    model = _validated(document, context)
    return ProtocolSource(path=path, document=document, model=model, used_parameters=frozenset(context["used"]))


def version_sources(path: str | Path) -> list[ProtocolSource]:
    """The named file and the other version files of its protocol beside it (a folder: all of them)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return [read_protocol_source(p) for p, _ in _version_files(path, None)]
    named = read_protocol_source(path)
    others = [p for p, _ in _version_files(path.parent, named.model.id) if p.resolve() != path.resolve()]
    return [named, *(read_protocol_source(p) for p in others)]


def combined(sources: list[ProtocolSource]) -> Protocol:
    """The files as one protocol, with the checks between versions (overlap, category changes)."""
    return _combined([(s.document, _to_protocol(s.model, str(s.path))) for s in sources])


def load_draft(path: str | Path) -> Protocol:
    """A draft amendment (or any single version file) on its own, for what-if: no siblings."""
    path = Path(path).expanduser()
    return parse_protocol_text(read_text(path, ProtocolError), str(path))


class ProtocolMismatch(ProtocolError):
    """A study paired with another study's protocol: its audit would be a wrong clinical result."""


def check_study_protocol(study: str, protocol: Protocol, path: str | Path | None) -> Protocol:
    """`protocol` if it is `study`'s own (its id is the study's), else ProtocolMismatch naming both.

    Without a path the bundled protocol was loaded, and it belongs to one study only: a new study that
    forgot to name its protocol must stop, not run to a green report against someone else's criteria.
    """
    if protocol.id == study:
        return protocol
    where = str(path) if path is not None else str(bundled_protocol_path())
    if path is None:
        message = (f"study {study} names no protocol file, and the bundled protocol is {protocol.id}'s "
                   f"(TIVERS {protocol.tivers}): give study {study} its own protocol file")
    else:
        message = (f"study {study} names the protocol of {protocol.id} ({path}, TIVERS {protocol.tivers}): "
                   "a study is audited against its own protocol only")
    raise ProtocolMismatch(where, [message])


def load_study_protocol(study: str, path: str | Path | None = None) -> Protocol:
    """The protocol a study is audited against (see `load_protocol`), refused unless it is that study's."""
    return check_study_protocol(study, load_protocol(path), path)
