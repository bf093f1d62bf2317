"""The unit catalog (contracts/units.yaml) as typed, validated data.

Units are data so that adding a unit or a test never means writing code: evaluation converts with
the catalog, and the validation suites read the same plausibility ranges. The loader rejects unknown
keys, unknown canonical units and spellings that collide after normalisation, because a silently
ignored typo in a unit table would convert a result with the wrong factor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from contracts.datafile import (
    DataFileError,
    FileModel,
    LocatedError,
    load_data_file,
    parse_mapping,
    parse_yaml,
)


class UnitCatalogError(DataFileError):
    """The unit catalog file is malformed (unknown key, unknown unit, colliding spelling...)."""


class TestKind(StrEnum):
    NUMERIC = "numeric"
    QUALITATIVE = "qualitative"


def normalise_unit_text(text: str) -> str:
    """The matching key of a unit spelling: micro signs as `u`, whitespace removed, upper case.

    Mirrors `core.values.unit_key` (the polars version) so that the catalog and the data agree.
    """
    return re.sub(r"\s+", "", text.replace("µ", "u").replace("μ", "u")).upper()


def normalise_coded_text(text: str) -> str:
    """The matching key of a coded result: surrounding whitespace stripped, inner runs collapsed, upper case."""
    return re.sub(r"\s+", " ", text.strip()).upper()


@dataclass(frozen=True)
class Conversion:
    """value -> protocol unit: `10**value` first when log10, then `value * factor / divide + offset`."""

    factor: float = 1.0
    divide: float = 1.0
    offset: float = 0.0
    log10: bool = False

    def apply(self, value: float) -> float:
        """Plain-Python twin of the polars conversion, for tests and documentation examples."""
        base = 10.0**value if self.log10 else value
        return base * self.factor / self.divide + self.offset


@dataclass(frozen=True)
class TestUnits:
    """What the catalog knows about one test code of one domain."""

    __test__ = False  # not a pytest test class despite the name

    domain: str
    testcd: str
    kind: TestKind
    unit: str | None
    unitless: bool = False
    accepted: dict[str, Conversion] = field(default_factory=dict)
    not_convertible: tuple[str, ...] = ()
    plausible: tuple[float, float] | None = None
    positive_above: float | None = None


@dataclass(frozen=True)
class UnitCatalog:
    """Unit spellings, qualitative codes and per-test conversions (see contracts/units.yaml)."""

    units: tuple[str, ...]  # canonical spellings
    synonyms: dict[str, str]  # normalised spelling -> canonical spelling
    qualitative: dict[str, str]  # normalised coded result -> POSITIVE / NEGATIVE
    tests: dict[tuple[str, str], TestUnits]  # (DOMAIN, TESTCD) -> entry

    def test(self, domain: str, testcd: str) -> TestUnits | None:
        return self.tests.get((domain.upper(), testcd.upper()))

    def domain_tests(self, domain: str) -> dict[str, TestUnits]:
        """test code -> entry, for one domain (LB, VS, TR, FA)."""
        return {code: entry for (dom, code), entry in self.tests.items() if dom == domain.upper()}

    def plausible_ranges(self, domain: str) -> dict[str, tuple[float, float]]:
        """test code -> (low, high) in the protocol unit; outside is a data error, not a result."""
        return {code: e.plausible for code, e in self.domain_tests(domain).items() if e.plausible}

    def protocol_unit(self, domain: str, testcd: str) -> str | None:
        entry = self.test(domain, testcd)
        return entry.unit if entry else None

    def canonical_unit(self, text: str | None) -> str | None:
        """The canonical spelling of a delivered unit text, or None when it is not recognised."""
        if text is None or not text.strip():
            return None
        return self.synonyms.get(normalise_unit_text(text))


# ------------------------------------------------------------------------------------- the file's model

PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ConversionModel(FileModel):
    """value -> protocol unit; written as a number (a factor) or a mapping."""

    # a non-positive factor would reverse censoring bounds (`<x` would become `>y`)
    factor: PositiveFinite = 1.0
    divide: PositiveFinite = 1.0
    offset: float = 0.0
    log10: bool = False


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"a conversion must be a number or a mapping, got {value!r}")
    return value


def _as_conversion(value: float | ConversionModel) -> ConversionModel:
    return value if isinstance(value, ConversionModel) else ConversionModel(factor=value)


#: a conversion written as a number (a factor) or a mapping
ConversionSpec = Annotated[PositiveFinite | ConversionModel, BeforeValidator(_not_bool), AfterValidator(_as_conversion)]
Spellings = Annotated[list[str], BeforeValidator(lambda v: [] if v is None else [str(s) for s in v]
                                                  if isinstance(v, list) else v)]


class TestModel(FileModel):
    """What the catalog knows about one test code (contracts/units.yaml, `tests:`)."""

    __test__ = False  # not a pytest test class despite the name

    kind: TestKind = TestKind.NUMERIC
    unit: str | None = Field(None, description="the protocol unit every accepted unit converts to")
    unitless: bool = Field(False, description="a result without a unit is read in the protocol unit")
    accepted: dict[str, ConversionSpec] = Field(default_factory=dict)
    not_convertible: list[str] = Field(default_factory=list)
    plausible: tuple[float, float] | None = Field(None, description="[low, high] in the protocol unit")
    positive_above: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TestModel:
        if self.kind is TestKind.NUMERIC and (self.unit is None or self.unit not in self.accepted):
            raise ValueError("a numeric test needs `unit` and must accept it")
        if self.plausible is not None and self.plausible[0] > self.plausible[1]:
            raise ValueError("plausible must be [low, high]")
        return self


class UnitsFile(FileModel):
    """The unit catalog file (contracts/units.yaml), as its maintainer writes it."""

    units: dict[str, Spellings] = Field(default_factory=dict, description="canonical spelling -> synonyms")
    qualitative: dict[str, Spellings] = Field(default_factory=dict,
                                              description="canonical coded result -> synonyms")
    tests: dict[str, dict[str, TestModel]] = Field(default_factory=dict,
                                                   description="domain -> test code -> what the catalog knows")


def _synonyms(raw: dict[str, list[str]]) -> tuple[tuple[str, ...], dict[str, str]]:
    synonyms: dict[str, str] = {}
    for canonical, spellings in raw.items():
        for spelling in [str(canonical), *spellings]:
            key = normalise_unit_text(spelling)
            if key in synonyms and synonyms[key] != canonical:
                raise LocatedError(("units", canonical), f"{spelling!r} normalises to the same key as a spelling "
                                                         f"of {synonyms[key]!r}")
            synonyms[key] = str(canonical)
    return tuple(str(c) for c in raw), synonyms


def _qualitative(raw: dict[str, list[str]]) -> dict[str, str]:
    codes: dict[str, str] = {}
    for canonical, spellings in raw.items():
        for spelling in [str(canonical), *spellings]:
            key = normalise_coded_text(spelling)
            if key in codes and codes[key] != canonical:
                raise LocatedError(("qualitative", canonical), f"{spelling!r} is both {codes[key]} and {canonical}")
            codes[key] = str(canonical)
    return codes


def _test(domain: str, code: str, body: TestModel) -> TestUnits:
    return TestUnits(
        domain=domain.upper(), testcd=code.upper(), kind=body.kind, unit=body.unit, unitless=body.unitless,
        accepted={u: Conversion(c.factor, c.divide, c.offset, c.log10) for u, c in body.accepted.items()},
        not_convertible=tuple(body.not_convertible), plausible=body.plausible, positive_above=body.positive_above,
    )


def _declared(model: UnitsFile) -> None:
    """Every unit a test names is declared under `units`; spellings do not collide."""
    _synonyms(model.units)
    _qualitative(model.qualitative)
    for domain, entries in model.tests.items():
        for code, body in entries.items():
            for name in [*([body.unit] if body.unit else []), *body.accepted, *body.not_convertible]:
                if name not in model.units:
                    raise LocatedError(("tests", domain, code), f"unit {name!r} is not declared under `units`")


def _catalog(model: UnitsFile) -> UnitCatalog:
    units, synonyms = _synonyms(model.units)
    tests = {(str(domain).upper(), str(code).upper()): _test(str(domain), str(code), body)
             for domain, entries in model.tests.items() for code, body in entries.items()}
    return UnitCatalog(units=units, synonyms=synonyms, qualitative=_qualitative(model.qualitative), tests=tests)


def parse_units(raw: object, source: str = "unit catalog") -> UnitCatalog:
    """Build a catalog from an already parsed document; raise UnitCatalogError on any unknown key."""
    return _catalog(parse_mapping(UnitsFile, raw, source, check=_declared, error=UnitCatalogError))


def parse_units_text(text: str, source: str) -> UnitCatalog:
    """A catalog from a file's YAML text; errors name `source` and the line."""
    return _catalog(parse_yaml(UnitsFile, text, source, check=_declared, error=UnitCatalogError))


def load_units(path: str | Path | None = None) -> UnitCatalog:
    """The unit catalog: the bundled contracts/units.yaml, or another file with the same shape (a study's)."""
    return load_data_file(parse_units_text, "contracts", "units.yaml", path, UnitCatalogError)
