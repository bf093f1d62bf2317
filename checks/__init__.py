"""Eligibility re-evaluation: the protocol as data, evaluated with polars expressions.

`load_units()` gives the unit catalog (checks/units.yaml) and `checks.values` the expression builders
that read delivered text (numbers, censoring, units, partial dates); both are shared with validation.
"""

from checks.reasons import ReasonCode
from checks.units import Conversion, TestKind, TestUnits, UnitCatalog, UnitCatalogError, load_units

__all__ = [
    "Conversion",
    "ReasonCode",
    "TestKind",
    "TestUnits",
    "UnitCatalog",
    "UnitCatalogError",
    "load_units",
]
