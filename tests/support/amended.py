"""A two-version SZ003 and five subjects around its amendment, for the versions tests.

Version 2.0 (effective 2025-03-15) relaxes IN10.PLT from >= 60 to >= 50 x10^9/L and adds IN13
(HbA1c <= 6.5 %). The subjects, all enrolled with PLT or HbA1c chosen on either side of the limits:

| subject | consent | version | PLT | HbA1c | IE checklist |
|---|---|---|---|---|---|
| V1-PLT55 | 2025-02-09 | 1.0 | 55 | 7.2 | 1.0's, IN10 = Y, and an IN13 = N the 1.0 form has no place for |
| V2-PLT55 | 2025-03-31 | 2.0 | 55 | 5.6 | 2.0's, all passing |
| SPAN-PLT55 | 2025-03 | 1.0 or 2.0 | 55 | 5.6 | 2.0's, all passing |
| SPAN-PLT70 | 2025-03 | 1.0 or 2.0 | 70 | 7.2 | 2.0's, all passing |
| V2-HBA1C72 | 2025-04-01 | 2.0 | 180 | 7.2 | 1.0's (no IN13 answer) |
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from contracts.protocol import bundled_protocol_path
from tests.support.sample_subject import subject_rows

AMENDMENT = date(2025, 3, 15)
V1_CRITERIA = [f"IN{i:02d}" for i in range(1, 13)] + [f"EX{i:02d}" for i in range(1, 17)]
V2_CRITERIA = [*V1_CRITERIA[:12], "IN13", *V1_CRITERIA[12:]]

_IN13 = """
  - id: IN13
    category: INCLUSION
    kind: C
    text: HbA1c <= 6.5 % (added by amendment 2.0)
    components:
      - id: IN13
        text: HBA1C <= 6.5 %
        rule: {kind: threshold, domain: LB, test: HBA1C, op: "<=", limit: 6.5}
"""


def version_2_text() -> str:
    """The bundled SZ003 as amended: version 2.0, PLT >= 50, IN13 added after IN12."""
    text = bundled_protocol_path().read_text(encoding="utf-8")
    replaced = {
        'version: {tivers: "1.0", effective: 2024-01-01}': 'version: {tivers: "2.0", effective: 2025-03-15}',
        "text: PLAT >= 60 x10^9/L": "text: PLAT >= 50 x10^9/L (amendment 2.0)",
        '{kind: threshold, domain: LB, test: PLAT, op: ">=", limit: 60}':
            '{kind: threshold, domain: LB, test: PLAT, op: ">=", limit: 50}',
        "\n  - id: EX01\n": _IN13 + "\n  - id: EX01\n",
    }
    for old, new in replaced.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def write_protocol(folder: Path) -> Path:
    """sz003-v1.yaml (the bundled file) and sz003-v2.yaml in `folder`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sz003-v1.yaml").write_text(bundled_protocol_path().read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "sz003-v2.yaml").write_text(version_2_text(), encoding="utf-8")
    return folder


#: (USUBJID, CHECK_ID, CLASS, SEVERITY) the audit must find for the five subjects as of 2025-06-01
DISCREPANCIES = [
    ("SPAN-PLT55", "IN10.PLT", "UNVERIFIABLE", "QUERY"),  # 55: NOT_MET under 1.0, MET under 2.0
    ("SPAN-PLT70", "IN13", "UNVERIFIABLE", "QUERY"),  # HbA1c 7.2 fails 2.0's IN13, which 1.0 does not have
    ("V1-PLT55", "IN10", "IE_MISMATCH", "IMPORTANT"),
    ("V1-PLT55", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT"),
    ("V2-HBA1C72", "IN13", "INELIGIBLE_ENROLLED", "IMPORTANT"),
    ("V2-HBA1C72", "PC04", "PROCESS", "QUERY"),  # 2.0's IN13 not answered (the 1.0 form was used)
]


def _subject(usubjid: str, start: date, plat: str, hba1c: str, consent: str | None = None) -> dict[str, list[dict]]:
    rows = subject_rows(usubjid=usubjid, start=start)
    for row in rows["lb"]:
        if row["LBTESTCD"] == "PLAT":
            row["LBORRES"] = plat
        if row["LBTESTCD"] == "HBA1C":
            row["LBORRES"] = hba1c
    if consent is not None:
        rows["dm"][0]["RFICDTC"] = consent
        rows["ds"][0]["DSSTDTC"] = consent
    return rows


def _checklist(usubjid: str, criteria: list[str], **answers: str) -> list[dict]:
    return [{"STUDYID": "SZ003", "USUBJID": usubjid, "IETESTCD": c,
             "IECAT": "INCLUSION" if c.startswith("IN") else "EXCLUSION",
             "IEORRES": answers.get(c, "Y" if c.startswith("IN") else "N"), "IEDTC": "2025-03-01"}
            for c in [*criteria, *[a for a in answers if a not in criteria]]]


def subjects() -> list[dict[str, list[dict]]]:
    """The five subjects of the module docstring, with their IE checklists."""
    cases = [
        (_subject("V1-PLT55", date(2025, 3, 1), "55", "7.2"), _checklist("V1-PLT55", V1_CRITERIA, IN13="N")),
        (_subject("V2-PLT55", date(2025, 4, 20), "55", "5.6"), _checklist("V2-PLT55", V2_CRITERIA)),
        (_subject("SPAN-PLT55", date(2025, 4, 10), "55", "5.6", consent="2025-03"),
         _checklist("SPAN-PLT55", V2_CRITERIA)),
        (_subject("SPAN-PLT70", date(2025, 4, 10), "70", "7.2", consent="2025-03"),
         _checklist("SPAN-PLT70", V2_CRITERIA)),
        (_subject("V2-HBA1C72", date(2025, 4, 21), "180", "7.2"), _checklist("V2-HBA1C72", V1_CRITERIA)),
    ]
    for rows, checklist in cases:
        rows["ie"] = checklist
    return [rows for rows, _ in cases]


_EX17 = """
  - id: EX17
    category: EXCLUSION
    kind: C
    text: HCV genotype 3 (draft)
    components:
      - id: EX17
        text: LB HCVGT = 3 (asked of HCV antibody positive subjects)
        applies_when: {kind: coded, domain: LB, test: HCVAB, values: [POSITIVE], valid: [POSITIVE, NEGATIVE]}
        rule: {kind: coded, domain: LB, test: HCVGT, values: ["3"]}
"""


def draft_text() -> str:
    """A draft amendment 3.0 of the bundled SZ003, for what-if: KPS >= 70 (was 80), HGB >= 7.5 g/dL (was
    9.0), PLT >= 50 (was 60), and a new exclusion EX17 reading a test sites do not deliver (HCV genotype,
    asked of HCV antibody positive subjects)."""
    text = bundled_protocol_path().read_text(encoding="utf-8")
    replaced = {
        'version: {tivers: "1.0", effective: 2024-01-01}':
            'version: {tivers: "3.0", effective: 2027-01-01}\ndraft: true',
        '{kind: threshold, domain: FA, test: KPS, op: ">=", limit: 80}':
            '{kind: threshold, domain: FA, test: KPS, op: ">=", limit: 70}',
        '{kind: threshold, domain: LB, test: HGB, op: ">=", limit: 9.0}':
            '{kind: threshold, domain: LB, test: HGB, op: ">=", limit: 7.5}',
        '{kind: threshold, domain: LB, test: PLAT, op: ">=", limit: 60}':
            '{kind: threshold, domain: LB, test: PLAT, op: ">=", limit: 50}',
    }
    for old, new in replaced.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text.rstrip("\n") + "\n" + _EX17


def write_landing(root: Path, *, site: str = "101", delivery: str = "20250531T220000Z") -> Path:
    """The five subjects as one site's CSV delivery (every DTS variable as a column, manifest last) in a
    landing folder `root`; returns `root`."""
    from contracts.domains import DOMAINS
    from storage import LocalStore
    from tests.support.delivery_writer import DeliveryFile, encode_csv, write_delivery

    merged: dict[str, list[dict]] = {}
    for subject in subjects():
        for domain, rows in subject.items():
            merged.setdefault(domain, []).extend(rows)
    files = []
    for code, spec in DOMAINS.items():
        rows = merged.get(code, [])
        columns = list(spec.variables)
        frame = pl.DataFrame([{c: row.get(c, "") for c in columns} for row in rows],
                             schema=dict.fromkeys(columns, pl.String))
        files.append(DeliveryFile(f"{code}.csv", encode_csv(frame), frame.height))
    write_delivery(LocalStore(root), "SZ003", site, delivery, files)
    return root
