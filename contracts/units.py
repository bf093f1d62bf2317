"""The unit catalog (contracts/units.yaml) as typed, validated data.

Units are data so that adding a unit or a test never means writing code: evaluation converts with
the catalog, and the validation suites read the same plausibility ranges. The loader rejects unknown
keys, unknown canonical units and spellings that collide after normalisation, because a silently
ignored typo in a unit table would convert a result with the wrong factor.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path

import yaml


class UnitCatalogError(ValueError):
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


_TOP_KEYS = {"units", "qualitative", "tests"}
_TEST_KEYS = {"kind", "unit", "unitless", "accepted", "not_convertible", "plausible", "positive_above"}
_CONVERSION_KEYS = {"factor", "divide", "offset", "log10"}


def _conversion(where: str, raw: object) -> Conversion:
    if isinstance(raw, bool):
        raise UnitCatalogError(f"{where}: a conversion must be a number or a mapping, got {raw!r}")
    if isinstance(raw, int | float):
        raw = {"factor": raw}
    if not isinstance(raw, dict):
        raise UnitCatalogError(f"{where}: a conversion must be a number or a mapping, got {raw!r}")
    unknown = set(raw) - _CONVERSION_KEYS
    if unknown:
        raise UnitCatalogError(f"{where}: unknown conversion keys {sorted(unknown)}")
    conv = Conversion(
        factor=float(raw.get("factor", 1.0)),
        divide=float(raw.get("divide", 1.0)),
        offset=float(raw.get("offset", 0.0)),
        log10=bool(raw.get("log10", False)),
    )
    if conv.factor <= 0 or conv.divide <= 0 or not all(map(math.isfinite, (conv.factor, conv.divide))):
        # a non-positive factor would reverse censoring bounds (`<x` would become `>y`)
        raise UnitCatalogError(f"{where}: factor and divide must be positive and finite")
    return conv


def _synonyms(raw: dict) -> tuple[tuple[str, ...], dict[str, str]]:
    synonyms: dict[str, str] = {}
    for canonical, spellings in raw.items():
        for spelling in [str(canonical), *[str(s) for s in (spellings or [])]]:
            key = normalise_unit_text(spelling)
            if key in synonyms and synonyms[key] != canonical:
                raise UnitCatalogError(
                    f"units: {spelling!r} normalises to the same key as a spelling of {synonyms[key]!r}")
            synonyms[key] = str(canonical)
    return tuple(str(c) for c in raw), synonyms


def _qualitative(raw: dict) -> dict[str, str]:
    codes: dict[str, str] = {}
    for canonical, spellings in raw.items():
        for spelling in [str(canonical), *[str(s) for s in (spellings or [])]]:
            key = normalise_coded_text(spelling)
            if key in codes and codes[key] != canonical:
                raise UnitCatalogError(f"qualitative: {spelling!r} is both {codes[key]} and {canonical}")
            codes[key] = str(canonical)
    return codes


def _test(domain: str, code: str, body: dict, units: tuple[str, ...]) -> TestUnits:
    where = f"tests.{domain}.{code}"
    unknown = set(body) - _TEST_KEYS
    if unknown:
        raise UnitCatalogError(f"{where}: unknown keys {sorted(unknown)}")
    kind = TestKind(body.get("kind", "numeric"))
    unit = body.get("unit")
    accepted = {str(u): _conversion(f"{where}.accepted.{u}", c) for u, c in (body.get("accepted") or {}).items()}
    not_convertible = tuple(str(u) for u in body.get("not_convertible") or ())
    for name in [*([unit] if unit else []), *accepted, *not_convertible]:
        if name not in units:
            raise UnitCatalogError(f"{where}: unit {name!r} is not declared under `units`")
    if kind is TestKind.NUMERIC and (unit is None or unit not in accepted):
        raise UnitCatalogError(f"{where}: a numeric test needs `unit` and must accept it")
    plausible = body.get("plausible")
    if plausible is not None:
        if len(plausible) != 2 or float(plausible[0]) > float(plausible[1]):
            raise UnitCatalogError(f"{where}: plausible must be [low, high]")
        plausible = (float(plausible[0]), float(plausible[1]))
    positive_above = body.get("positive_above")
    return TestUnits(
        domain=domain, testcd=code, kind=kind, unit=unit, unitless=bool(body.get("unitless", False)),
        accepted=accepted, not_convertible=not_convertible, plausible=plausible,
        positive_above=None if positive_above is None else float(positive_above),
    )


def parse_units(raw: object) -> UnitCatalog:
    """Build a catalog from the parsed YAML document; raise UnitCatalogError on any unknown key."""
    if not isinstance(raw, dict):
        raise UnitCatalogError("unit catalog: the document must be a mapping")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise UnitCatalogError(f"unit catalog: unknown keys {sorted(unknown)}")
    units, synonyms = _synonyms(raw.get("units") or {})
    qualitative = _qualitative(raw.get("qualitative") or {})
    tests: dict[tuple[str, str], TestUnits] = {}
    for domain, entries in (raw.get("tests") or {}).items():
        for code, body in (entries or {}).items():
            tests[(str(domain).upper(), str(code).upper())] = _test(
                str(domain).upper(), str(code).upper(), body or {}, units)
    return UnitCatalog(units=units, synonyms=synonyms, qualitative=qualitative, tests=tests)


@cache
def _load_bundled() -> UnitCatalog:
    text = resources.files("contracts").joinpath("units.yaml").read_text(encoding="utf-8")
    return parse_units(yaml.safe_load(text))


def load_units(path: str | Path | None = None) -> UnitCatalog:
    """The unit catalog: the bundled contracts/units.yaml, or another file with the same shape."""
    if path is None:
        return _load_bundled()
    return parse_units(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
