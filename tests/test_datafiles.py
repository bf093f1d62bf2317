"""Every YAML file through its pydantic model: errors name the file and the line; the JSON Schemas
published for editors are generated from the same models and accept the shipped files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from checks.comparison.process_config import ProcessConfigError, parse_process_checks_text
from contracts.datafile import DataFileError, bundled_path
from contracts.policy import PolicyError, parse_policy_text
from contracts.protocol import ProtocolError, bundled_protocol_path, parse_protocol_text
from contracts.units import UnitCatalogError, parse_units_text
from expectations.spec import SuiteConfigError, parse_suites_text
from flows.schemas import SCHEMAS, default_folder, schema, stale_schemas

ROOT = Path(__file__).resolve().parents[1]
TYPO = " (a typo, or not part of this file's format)"
ISO_DATE = 'iso_date:\n    meaning: "{variable} is an ISO 8601 date (YYYY, YYYY-MM, YYYY-MM-DD, optionally with time)"'
SHIPPED = {
    "protocol": bundled_protocol_path(),
    "units": Path(bundled_path("contracts", "units.yaml")),
    "process-checks": Path(bundled_path("checks.comparison", "process_checks.yaml")),
    "policy": Path(bundled_path("contracts", "policy.yaml")),
    "suites": Path(bundled_path("expectations", "suites.yaml")),
    "study": ROOT / "deploy" / "studies" / "sz003.yaml",
    "review-states": Path(bundled_path("review", "states.yaml")),
}


def _edited(path: Path, old: str, new: str) -> tuple[str, int]:
    """The file with `old` replaced by `new`, and the line of `new`'s last line (where the mistake is)."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    start = text.index(old)
    return text.replace(old, new), text[:start].count("\n") + new.count("\n") + 1


@pytest.mark.parametrize(("name", "parse", "error", "old", "new", "expected"), [
    ("protocol", parse_protocol_text, ProtocolError,
     '{kind: threshold, domain: LB, test: PLAT, op: ">=", limit: 60}',
     '{kind: threshold, domain: LB, test: PLAT, op: "=>", limit: 60}',
     "criteria[9].components[1].rule.op: Input should be '>=', '>', '<=' or '<'"),
    ("protocol", parse_protocol_text, ProtocolError, "    kind: C\n    text: KPS >= 80",
     "    kind: C\n    txt: KPS >= 80",
     "criteria[6].txt: unknown key 'txt'" + TYPO),
    ("units", parse_units_text, UnitCatalogError, "      accepted: {g/dL: 1, g/L: {divide: 10}, mmol/L: 1.611}",
     "      accepted: {g/dL: 1, g/L: {divide: 10}, mmol/L: 1.611}\n      plausble: [2, 25]",
     "tests.LB.HGB.plausble: unknown key 'plausble'" + TYPO),
    ("policy", parse_policy_text, PolicyError, "    title: enrolled subject with a component the delivered data "
     "cannot decide\n    severity: QUERY", "    title: enrolled subject with a component the delivered data "
     "cannot decide\n    severity: URGENT", "classes.UNVERIFIABLE.severity: Input should be 'IMPORTANT' or 'QUERY'"),
    ("process-checks", parse_process_checks_text, ProcessConfigError, "      relative_tolerance: 0.10",
     "      relative_tolerance: 0.10\n      threshold: 40",
     "checks.PC06.params.threshold: unknown key 'threshold'" + TYPO),
    ("suites", parse_suites_text, SuiteConfigError, ISO_DATE + "\n    action: exclude",
     ISO_DATE + "\n    action: skip",
     "checks.iso_date.action: Input should be 'finding', 'exclude' or 'reject'"),
])
def test_an_error_names_the_file_and_the_line(name, parse, error, old, new, expected):
    text, line = _edited(SHIPPED[name], old, new)
    with pytest.raises(error) as raised:
        parse(text, f"study/{name}.yaml")
    assert isinstance(raised.value, DataFileError)
    assert str(raised.value) == f"study/{name}.yaml:{line}: {expected}"


def test_a_yaml_syntax_error_names_the_line():
    with pytest.raises(ProtocolError, match=r"^p.yaml:3: not valid YAML"):
        parse_protocol_text("id: SZ003\nversion: {tivers: 1\ncriteria: [\n", "p.yaml")


def test_an_unknown_parameter_reference_names_the_line():
    text, line = _edited(bundled_protocol_path(), "limit: $hbv_dna_limit_iu_ml}\n      - id: IN09.TX",
                         "limit: $hbv_limit}\n      - id: IN09.TX")
    line -= 1  # the mistake is on the first line of the replacement
    with pytest.raises(ProtocolError, match=rf"^p.yaml:{line}: criteria\[8\].components\[0\].rule.limit: unknown "
                                            r"parameter \$hbv_limit"):
        parse_protocol_text(text, "p.yaml")


# --------------------------------------------------------------------------------------- JSON Schemas


def test_the_published_schemas_are_generated_from_the_models():
    assert stale_schemas() == [], "run `screening-audit schemas` and commit docs/schemas"
    assert sorted(p.name for p in default_folder().glob("*.schema.json")) == sorted(
        f"{name}.schema.json" for name in SCHEMAS)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_shipped_files_follow_their_schema(name):
    document = yaml.safe_load(SHIPPED[name].read_text(encoding="utf-8"))
    document = json.loads(json.dumps(document, default=str))  # YAML dates as the ISO text an editor sees
    jsonschema.Draft202012Validator(schema(name)).validate(document)


def test_an_editor_flags_a_typo_with_the_schema():
    document = json.loads(json.dumps(yaml.safe_load(bundled_protocol_path().read_text(encoding="utf-8")),
                                     default=str))
    document["criteria"][9]["components"][1]["rule"]["op"] = "=>"
    document["criteria"][0]["colour"] = "blue"
    errors = list(jsonschema.Draft202012Validator(schema("protocol")).iter_errors(document))
    assert errors
    assert {tuple(error.absolute_path)[:2] for error in errors} >= {("criteria", 9), ("criteria", 0)}
