"""A small, fully eligible SZ003 subject as delivered text, for tests, documentation and examples.

`subject_rows()` gives one subject's rows per domain (every value a string, as ingestion delivers),
`frames()` turns the rows of several subjects into the `domains` mapping evaluate() takes. Tests
change one value at a time to reach each boundary; nothing here is used by the audit itself.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

MH_TERMS = (
    "UNCONTROLLED ACTIVE INFECTION", "ACTIVE VIRAL OR BACTERIAL INFECTION", "PRIOR MALIGNANCY",
    "NONMELANOMA SKIN CANCER", "CERVICAL CARCINOMA IN SITU", "ENCEPHALOPATHY", "HIV INFECTION",
    "DIABETES MELLITUS", "HEART FAILURE", "MYOCARDIAL INFARCTION", "UNSTABLE ARRHYTHMIA", "UNSTABLE ANGINA",
    "PULMONARY EMBOLISM", "COPD", "INTERSTITIAL LUNG DISEASE", "GASTRIC ULCER", "GASTROINTESTINAL BLEEDING",
    "BLEEDING TENDENCY", "AUTOIMMUNE DISEASE", "SOLID ORGAN TRANSPLANT", "ORGAN TRANSPLANT WAITLIST",
    "ALLERGY TO STUDY COMPOUNDS",
)

#: LB test -> (result, unit, ULN) of the eligible subject, in the protocol or a common unit
LB_VALUES: dict[str, tuple[str, str, str]] = {
    "WBC": ("5.1", "10^9/L", "10"), "PLAT": ("180", "10^9/L", "400"), "HGB": ("12.5", "g/dL", "17"),
    "LYM": ("1.5", "10^9/L", "4"), "LYMLE": ("30", "%", "45"), "ALB": ("38", "g/L", "50"),
    "LIPASE": ("40", "U/L", "60"), "AMYLASE": ("70", "U/L", "100"), "CREAT": ("0.9", "mg/dL", "1.2"),
    "ALT": ("45", "U/L", "40"), "AST": ("50", "U/L", "40"), "BILI": ("1.1", "mg/dL", "1.2"),
    "PT": ("13", "s", "12"), "HBA1C": ("5.6", "%", "6"),
    "HBSAG": ("NEGATIVE", "", ""), "HBCAB": ("NEGATIVE", "", ""), "HCVAB": ("NEGATIVE", "", ""),
    "HIV12AB": ("NEGATIVE", "", ""), "HCG": ("NEGATIVE", "", ""),
}

FA_VALUES: dict[str, tuple[str, str]] = {
    "HISTCONF": ("Y", ""), "BCLC": ("C", ""), "LRTXINEL": ("N", ""), "SURGSUIT": ("N", ""), "STDTXPI": ("Y", ""),
    "GPC3IHC": ("POSITIVE", ""), "KPS": ("90", ""), "LIFEEXP": ("24", "weeks"), "VSSTABLE": ("Y", ""),
    "LVEF": ("60", "%"), "FEV1PP": ("85", "%"), "ASCDEPTH": ("0", "cm"), "LIVTUMPC": ("30", "%"),
    "VASCOCCL": ("N", ""), "PREGNANT": ("N", ""), "LACTAT": ("N", ""), "CONSENTA": ("Y", ""), "INVJUDG": ("Y", ""),
}


def subject_rows(usubjid: str = "SZ003-101-001", site: str = "101", start: date = date(2025, 3, 1),
                 decision: str = "ENROLLED", sex: str = "M", birth: str = "1960-05-10") -> dict[str, list[dict]]:
    """One eligible subject: consent 20 days and all screening results 7 days before treatment start."""
    consent = (start - timedelta(days=20)).isoformat()
    screen = (start - timedelta(days=7)).isoformat()
    common = {"STUDYID": "SZ003", "USUBJID": usubjid}
    dosed = start.isoformat() if decision == "ENROLLED" else ""
    rows: dict[str, list[dict]] = {
        "dm": [{**common, "SITEID": site, "SUBJID": usubjid[-3:], "BRTHDTC": birth, "SEX": sex, "RFICDTC": consent,
                "RFXSTDTC": dosed, "AGE": "", "COUNTRY": "CHN"}],
        "ds": [{**common, "DSCAT": "PROTOCOL MILESTONE", "DSDECOD": "INFORMED CONSENT OBTAINED", "DSTERM": "",
                "DSSTDTC": consent}]
        + ([{**common, "DSCAT": "PROTOCOL MILESTONE", "DSDECOD": decision, "DSTERM": "",
             "DSSTDTC": start.isoformat()}] if decision in ("ENROLLED", "SCREEN FAILURE") else []),
        "lb": [{**common, "LBTESTCD": test, "LBORRES": result, "LBORRESU": unit, "LBORNRLO": "", "LBORNRHI": uln,
                "LBSTAT": "", "LBDTC": screen} for test, (result, unit, uln) in LB_VALUES.items()],
        "vs": [{**common, "VSTESTCD": "WEIGHT", "VSORRES": "70", "VSORRESU": "kg", "VSDTC": screen}],
        "fa": [{**common, "FATESTCD": test, "FAORRES": result, "FAORRESU": unit, "FADTC": screen}
               for test, (result, unit) in FA_VALUES.items()],
        "mh": [{**common, "MHTERM": term, "MHOCCUR": "N", "MHSTDTC": "", "MHENDTC": "", "MHENRF": ""}
               for term in MH_TERMS],
        "cm": [],
        "pr": [],
        "tu": [{**common, "TULNKID": "T01", "TUTESTCD": "TUMIDENT", "TUORRES": "TARGET", "TULOC": "LIVER",
                "TUDTC": screen}],
        "tr": [{**common, "TRLNKID": "T01", "TRTESTCD": "LDIAM", "TRORRES": "35", "TRORRESU": "mm", "TRDTC": screen}],
        "ie": [],
    }
    return rows


def frames(*subjects: dict[str, list[dict]], site: str | None = None, decimal: str = ".") -> dict[str, pl.DataFrame]:
    """Domain -> frame of all subjects' rows, all columns text, plus the ingestion columns (SOURCE_KEY,
    SOURCE_ROW, DELIVERY_SITEID, DECIMAL).

    A row may carry its own "DECIMAL" ("," for a decimal-comma file); SOURCE_ROW numbers rows per domain.
    """
    merged: dict[str, list[dict]] = {}
    for subject in subjects:
        for domain, rows in subject.items():
            merged.setdefault(domain, []).extend(rows)
    out: dict[str, pl.DataFrame] = {}
    for domain, rows in merged.items():
        columns = [c for c in dict.fromkeys(c for row in rows for c in row) if c != "DECIMAL"]
        columns = columns or ["STUDYID", "USUBJID"]
        data = {c: [row.get(c) for row in rows] for c in columns}
        frame = pl.DataFrame(data, schema=dict.fromkeys(columns, pl.String))
        sites = [site or _site_of(row, subjects) for row in rows]
        out[domain] = frame.with_columns(
            pl.Series("SOURCE_KEY", [f"SZ003/{s}/20250301T000000Z/{domain}.csv" for s in sites], dtype=pl.String),
            pl.Series("SOURCE_ROW", list(range(1, len(rows) + 1)), dtype=pl.Int64),
            pl.Series("DELIVERY_SITEID", sites, dtype=pl.String),
            pl.Series("DECIMAL", [row.get("DECIMAL", decimal) for row in rows], dtype=pl.String),
        )
    return out


def _site_of(row: dict, subjects: tuple[dict[str, list[dict]], ...]) -> str:
    for subject in subjects:
        dm = subject.get("dm") or []
        if dm and dm[0]["USUBJID"] == row.get("USUBJID"):
            return str(dm[0]["SITEID"])
    return ""
