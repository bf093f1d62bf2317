"""Eligibility re-evaluation: the protocol as data, evaluated with polars expressions.

    protocol = load_protocol()                       # bundled checks/protocols/sz003.yaml
    result = evaluate(domains, protocol, as_of, exclusions=..., rejected=...)

`load_units()` gives the unit catalog (checks/units.yaml) and `checks.values` the expression builders
that read delivered text (numbers, censoring, units, partial dates); both are shared with validation.
See docs/criteria.md.
"""

from checks.engine import CRITERIA_COLUMNS, EligibilityResult, evaluate
from checks.protocol import (
    Category,
    Component,
    Criterion,
    Protocol,
    ProtocolError,
    ProtocolVersion,
    Rule,
    load_protocol,
    parse_protocol,
)
from checks.reasons import ReasonCode
from checks.reference import REFERENCE_COLUMNS
from checks.rules import RULE_KINDS
from checks.units import Conversion, TestKind, TestUnits, UnitCatalog, UnitCatalogError, load_units

__all__ = [
    "CRITERIA_COLUMNS",
    "REFERENCE_COLUMNS",
    "RULE_KINDS",
    "Category",
    "Component",
    "Conversion",
    "Criterion",
    "EligibilityResult",
    "Protocol",
    "ProtocolError",
    "ProtocolVersion",
    "ReasonCode",
    "Rule",
    "TestKind",
    "TestUnits",
    "UnitCatalog",
    "UnitCatalogError",
    "evaluate",
    "load_protocol",
    "load_units",
    "parse_protocol",
]
