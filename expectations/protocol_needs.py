"""What the protocol asks of the data: its criteria and the results its criteria read.

Read from `contracts.protocol.Protocol` (criteria, `readers()`), so that the suites are generated from
the protocol file and never from a copied list. Protocol None means "DTS checks only".
"""

from __future__ import annotations

from contracts.protocol import Protocol
from expectations.spec import SuiteConfig


def criteria_of(protocol: Protocol | None) -> dict[str, str]:
    """Criterion id -> INCLUSION / EXCLUSION, in protocol order."""
    if protocol is None:
        return {}
    return {criterion.id: criterion.category.value for criterion in protocol.criteria}


def needed_by(protocol: Protocol | None) -> dict[str, tuple[str, ...]]:
    """"DOMAIN.CODE" -> the protocol components that read it (IN09.DNA, EX05.HBV), for messages."""
    return {} if protocol is None else protocol.readers()


def protocol_id(protocol: Protocol | None) -> str:
    return "" if protocol is None else protocol.id


def needs_of(protocol: Protocol | None, config: SuiteConfig) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Upper-case domain -> groups of test codes the criteria read (any one member of a group is enough).

    Only domains with a known test-code variable (suites.yaml `results` or `test_variables`) are
    checked; conditional needs (suites.yaml) stay in the list and are filtered per subject.
    """
    if protocol is None:
        return {}
    needed = set(protocol.readers())
    for test, condition in config.conditional_needs.items():
        if condition.with_tests and any(t in needed for t in condition.with_tests):
            needed.add(test)
        elif condition.with_tests:
            needed.discard(test)
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
