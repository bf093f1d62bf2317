"""JSON Schemas of the YAML files a study's data manager or protocol author writes, from their models.

Published under docs/schemas/ so that an editor (VS Code's YAML extension, JetBrains IDEs) checks a file
as it is typed: a protocol file starts with
`# yaml-language-server: $schema=<path or URL>/protocol.schema.json`. The schemas are generated from the
same pydantic models the loaders validate with, never written by hand, and a test checks that the
published files are up to date (`screening-audit schemas` rewrites them).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from checks.comparison.process_config import ProcessChecksFile
from contracts.policy import Policy
from contracts.protocol import ProtocolFile
from contracts.units import UnitsFile
from expectations.spec import SuitesFile
from flows.config import StudyConfig
from review.machine import MachineFile

#: file name (without .schema.json) -> the model of that file
SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "protocol": (ProtocolFile, "One version of a protocol: criteria, components and rule trees (docs/criteria.md)"),
    "units": (UnitsFile, "The unit catalog (contracts/units.yaml, or a study's own)"),
    "process-checks": (ProcessChecksFile, "Process checks: which run, severities, parameters "
                                          "(checks/comparison/process_checks.yaml, or a study's own)"),
    "policy": (Policy, "Discrepancy policy: severities and SDTM DV terms (contracts/policy.yaml, or a study's own)"),
    "suites": (SuitesFile, "Validation suites' wording and actions (expectations/suites.yaml)"),
    "study": (StudyConfig, "A study's configuration (deploy/studies/*.yaml)"),
    "review-states": (MachineFile, "The review's states, actions and transitions (review/states.yaml, docs/review.md)"),
}

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema(name: str) -> dict:
    model, title = SCHEMAS[name]
    body = model.model_json_schema(mode="validation")
    return {"$schema": DRAFT, "$id": f"{name}.schema.json", **body, "title": title}


def schema_text(name: str) -> str:
    return json.dumps(schema(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def default_folder() -> Path:
    return Path(__file__).resolve().parents[1] / "docs" / "schemas"


def write_schemas(folder: Path | None = None) -> list[Path]:
    """Write every schema into `folder` (default: docs/schemas of this source tree); return the paths."""
    folder = folder or default_folder()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = folder / f"{name}.schema.json"
        path.write_text(schema_text(name), encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(folder: Path | None = None) -> list[str]:
    """The schema files in `folder` that differ from what the models give (missing ones included)."""
    folder = folder or default_folder()
    return [name for name in SCHEMAS
            if not (folder / f"{name}.schema.json").is_file()
            or (folder / f"{name}.schema.json").read_text(encoding="utf-8") != schema_text(name)]


if __name__ == "__main__":
    for written in write_schemas():
        print(written)
