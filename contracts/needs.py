"""What data the protocol needs of an eligible subject, and when: derived from the rule trees.

Validation checks that every enrolled subject has the results the criteria read (expectations,
`needed_results`). Some are needed only under a condition the protocol itself states: HBV DNA only
when HBsAg or anti-HBc is positive (`applies_when`), HCG only for women (`all: [SEX = F, HCG]` inside
an exclusion), HbA1c only with a history of diabetes. Those conditions are read from the rule trees
here, never restated in another file, so an amendment that changes a criterion changes what is asked.

The reading, for a subject expected to be eligible (inclusion components true, exclusion components
false; `not` turns the expectation round):
- `applies_when`: the rule's data are needed only when the condition holds; the condition's own data
  are always needed.
- `all` that must be true (an inclusion's parts): every part is needed.
- `any` that must be false (an exclusion's alternatives): every part is needed.
- `all` that need not be true (inside an exclusion, or one alternative of an inclusion's `any`): its
  parts are read in order, and a part is needed only when the parts before it hold: `all: [MH DIABETES
  MELLITUS, HBA1C > 7]` needs HbA1c only after a diabetes history, `any: [BCLC = C, all: [BCLC = B,
  LRTXINEL = Y]]` needs LRTXINEL only for BCLC B.
A part can be a condition when the audit can tell per subject whether it holds: a `coded` result in its
values, a `subject` value (SEX in values, RFICDTC present), a targeted history record (`event` with
`require_each`, MHOCCUR = Y). Any other part (a threshold, a medication window) is not used as a
condition: what follows it is then needed always, which asks for more data, never for less.
"""

from __future__ import annotations

from contracts.enums import Category
from contracts.protocol import Component, Criterion, Protocol, Rule
from contracts.rule_kinds import leaf_inputs

#: a condition: None = always; else a tree of `all` / `any` over gate leaves (coded, subject, event)
Condition = Rule | None

_GATE_KINDS = ("coded", "subject", "event")


def as_condition(node: Rule) -> Condition | bool:
    """The condition "this part holds", or False when the audit cannot tell it per subject."""
    if node.kind in _GATE_KINDS:
        if node.kind == "event" and not node.params.get("require_each"):
            return False
        return node
    if node.kind == "all":
        parts = [part for part in (as_condition(child) for child in node.children) if isinstance(part, Rule)]
        return _joined("all", parts) if parts else False
    if node.kind == "any":
        parts = [as_condition(child) for child in node.children]
        if any(part is False for part in parts):
            return False
        return _joined("any", [part for part in parts if isinstance(part, Rule)])
    return False


def _joined(kind: str, parts: list[Rule]) -> Rule:
    """`all` / `any` of parts, flattened and without repeats (a single part is itself)."""
    flat: list[Rule] = []
    for part in parts:
        for piece in (part.children if part.kind == kind else (part,)):
            if piece not in flat:
                flat.append(piece)
    return flat[0] if len(flat) == 1 else Rule(kind, children=tuple(flat))


def both(gate: Condition, condition: Condition | bool) -> Condition:
    """`gate` and `condition` (a condition the audit cannot tell adds nothing)."""
    if not isinstance(condition, Rule):
        return gate
    return condition if gate is None else _joined("all", [gate, condition])


def _walk(node: Rule, expected: bool, gate: Condition, alternative: bool, found: list[tuple[str, Condition]]) -> None:
    if node.kind == "not":
        _walk(node.children[0], not expected, gate, False, found)
        return
    if node.kind == "any":
        for child in node.children:
            _walk(child, expected, gate, expected, found)
        return
    if node.kind == "all":
        ordered = alternative or not expected
        held: Condition = gate
        for child in node.children:
            _walk(child, expected, held if ordered else gate, False, found)
            if ordered:
                held = both(held, as_condition(child))
        return
    for domain, codes in leaf_inputs(node.kind, node.params).items():
        for code in codes:
            found.append((f"{domain.upper()}.{code.upper()}", gate))


def component_needs(criterion: Criterion, component: Component) -> list[tuple[str, Condition]]:
    """("DOMAIN.CODE", condition) for every input one component reads."""
    expected = criterion.category is Category.INCLUSION
    found: list[tuple[str, Condition]] = []
    gate: Condition = None
    if component.applies_when is not None:
        _walk(component.applies_when, False, None, False, found)
        gate = both(None, as_condition(component.applies_when))
    _walk(component.rule, expected, gate, False, found)
    return found


def conditional_needs(protocol: Protocol) -> dict[str, Condition]:
    """"DOMAIN.CODE" -> when one version of the protocol needs it (None: for every subject)."""
    readings: dict[str, list[Condition]] = {}
    for criterion, component in protocol.components():
        for test, condition in component_needs(criterion, component):
            readings.setdefault(test, []).append(condition)
    return {test: None if any(c is None for c in conditions) else _joined("any", [c for c in conditions if c])
            for test, conditions in sorted(readings.items())}


def derived_limit(protocol: Protocol, component_id: str) -> tuple[str, str, float] | None:
    """(derived value, op, limit) of a component whose rule is one `derived` comparison (IN11.CRCL:
    CRCL_CG >= 40), or None: what a process check comparing a site's number with it reads."""
    for _, component in protocol.components():
        rule = component.rule
        if component.id == component_id and rule.kind == "derived" and "op" in rule.params:
            return str(rule.params["value"]).upper(), str(rule.params["op"]), float(rule.params["limit"])
    return None
