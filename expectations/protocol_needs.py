"""What the protocol asks of the data: its criteria and the results its criteria read, and when.

Read from `contracts.protocol.Protocol` (criteria and rule trees of every version) and
`contracts.needs` (when a result is needed), so that the suites are generated from the protocol file
and never from a copied list. Protocol None means "DTS checks only".

An amended protocol asks each subject for what the version in force at its consent needs: the
`Demands` record holds, per version, the criteria and the needed results with their conditions, and
expectations.subjects picks a subject's version from its consent date (core.versions).
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.needs import Condition, conditional_needs
from contracts.protocol import Protocol, ProtocolVersion
from expectations.spec import SuiteConfig


@dataclass(frozen=True)
class Demands:
    """Per protocol version (effective-date order): its criteria, and its needed results with the
    condition under which each is needed (None: for every subject; absent: that version does not read it)."""

    versions: tuple[ProtocolVersion, ...]
    criteria: tuple[tuple[str, ...], ...]
    conditions: tuple[dict[str, Condition], ...]

    @property
    def amended(self) -> bool:
        return len(self.versions) > 1


def demands_of(protocol: Protocol | None) -> Demands | None:
    if protocol is None:
        return None
    editions = protocol.editions()
    return Demands(versions=tuple(e.version for e in editions),
                   criteria=tuple(tuple(c.id for c in e.criteria) for e in editions),
                   conditions=tuple(conditional_needs(e) for e in editions))


def criteria_of(protocol: Protocol | None) -> dict[str, str]:
    """Criterion id -> INCLUSION / EXCLUSION, of every version (the latest version's order first)."""
    if protocol is None:
        return {}
    return {ident: category.value for ident, category in protocol.all_criteria()}


def needed_by(protocol: Protocol | None) -> dict[str, tuple[str, ...]]:
    """"DOMAIN.CODE" -> the protocol components that read it (IN09.DNA, EX05.HBV), for messages."""
    return {} if protocol is None else protocol.all_readers()


def protocol_id(protocol: Protocol | None) -> str:
    return "" if protocol is None else protocol.id


def needs_of(protocol: Protocol | None, config: SuiteConfig) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Upper-case domain -> groups of test codes the criteria of any version read (any one member of a
    group is enough).

    Only domains with a known test-code variable (suites.yaml `results` or `test_variables`) are
    checked; conditional needs stay in the list and are filtered per subject (expectations.subjects).
    """
    demands = demands_of(protocol)
    if demands is None:
        return {}
    needed = {test for conditions in demands.conditions for test in conditions}
    checked = set(config.results) | set(config.test_variables)
    groups: dict[str, list[tuple[str, ...]]] = {}
    covered: set[str] = set()
    for group in config.alternatives:
        members = tuple(t for t in group if t in needed)
        if members:
            domain = members[0].split(".")[0]
            groups.setdefault(domain, []).append(tuple(t.split(".", 1)[1] for t in members))
            covered.update(members)
    for test in sorted(needed - covered):
        domain, code = test.split(".", 1)
        groups.setdefault(domain, []).append((code,))
    return {dom: tuple(sorted(g)) for dom, g in sorted(groups.items()) if dom in checked}
