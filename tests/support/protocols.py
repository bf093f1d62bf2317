"""Protocol files for studies other than SZ003: a study is audited against its own protocol only.

Tests that need a second study copy the bundled SZ003 criteria under the study's id (the criteria
do not matter to them; the id does: contracts.protocol.load_study_protocol refuses any other).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

BUNDLED = Path(str(resources.files("contracts").joinpath("protocols", "sz003.yaml")))


def protocol_text(study: str) -> str:
    """The bundled protocol's text with `id:` set to `study`."""
    return re.sub(r"(?m)^id: SZ003$", f"id: {study}", BUNDLED.read_text(encoding="utf-8"), count=1)


def write_protocol(folder: Path, study: str) -> Path:
    """`<folder>/<study>.yaml`, a protocol whose id is `study`; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{study.lower()}.yaml"
    path.write_text(protocol_text(study), encoding="utf-8")
    return path
