"""The layer contract (pyproject.toml, [tool.importlinter]) holds, and it bites on a wrong import.

`lint-imports` checks that every package imports only packages below it (contracts, core, storage,
ingestion, expectations, checks, publication, review, reporting | generator | runtime, flows), that evaluation
never imports the comparison, that the generator imports nothing of the product it feeds, and that no
package's modules import each other in a circle. The second test copies the packages, plants one
upward import and one cycle, and expects the contract to name both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = str(Path(sys.executable).with_name("lint-imports"))
PACKAGES = ("contracts", "core", "storage", "ingestion", "expectations", "checks", "publication", "review",
            "reporting", "generator", "runtime", "notify", "flows")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copies under `root` are found before the installed tree
    return subprocess.run([LINT, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_layer_contract_holds() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_a_wrong_import_breaks_the_contract(tmp_path: Path) -> None:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # an upward import: the shared core reaching into a stage
    values = tmp_path / "core" / "values.py"
    values.write_text(values.read_text() + "\nfrom checks.comparison import evidence  # noqa: E402\n")
    # a cycle between two sibling modules of one package
    safety = tmp_path / "core" / "safety.py"
    safety.write_text(safety.read_text() + "\nimport core.source  # noqa: E402\n")
    source = tmp_path / "core" / "source.py"
    source.write_text(source.read_text() + "\nimport core.safety  # noqa: E402\n")

    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "Stages in order: each package imports only packages below it BROKEN" in result.stdout
    assert "core.values -> checks.comparison" in result.stdout
    assert "No import cycles between the modules or subpackages of any package BROKEN" in result.stdout
