"""What the protocol asks of the data: its criteria and the results its criteria read.

A thin adapter over `contracts.protocol.Protocol` (criteria, `needed_tests()`), so that the suites are
generated from the protocol file and never from a copied list. Protocol None means "DTS checks only".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol as TypingProtocol

from expectations.spec import SuiteConfig


class ProtocolLike(TypingProtocol):
    """What validation reads from a protocol (contracts.protocol.Protocol has it; tests use fakes)."""

    id: str

    @property
    def criteria(self) -> Iterable: ...

    def needed_tests(self) -> dict[str, set[str]]: ...


def criteria_of(protocol: ProtocolLike | None) -> dict[str, str]:
    """Criterion id -> INCLUSION / EXCLUSION, in protocol order."""
    if protocol is None:
        return {}
    return {str(c.id): str(getattr(c.category, "value", c.category)) for c in protocol.criteria}


def needed_by(protocol: ProtocolLike | None) -> dict[str, tuple[str, ...]]:
    """"DOMAIN.CODE" -> the protocol components that read it (IN09.DNA, EX05.HBV), for messages.

    Read from each component's rule tree with contracts.rule_kinds.leaf_inputs, the function behind
    Protocol.needed_tests(); a protocol object without components gives an empty mapping.
    """
    components = getattr(protocol, "components", None)
    if components is None:
        return {}
    from contracts.rule_kinds import leaf_inputs

    users: dict[str, set[str]] = {}
    for _, component in components():
        trees = [component.rule, *([component.applies_when] if component.applies_when else [])]
        for leaf in (leaf for tree in trees for leaf in tree.leaves()):
            for domain, codes in leaf_inputs(leaf.kind, leaf.params).items():
                for code in codes:
                    users.setdefault(f"{domain.upper()}.{code.upper()}", set()).add(component.id)
    return {test: tuple(sorted(ids)) for test, ids in users.items()}


def protocol_id(protocol: ProtocolLike | None) -> str:
    return "" if protocol is None else str(protocol.id)


def needs_of(protocol: ProtocolLike | None, config: SuiteConfig) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Upper-case domain -> groups of test codes the criteria read (any one member of a group is enough).

    Only domains with a known test-code variable (suites.yaml `results` or `test_variables`) are
    checked; conditional needs (suites.yaml) stay in the list and are filtered per subject.
    """
    if protocol is None:
        return {}
    needed = {f"{dom.upper()}.{code.upper()}" for dom, codes in protocol.needed_tests().items() for code in codes}
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
