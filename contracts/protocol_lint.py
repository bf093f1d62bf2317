"""`screening-audit check-protocol`: what a protocol author should fix before a night runs the file.

The loader already refuses a file that does not follow the schema (unknown keys, kinds, parameters...).
This linter reads a protocol (a version file with its siblings, a folder, or a draft) the way the audit
will use it and reports, each with its file and line:

errors (the audit would run, but judge wrongly or not at all)
- a finding test a numeric rule reads that the unit catalog does not know (every value would be
  UNKNOWN_UNIT), or a qualitative test compared with a number;
- a criterion the site's IE checklist cannot answer: its id is not a valid SDTM IETESTCD (at most 8
  letters, digits or underscores, starting with a letter), so no checklist row can name it;
- versions that overlap: two versions in force on the same day, one TIVERS declared twice, a criterion
  whose category changes between versions (a draft is checked against the versions in force beside it);
warnings (probably a mistake)
- a parameter no rule references (screening_window_days is read by the engine itself);
- a test the DTS does not list for its domain (sites cannot deliver it without a validation finding);
- an LB coded test the unit catalog does not list as qualitative (synonyms such as REACTIVE would not
  be read as POSITIVE).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from contracts.datafile import Document
from contracts.domains import DOMAINS
from contracts.protocol import (
    REQUIRED_PARAMETERS,
    AllNode,
    AnyNode,
    NotNode,
    ProtocolError,
    ProtocolSource,
    combined,
    version_sources,
)
from contracts.rule_kinds import DERIVED_VALUES, leaf_inputs
from contracts.units import TestKind, UnitCatalog, load_units

#: SDTM --TESTCD: at most 8 characters, letters, digits and underscores, not starting with a digit
IETESTCD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,7}$")
_NUMERIC_KINDS = ("threshold", "uln_multiple", "uln_difference")


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class LintFinding:
    level: Level
    where: str  # file:line: key path
    message: str

    def line(self) -> str:
        return f"{self.where}: {self.level.value}: {self.message}"


def _leaves(node: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[Any, tuple[str | int, ...]]]:
    """Every leaf of a rule model with its location in the file."""
    if isinstance(node, AllNode | AnyNode):
        key = "all" if isinstance(node, AllNode) else "any"
        for i, child in enumerate(getattr(node, key)):
            yield from _leaves(child, (*loc, key, i))
    elif isinstance(node, NotNode):
        yield from _leaves(node.not_, (*loc, "not"))
    else:
        yield node, loc


def _rule_leaves(source: ProtocolSource) -> Iterator[tuple[Any, tuple[str | int, ...]]]:
    for i, criterion in enumerate(source.model.criteria):
        for j, component in enumerate(criterion.components):
            base = ("criteria", i, "components", j)
            yield from _leaves(component.rule, (*base, "rule"))
            if component.applies_when is not None:
                yield from _leaves(component.applies_when, (*base, "applies_when"))


def _catalog_findings(leaf: Any, where: str, catalog: UnitCatalog) -> list[LintFinding]:
    params = leaf.params()
    found = []
    if leaf.kind in _NUMERIC_KINDS:
        domain, test = str(params.get("domain", "LB")).upper(), str(params["test"]).upper()
        entry = catalog.test(domain, test)
        if entry is None:
            found.append(LintFinding(Level.ERROR, where, f"{domain} {test} is not in the unit catalog: its values "
                                                         "could never be converted (every one UNKNOWN_UNIT)"))
        elif entry.kind is TestKind.QUALITATIVE:
            found.append(LintFinding(Level.ERROR, where, f"{domain} {test} is qualitative in the unit catalog; "
                                                         "compare it with a `coded` rule"))
    elif leaf.kind == "derived":
        name = str(params["value"]).upper()
        for domain, tests in DERIVED_VALUES[name].inputs.items():
            missing = sorted(t for t in tests if catalog.test(domain, t) is None)
            if missing:
                found.append(LintFinding(Level.ERROR, where, f"{name} reads {domain.upper()} {', '.join(missing)}, "
                                                             "not in the unit catalog"))
    elif leaf.kind == "coded" and str(params["domain"]).upper() == "LB":
        entry = catalog.test("LB", str(params["test"]))
        if entry is None or entry.kind is not TestKind.QUALITATIVE:
            found.append(LintFinding(Level.WARNING, where, f"LB {params['test']} is not a qualitative test of the "
                                                           "unit catalog: results are read as written (REACTIVE "
                                                           "would not read as POSITIVE)"))
    return found


def _dts_findings(leaf: Any, where: str) -> list[LintFinding]:
    found = []
    for domain, codes in leaf_inputs(leaf.kind, leaf.params()).items():
        spec = DOMAINS.get(domain)
        allowed = spec.allowed.get(f"{domain.upper()}TESTCD") if spec else None
        unknown = sorted(code for code in codes if allowed is not None and code not in allowed)
        if unknown:
            found.append(LintFinding(Level.WARNING, where, f"the DTS lists no {domain.upper()} test "
                                                           f"{', '.join(unknown)}: a site delivering it gets a "
                                                           "validation finding (add it to contracts/domains.yaml)"))
    return found


def lint_source(source: ProtocolSource, catalog: UnitCatalog) -> list[LintFinding]:
    """The findings of one file on its own."""
    document: Document = source.document
    found: list[LintFinding] = []
    for i, criterion in enumerate(source.model.criteria):
        if not IETESTCD.match(criterion.id):
            found.append(LintFinding(Level.ERROR, document.where(("criteria", i, "id")),
                                     f"the IE checklist cannot answer {criterion.id!r}: IETESTCD is at most 8 "
                                     "letters, digits or underscores, starting with a letter"))
    for leaf, loc in _rule_leaves(source):
        where = document.where(loc)
        found += _catalog_findings(leaf, where, catalog)
        found += _dts_findings(leaf, where)
    for name in source.model.parameters:
        if name not in source.used_parameters and name not in REQUIRED_PARAMETERS:
            found.append(LintFinding(Level.WARNING, document.where(("parameters", name)),
                                     f"parameter {name} is not referenced by any rule (${name})"))
    return found


def lint_protocol(path: str | Path, catalog: UnitCatalog | None = None) -> list[LintFinding]:
    """Lint a protocol version file with its siblings, a folder of version files, or a draft (checked with
    the versions in force beside it). A schema error is an error finding with its file and line."""
    catalog = catalog or load_units()
    try:
        sources = version_sources(path)  # a draft: itself and the versions in force beside it
        combined(sources)
    except ProtocolError as error:
        return [_as_finding(problem) for problem in error.problems]
    return [finding for source in sources for finding in lint_source(source, catalog)]


def _as_finding(problem: str) -> LintFinding:
    """A loader problem (`<file>:<line>: <key path>: <message>`) as an error finding."""
    parts = problem.split(": ")
    cut = 2 if len(parts) >= 3 else 1
    return LintFinding(Level.ERROR, ": ".join(parts[:cut]), ": ".join(parts[cut:]))
