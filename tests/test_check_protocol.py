"""`screening-audit check-protocol`: a protocol author's mistakes, each with its file and line, through
the installed CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from contracts.protocol import bundled_protocol_path
from contracts.protocol_lint import Level, lint_protocol
from tests.support import amended

CLI = str(Path(sys.executable).with_name("screening-audit"))


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "check-protocol", *args], capture_output=True, text=True, timeout=120, check=False)


def _line(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if fragment in line)


def test_the_shipped_protocol_and_the_amended_one_are_clean(tmp_path):
    assert lint_protocol(bundled_protocol_path()) == []
    folder = amended.write_protocol(tmp_path / "sz003")
    result = _check(str(folder))
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    assert "0 error(s), 0 warning(s)" in result.stderr


def test_every_kind_of_mistake_with_file_and_line(tmp_path):
    folder = amended.write_protocol(tmp_path / "sz003")
    v2 = folder / "sz003-v2.yaml"
    text = v2.read_text(encoding="utf-8")
    text = text.replace("  hbv_dna_limit_iu_ml: 200\n", "  hbv_dna_limit_iu_ml: 200\n  afp_limit: 400\n")
    text = text.replace("      - id: IN13\n        text: HBA1C <= 6.5 %\n        rule: {kind: threshold, domain: LB, "
                        "test: HBA1C,", "      - id: IN13\n        text: HBA1C <= 6.5 %\n        rule: {kind: "
                        "threshold, domain: LB, test: HBA1CX,")
    text = text.replace("  - id: IN13\n", "  - id: IN13_GLYCAEMIA\n")
    v2.write_text(text, encoding="utf-8")
    result = _check(str(folder / "sz003-v1.yaml"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines == [
        f"{v2}:{_line(v2, 'IN13_GLYCAEMIA')}: criteria[12].id: error: the IE checklist cannot answer "
        "'IN13_GLYCAEMIA': IETESTCD is at most 8 letters, digits or underscores, starting with a letter",
        f"{v2}:{_line(v2, 'HBA1CX')}: criteria[12].components[0].rule: error: LB HBA1CX is not in the unit "
        "catalog: its values could never be converted (every one UNKNOWN_UNIT)",
        f"{v2}:{_line(v2, 'afp_limit')}: parameters.afp_limit: warning: parameter afp_limit is not referenced by "
        "any rule ($afp_limit)",
    ]
    assert "2 error(s), 1 warning(s)" in result.stderr


def test_overlapping_versions_and_schema_errors_are_errors(tmp_path):
    folder = amended.write_protocol(tmp_path / "sz003")
    v2 = folder / "sz003-v2.yaml"
    v2.write_text(v2.read_text(encoding="utf-8").replace("effective: 2025-03-15", "effective: 2024-01-01"),
                  encoding="utf-8")
    result = _check(str(folder))
    assert result.returncode == 1
    line = _line(v2, "version:")
    expected = f"{v2}:{line}: version.effective: error: versions 1.0 and 2.0 both take effect on 2024-01-01"
    assert expected in result.stdout
    v2.write_text(amended.version_2_text().replace('op: ">=", limit: 50', 'op: "=>", limit: 50'), encoding="utf-8")
    result = _check(str(v2))
    assert result.returncode == 1
    line = _line(v2, 'op: "=>"')
    assert f"{v2}:{line}: criteria[9].components[1].rule.op: error: Input should be" in result.stdout


def test_a_draft_is_checked_against_the_versions_in_force(tmp_path):
    folder = amended.write_protocol(tmp_path / "sz003")
    draft = folder / "draft.yaml"
    draft.write_text(amended.draft_text().replace("effective: 2027-01-01", "effective: 2025-03-15"), encoding="utf-8")
    findings = lint_protocol(draft)
    assert [f.level for f in findings] == [Level.ERROR]
    assert "both take effect on 2025-03-15" in findings[0].message
    assert {"2.0", "3.0"} <= set(findings[0].message.split())
    draft.write_text(amended.draft_text(), encoding="utf-8")
    warnings = [f.line() for f in lint_protocol(draft)]
    assert warnings == [f"{draft}:{_line(draft, 'test: HCVGT')}: criteria[28].components[0].rule: warning: LB HCVGT "
                        "is not a qualitative test of the unit catalog: results are read as written (REACTIVE would "
                        "not read as POSITIVE)"]
