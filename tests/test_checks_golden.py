"""Golden outcomes for every SZ003 component: boundaries on each side, each accepted unit, missing and
out-of-window data, partial dates and censored values.

Each case is the sample eligible subject (tests.support.sample_subject) with one or two edits; all cases are
evaluated together in one evaluate() call (that is also how the audit runs), then each case asserts
its component's OUTCOME, REASON_CODE and, where it matters, VALUE / UNIT / LIMIT.
Treatment start is 2025-03-01, so the screening window is 2025-02-01..2025-03-01 and the sample's
results are dated 2025-02-22; consent is 2025-02-09.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import polars as pl
import pytest

from checks.evaluation import evaluate
from contracts.protocol import load_protocol
from core.source import source_text
from tests.support.sample_subject import frames, subject_rows

Rows = dict[str, list[dict]]
Edit = Callable[[Rows], None]
SCREEN = "2025-02-22"
AS_OF = date(2025, 6, 1)


# ------------------------------------------------------------------------------------------- edits


def _find(rows: list[dict], column: str, value: str) -> list[dict]:
    return [row for row in rows if row.get(column) == value]


def lb(test: str, result: str, unit: str | None = None, uln: str | None = None, dtc: str = SCREEN,
       stat: str = "", decimal: str | None = None, add: bool = False) -> Edit:
    """Replace (or, with add, add) the subject's LB row of `test`."""
    def edit(rows: Rows) -> None:
        template = dict(_find(rows["lb"], "LBTESTCD", test)[0]) if _find(rows["lb"], "LBTESTCD", test) else {
            "STUDYID": "SZ003", "USUBJID": rows["dm"][0]["USUBJID"], "LBTESTCD": test, "LBORNRLO": "",
            "LBORNRHI": "", "LBORRESU": ""}
        if not add:
            rows["lb"] = [row for row in rows["lb"] if row["LBTESTCD"] != test]
        new = {**template, "LBORRES": result, "LBDTC": dtc, "LBSTAT": stat}
        if unit is not None:
            new["LBORRESU"] = unit
        if uln is not None:
            new["LBORNRHI"] = uln
        if decimal is not None:
            new["DECIMAL"] = decimal
        rows["lb"].append(new)
    return edit


def drop(domain: str, column: str, value: str) -> Edit:
    def edit(rows: Rows) -> None:
        rows[domain] = [row for row in rows[domain] if row.get(column) != value]
    return edit


def fa(test: str, result: str, unit: str | None = None, dtc: str = SCREEN) -> Edit:
    def edit(rows: Rows) -> None:
        old = _find(rows["fa"], "FATESTCD", test)
        rows["fa"] = [row for row in rows["fa"] if row["FATESTCD"] != test]
        rows["fa"].append({**old[0], "FAORRES": result, "FADTC": dtc,
                           **({"FAORRESU": unit} if unit is not None else {})})
    return edit


def vs(test: str, result: str, unit: str, dtc: str = SCREEN) -> Edit:
    def edit(rows: Rows) -> None:
        rows["vs"] = [row for row in rows["vs"] if row["VSTESTCD"] != test]
        rows["vs"].append({"STUDYID": "SZ003", "USUBJID": rows["dm"][0]["USUBJID"], "VSTESTCD": test,
                           "VSORRES": result, "VSORRESU": unit, "VSDTC": dtc})
    return edit


def mh(term: str, occur: str, start: str = "", end: str = "", enrf: str = "") -> Edit:
    def edit(rows: Rows) -> None:
        rows["mh"] = [row for row in rows["mh"] if row["MHTERM"] != term]
        rows["mh"].append({"STUDYID": "SZ003", "USUBJID": rows["dm"][0]["USUBJID"], "MHTERM": term,
                           "MHOCCUR": occur, "MHSTDTC": start, "MHENDTC": end, "MHENRF": enrf})
    return edit


def cm(category: str, decod: str, start: str, end: str = "", enrf: str = "") -> Edit:
    def edit(rows: Rows) -> None:
        rows["cm"].append({"STUDYID": "SZ003", "USUBJID": rows["dm"][0]["USUBJID"], "CMTRT": decod.lower(),
                           "CMDECOD": decod, "CMCAT": category, "CMSTDTC": start, "CMENDTC": end, "CMENRF": enrf})
    return edit


def pr(category: str, treatment: str, start: str, end: str, outcome: str = "") -> Edit:
    def edit(rows: Rows) -> None:
        rows["pr"].append({"STUDYID": "SZ003", "USUBJID": rows["dm"][0]["USUBJID"], "PRTRT": treatment,
                           "PRCAT": category, "PRSTDTC": start, "PRENDTC": end, "PROUTC": outcome})
    return edit


def dm(**values: str) -> Edit:
    def edit(rows: Rows) -> None:
        rows["dm"][0].update(values)
    return edit


def lesion(link: str, location: str, response: str, test: str, result: str, unit: str = "mm",
           dtc: str = SCREEN) -> Edit:
    """Replace the subject's lesions by one lesion with one measurement."""
    def edit(rows: Rows) -> None:
        subject = rows["dm"][0]["USUBJID"]
        rows["tu"] = [{"STUDYID": "SZ003", "USUBJID": subject, "TULNKID": link, "TUTESTCD": "TUMIDENT",
                       "TUORRES": response, "TULOC": location, "TUDTC": dtc}]
        rows["tr"] = [{"STUDYID": "SZ003", "USUBJID": subject, "TRLNKID": link, "TRTESTCD": test, "TRORRES": result,
                       "TRORRESU": unit, "TRDTC": dtc}]
    return edit


HBV = [lb("HBSAG", "POSITIVE"), cm("ANTI-HBV THERAPY", "ENTECAVIR", "2025-01-10", enrf="ONGOING"),
       lb("HBVDNA", "150", "IU/mL")]
CRCL_40 = [dm(BRTHDTC="1956-05-10"), vs("WEIGHT", "40", "kg"), lb("CREAT", "1.0", "mg/dL", "1.2")]  # age 68

# ------------------------------------------------------------------------------------------- cases
# (case id, edits, component, outcome, reason code, expected evidence subset)

M, NM, A, NA, U = "MET", "NOT_MET", "APPLIES", "NOT_APPLICABLE", "UNVERIFIABLE"

CASES: list[tuple[str, list[Edit], str, str, str | None, dict[str, str]]] = [
    # IN10.WBC >= 2.5 x10^9/L: boundary, units, decimal comma, censoring, dates
    ("wbc-2.5", [lb("WBC", "2.5", "GI/L")], "IN10.WBC", M, None, {"VALUE": "2.5", "UNIT": "10^9/L", "LIMIT": "2.5"}),
    ("wbc-2.49", [lb("WBC", "2.49", "10^9/L")], "IN10.WBC", NM, None, {"VALUE": "2.49"}),
    ("wbc-thou", [lb("WBC", "2.5", "THOU/uL")], "IN10.WBC", M, None, {}),
    ("wbc-k", [lb("WBC", "2.4", "K/uL")], "IN10.WBC", NM, None, {}),
    ("wbc-10e3", [lb("WBC", "2.5", "10^3/uL")], "IN10.WBC", M, None, {}),
    ("wbc-per-ul", [lb("WBC", "2500", "/uL")], "IN10.WBC", M, None, {"VALUE": "2.5"}),
    ("wbc-cells-mm3", [lb("WBC", "2499", "cells/mm3")], "IN10.WBC", NM, None, {"VALUE": "2.499"}),
    ("wbc-comma", [lb("WBC", "2,5", "10^9/L", decimal=",")], "IN10.WBC", M, None, {"VALUE": "2.5"}),
    ("wbc-comma-in-point-file", [lb("WBC", "2,5", "10^9/L")], "IN10.WBC", U, "NOT_NUMERIC", {}),
    ("wbc-below-censored", [lb("WBC", "<2", "10^9/L")], "IN10.WBC", NM, None, {"VALUE": "<2"}),
    ("wbc-above-censored-undecided", [lb("WBC", ">2", "10^9/L")], "IN10.WBC", U, "CENSORED_UNDECIDABLE", {}),
    ("wbc-ge-censored", [lb("WBC", ">=2.5", "10^9/L")], "IN10.WBC", M, None, {"VALUE": ">=2.5"}),
    ("wbc-missing", [drop("lb", "LBTESTCD", "WBC")], "IN10.WBC", U, "MISSING",
     {"VALUE": None, "UNIT": "10^9/L", "LIMIT": "2.5", "SOURCE": None}),
    ("wbc-before-window", [lb("WBC", "5", "10^9/L", dtc="2025-01-31")], "IN10.WBC", U, "ONLY_BEFORE_WINDOW", {}),
    ("wbc-window-start", [lb("WBC", "5", "10^9/L", dtc="2025-02-01")], "IN10.WBC", M, None, {"DTC": "2025-02-01"}),
    ("wbc-on-start-day", [lb("WBC", "5", "10^9/L", dtc="2025-03-01T08:00")], "IN10.WBC", M, None, {}),
    ("wbc-after-start", [lb("WBC", "5", "10^9/L", dtc="2025-03-02")], "IN10.WBC", U, "ONLY_AFTER_START", {}),
    ("wbc-not-done", [lb("WBC", "", "10^9/L", stat="NOT DONE"),
                      lb("WBC", "5", "10^9/L", dtc="2025-01-10", add=True)], "IN10.WBC", U, "NOT_DONE", {}),
    ("wbc-partial-month-inside", [lb("WBC", "5", "10^9/L", dtc="2025-02")], "IN10.WBC", M, None, {}),
    ("wbc-partial-year", [lb("WBC", "5", "10^9/L", dtc="2025")], "IN10.WBC", U, "PARTIAL_DATE_UNDECIDABLE", {}),
    ("wbc-invalid-date", [lb("WBC", "5", "10^9/L", dtc="22/02/2025")], "IN10.WBC", U, "INVALID_DATE", {}),
    ("wbc-no-date", [lb("WBC", "5", "10^9/L", dtc="")], "IN10.WBC", U, "MISSING_DATE", {}),
    ("wbc-unknown-unit", [lb("WBC", "5", "furlongs")], "IN10.WBC", U, "UNKNOWN_UNIT", {}),
    ("wbc-no-unit", [lb("WBC", "5", "")], "IN10.WBC", U, "MISSING_UNIT", {}),
    ("wbc-wrong-dimension", [lb("WBC", "5", "g/dL")], "IN10.WBC", U, "UNIT_NOT_CONVERTIBLE", {}),
    ("wbc-latest-wins-low", [lb("WBC", "5", "10^9/L", dtc="2025-02-10"),
                             lb("WBC", "2", "10^9/L", dtc="2025-02-20", add=True)], "IN10.WBC", NM, None,
     {"VALUE": "2", "DTC": "2025-02-20"}),
    ("wbc-latest-wins-high", [lb("WBC", "2", "10^9/L", dtc="2025-02-10"),
                              lb("WBC", "5", "10^9/L", dtc="2025-02-20", add=True)], "IN10.WBC", M, None,
     {"VALUE": "5"}),
    ("wbc-latest-time", [lb("WBC", "2", "10^9/L", dtc="2025-02-20T09:00"),
                         lb("WBC", "5", "10^9/L", dtc="2025-02-20T07:00", add=True)], "IN10.WBC", NM, None, {}),
    # IN10.PLT >= 60, IN10.HGB >= 9.0 g/dL
    ("plt-60", [lb("PLAT", "60", "10^9/L")], "IN10.PLT", M, None, {"LIMIT": "60"}),
    ("plt-59.9", [lb("PLAT", "59.9", "10^9/L")], "IN10.PLT", NM, None, {}),
    ("plt-per-mm3", [lb("PLAT", "60000", "cells/mm3")], "IN10.PLT", M, None, {"VALUE": "60"}),
    ("hgb-9", [lb("HGB", "9.0", "g/dL")], "IN10.HGB", M, None, {"VALUE": "9", "UNIT": "g/dL"}),
    ("hgb-8.9", [lb("HGB", "8.9", "g/dL")], "IN10.HGB", NM, None, {}),
    ("hgb-gl-90", [lb("HGB", "90", "g/L")], "IN10.HGB", M, None, {"VALUE": "9"}),
    ("hgb-gl-89", [lb("HGB", "89", "g/L")], "IN10.HGB", NM, None, {"VALUE": "8.9"}),
    ("hgb-mmol-5.6", [lb("HGB", "5.6", "mmol/L")], "IN10.HGB", M, None,
     {"VALUE": "9.0216", "DELIVERED": "5.6 mmol/L"}),  # converted: what the site delivered is kept beside it
    ("hgb-mmol-5.5", [lb("HGB", "5.5", "mmol/L")], "IN10.HGB", NM, None, {}),
    # IN10.LYM >= 0.4: LYM, or LYMLE x WBC of the same draw
    ("lym-0.4", [lb("LYM", "0.4", "10^9/L")], "IN10.LYM", M, None, {"VALUE": "0.4", "DELIVERED": None}),
    ("lym-0.39", [lb("LYM", "0.39", "10^9/L")], "IN10.LYM", NM, None, {}),
    ("lym-derived-met", [drop("lb", "LBTESTCD", "LYM"), lb("LYMLE", "20", "%"), lb("WBC", "2.0", "10^9/L")],
     "IN10.LYM", M, None, {"VALUE": "0.4", "UNIT": "10^9/L", "DELIVERED": "LYMLE 20 % x WBC 2.0 10^9/L"}),
    ("lym-derived-fraction", [drop("lb", "LBTESTCD", "LYM"), lb("LYMLE", "0.19", "fraction"),
                              lb("WBC", "2.0", "10^9/L")], "IN10.LYM", NM, None,
     {"VALUE": "0.38", "DELIVERED": "LYMLE 0.19 fraction x WBC 2.0 10^9/L"}),
    ("lym-derived-other-draw", [drop("lb", "LBTESTCD", "LYM"), lb("LYMLE", "20", "%", dtc="2025-02-20"),
                                lb("WBC", "5", "10^9/L", dtc="2025-02-21")], "IN10.LYM", U, "MISSING", {}),
    # IN11 biochemistry: thresholds and ULN multiples (ULN in the same row and unit)
    ("alb-30", [lb("ALB", "30", "g/L")], "IN11.ALB", M, None, {"DELIVERED": None}),  # the protocol unit
    ("alb-29.9", [lb("ALB", "29.9", "g/L")], "IN11.ALB", NM, None, {}),
    ("alb-gdl-3", [lb("ALB", "3.0", "g/dL")], "IN11.ALB", M, None, {"VALUE": "30", "UNIT": "g/L"}),
    ("alb-gdl-2.9", [lb("ALB", "2.9", "g/dL")], "IN11.ALB", NM, None, {}),
    ("alt-5uln", [lb("ALT", "200", "U/L", "40")], "IN11.ALT", M, None, {"LIMIT": "200", "UNIT": "U/L"}),
    ("alt-over", [lb("ALT", "201", "IU/L", "40")], "IN11.ALT", NM, None, {"UNIT": "IU/L"}),
    # x ULN is compared in the row's own unit: the value is what was delivered, nothing to add
    ("alt-ukat", [lb("ALT", "3.5", "ukat/L", "0.7")], "IN11.ALT", M, None,
     {"LIMIT": "3.5", "UNIT": "ukat/L", "DELIVERED": None}),
    ("alt-no-uln", [lb("ALT", "45", "U/L", "")], "IN11.ALT", U, "NO_ULN", {}),
    ("alt-bad-uln", [lb("ALT", "45", "U/L", "<40")], "IN11.ALT", U, "NO_ULN", {}),
    ("ast-over", [lb("AST", "250", "U/L", "40")], "IN11.AST", NM, None, {}),
    ("lipase-1.5uln", [lb("LIPASE", "90", "U/L", "60")], "IN11.LIPASE", M, None, {"LIMIT": "90"}),
    ("amylase-over", [lb("AMYLASE", "151", "U/L", "100")], "IN11.AMYLASE", NM, None, {}),
    ("bili-2.5uln", [lb("BILI", "3.0", "mg/dL", "1.2")], "IN11.BILI", M, None, {"LIMIT": "3"}),
    ("bili-over", [lb("BILI", "3.01", "mg/dL", "1.2")], "IN11.BILI", NM, None, {}),
    ("bili-umol", [lb("BILI", "51.3", "umol/L", "20.5")], "IN11.BILI", NM, None, {"LIMIT": "51.25"}),
    ("bili-umol-ok", [lb("BILI", "51.25", "µmol/L", "20.5")], "IN11.BILI", M, None, {}),
    ("creat-1.5uln", [lb("CREAT", "1.8", "mg/dL", "1.2")], "IN11.CREAT", M, None, {"LIMIT": "1.8"}),
    ("creat-over", [lb("CREAT", "1.81", "mg/dL", "1.2")], "IN11.CREAT", NM, None, {}),
    ("creat-umol", [lb("CREAT", "159", "umol/L", "106")], "IN11.CREAT", M, None, {"LIMIT": "159"}),
    ("pt-6s", [lb("PT", "18", "s", "12")], "IN11.PT", M, None, {"LIMIT": "18", "UNIT": "s"}),
    ("pt-over", [lb("PT", "18.1", "sec", "12")], "IN11.PT", NM, None, {}),
    # IN11.CRCL >= 40 mL/min: (140 - 68) x 40 kg / (72 x 1.0 mg/dL) = 40
    ("crcl-40", CRCL_40, "IN11.CRCL", M, None, {"VALUE": "40", "UNIT": "mL/min", "LIMIT": "40", "DELIVERED": None}),
    ("crcl-below", [*CRCL_40, vs("WEIGHT", "39.9", "kg")], "IN11.CRCL", NM, None, {}),
    ("crcl-female", [*CRCL_40, dm(SEX="F")], "IN11.CRCL", NM, None, {"VALUE": "34"}),
    ("crcl-umol", [*CRCL_40, lb("CREAT", "88.4", "umol/L", "106")], "IN11.CRCL", M, None, {"VALUE": "40"}),
    # computed from several results: no single delivered figure (naming the converted weight would read as
    # if the clearance had been delivered as a weight)
    ("crcl-lb", [*CRCL_40, vs("WEIGHT", "88.2", "lb")], "IN11.CRCL", M, None, {"DELIVERED": None}),
    ("crcl-sex-unknown", [*CRCL_40, dm(SEX="U")], "IN11.CRCL", U, "DERIVED_INPUT_MISSING", {}),
    ("crcl-stale-creat", [*CRCL_40, lb("CREAT", "1.0", "mg/dL", "1.2", dtc="2025-01-01")], "IN11.CRCL", U,
     "ONLY_BEFORE_WINDOW", {}),
    ("crcl-no-weight", [*CRCL_40, drop("vs", "VSTESTCD", "WEIGHT")], "IN11.CRCL", U, "MISSING", {}),
    # IN06 age 18-80 at consent (2025-02-09)
    ("age-18", [dm(BRTHDTC="2007-02-09")], "IN06", M, None, {"VALUE": "18", "LIMIT": "18 to 80"}),
    ("age-17", [dm(BRTHDTC="2007-02-10")], "IN06", NM, None, {"VALUE": "17"}),
    ("age-80", [dm(BRTHDTC="1944-02-10")], "IN06", M, None, {"VALUE": "80"}),
    ("age-81", [dm(BRTHDTC="1944-02-09")], "IN06", NM, None, {}),
    ("age-partial-undecided", [dm(BRTHDTC="2007")], "IN06", U, "PARTIAL_DATE_UNDECIDABLE", {}),
    ("age-partial-decided", [dm(BRTHDTC="2006")], "IN06", M, None, {"VALUE": "18 to 19"}),
    ("age-partial-month", [dm(BRTHDTC="2007-01")], "IN06", M, None, {}),
    ("age-consent-partial", [dm(BRTHDTC="2007-02-15", RFICDTC="2025-02")], "IN06", U, "PARTIAL_DATE_UNDECIDABLE", {}),
    ("age-invalid", [dm(BRTHDTC="09/02/2007")], "IN06", U, "INVALID_DATE", {}),
    ("age-missing", [dm(BRTHDTC="")], "IN06", U, "DERIVED_INPUT_MISSING", {}),
    # IN01-IN04, IN07, IN08, IN12: coded and numeric FA
    ("histconf-n", [fa("HISTCONF", "N")], "IN01", NM, None, {"VALUE": "N"}),
    ("histconf-lower", [fa("HISTCONF", " y ")], "IN01", M, None, {}),
    ("histconf-bad", [fa("HISTCONF", "MAYBE")], "IN01", U, "INVALID_CODE", {}),
    ("histconf-stale", [fa("HISTCONF", "Y", dtc="2024-12-01")], "IN01", U, "ONLY_BEFORE_WINDOW", {}),
    ("bclc-b-ineligible", [fa("BCLC", "B"), fa("LRTXINEL", "Y")], "IN02", M, None, {}),
    ("bclc-b-eligible", [fa("BCLC", "B"), fa("LRTXINEL", "N")], "IN02", NM, None, {}),
    ("bclc-b-unknown", [fa("BCLC", "B"), drop("fa", "FATESTCD", "LRTXINEL")], "IN02", U, "MISSING", {}),
    ("bclc-a", [fa("BCLC", "A")], "IN02", NM, None, {}),
    ("bclc-x", [fa("BCLC", "X")], "IN02", U, "INVALID_CODE", {}),
    ("surgsuit-y", [fa("SURGSUIT", "Y")], "IN03", NM, None, {}),
    ("gpc3-neg", [fa("GPC3IHC", "NEGATIVE")], "IN04", NM, None, {}),
    ("kps-80", [fa("KPS", "80")], "IN07", M, None, {"LIMIT": "80"}),
    ("kps-70", [fa("KPS", "70")], "IN07", NM, None, {}),
    ("kps-text", [fa("KPS", "eighty")], "IN07", U, "NOT_NUMERIC", {}),
    ("vsstable-n", [fa("VSSTABLE", "N")], "IN08.VS", NM, None, {}),
    ("lifeexp-12", [fa("LIFEEXP", "12", "weeks")], "IN08.SURV", M, None, {}),
    ("lifeexp-11.9", [fa("LIFEEXP", "11.9", "weeks")], "IN08.SURV", NM, None, {}),
    ("lifeexp-months", [fa("LIFEEXP", "3", "months")], "IN08.SURV", M, None,
     {"VALUE": "13.035", "UNIT": "weeks", "DELIVERED": "3 months"}),
    ("lifeexp-months-short", [fa("LIFEEXP", "2.7", "months")], "IN08.SURV", NM, None, {}),
    ("lifeexp-no-unit", [fa("LIFEEXP", "24", "")], "IN08.SURV", U, "MISSING_UNIT", {}),
    ("consent-no-date", [dm(RFICDTC="")], "IN12", NM, None, {}),
    ("consenta-n", [fa("CONSENTA", "N")], "IN12", NM, None, {}),
    # IN05 measurable target lesion
    ("lesion-10mm", [lesion("T1", "LIVER", "TARGET", "LDIAM", "10")], "IN05", M, None, {"LIMIT": "10"}),
    ("lesion-9.9mm", [lesion("T1", "LIVER", "TARGET", "LDIAM", "9.9")], "IN05", NM, None, {}),
    ("lesion-cm", [lesion("T1", "LIVER", "TARGET", "LDIAM", "1.0", "cm")], "IN05", M, None, {}),
    ("lesion-node-15", [lesion("N1", "LYMPH NODE", "TARGET", "LPERP", "15")], "IN05", M, None, {"LIMIT": "15"}),
    ("lesion-node-14", [lesion("N1", "LYMPH NODE", "TARGET", "LPERP", "14")], "IN05", NM, None, {}),
    ("lesion-node-ldiam-only", [lesion("N1", "LYMPH NODE", "TARGET", "LDIAM", "30")], "IN05", U, "MISSING", {}),
    ("lesion-non-target", [lesion("T1", "LIVER", "NON-TARGET", "LDIAM", "30")], "IN05", NM, None,
     {"VALUE": "no target lesion"}),
    ("lesion-stale", [lesion("T1", "LIVER", "TARGET", "LDIAM", "30", dtc="2025-01-01")], "IN05", U,
     "ONLY_BEFORE_WINDOW", {}),
    ("lesion-no-tu", [drop("tu", "TULNKID", "T01"), drop("tr", "TRLNKID", "T01")], "IN05", U, "MISSING", {}),
    # IN09 hepatitis B (applies when HBsAg or HBcAb positive)
    ("hbv-negative", [], "IN09.DNA", M, None, {}),
    ("hbv-ok", HBV, "IN09.DNA", M, None, {"VALUE": "HBVDNA=150", "UNIT": "IU/mL", "LIMIT": "200"}),
    ("hbv-ok-tx", HBV, "IN09.TX", M, None, {}),
    ("hbv-dna-200", [*HBV, lb("HBVDNA", "200", "IU/mL")], "IN09.DNA", NM, None, {}),
    ("hbv-dna-censored", [*HBV, lb("HBVDNA", "<20", "IU/mL")], "IN09.DNA", M, None, {"VALUE": "HBVDNA=<20"}),
    ("hbv-dna-log", [*HBV, lb("HBVDNA", "2.2", "log10 IU/mL")], "IN09.DNA", M, None, {"VALUE": "HBVDNA=158.489"}),
    ("hbv-dna-log-high", [*HBV, lb("HBVDNA", "2.31", "log10 IU/mL")], "IN09.DNA", NM, None, {}),
    ("hbv-dna-copies", [*HBV, lb("HBVDNA", "100", "copies/mL")], "IN09.DNA", U, "UNIT_NOT_CONVERTIBLE", {}),
    ("hbv-reactive-cab", [lb("HBCAB", "REACTIVE"), lb("HBVDNA", "250", "IU/mL")], "IN09.DNA", NM, None, {}),
    ("hbv-serology-missing", [drop("lb", "LBTESTCD", "HBSAG")], "IN09.DNA", U, "MISSING", {}),
    ("hbv-tx-14d", [lb("HBSAG", "POSITIVE"), lb("HBVDNA", "50", "IU/mL"),
                    cm("ANTI-HBV THERAPY", "TENOFOVIR DISOPROXIL", "2025-02-15", enrf="ONGOING")], "IN09.TX", M, None,
     {}),
    ("hbv-tx-13d", [lb("HBSAG", "POSITIVE"), lb("HBVDNA", "50", "IU/mL"),
                    cm("ANTI-HBV THERAPY", "ENTECAVIR", "2025-02-16", enrf="ONGOING")], "IN09.TX", NM, None, {}),
    ("hbv-tx-ended-before", [lb("HBSAG", "POSITIVE"), cm("ANTI-HBV THERAPY", "ENTECAVIR", "2025-01-01",
                                                          "2025-02-28")], "IN09.TX", NM, None, {}),
    ("hbv-tx-ends-on-start", [lb("HBSAG", "POSITIVE"), cm("ANTI-HBV THERAPY", "ENTECAVIR", "2025-01-01",
                                                           "2025-03-01")], "IN09.TX", M, None, {}),
    ("hbv-tx-other-drug", [lb("HBSAG", "POSITIVE"), cm("ANTI-HBV THERAPY", "LAMIVUDINE", "2025-01-01",
                                                        enrf="ONGOING")], "IN09.TX", NM, None, {}),
    ("hbv-tx-partial-start", [lb("HBSAG", "POSITIVE"), cm("ANTI-HBV THERAPY", "ENTECAVIR", "2025-02",
                                                           enrf="ONGOING")], "IN09.TX", U, "PARTIAL_DATE_UNDECIDABLE",
     {}),
    ("hbv-ex05", [*HBV, lb("HBVDNA", "200", "IU/mL")], "EX05.HBV", A, None, {}),
    ("hbv-ex05-below", HBV, "EX05.HBV", NA, None, {}),
    # EX05 HIV / HCV
    ("hiv-reactive", [lb("HIV12AB", "REACTIVE")], "EX05.HIV", A, None, {}),
    ("hiv-mh", [mh("HIV INFECTION", "Y")], "EX05.HIV", A, None, {}),
    ("hiv-mh-missing", [drop("mh", "MHTERM", "HIV INFECTION")], "EX05.HIV", U, "MISSING", {}),
    ("hcv-rna-detected", [lb("HCVAB", "POSITIVE"), lb("HCVRNA", "DETECTED")], "EX05.HCV", A, None, {}),
    ("hcv-rna-not-detected", [lb("HCVAB", "POSITIVE"), lb("HCVRNA", "NOT DETECTED")], "EX05.HCV", NA, None, {}),
    ("hcv-rna-number", [lb("HCVAB", "POSITIVE"), lb("HCVRNA", "15", "IU/mL")], "EX05.HCV", A, None, {}),
    ("hcv-rna-zero", [lb("HCVAB", "POSITIVE"), lb("HCVRNA", "0", "IU/mL")], "EX05.HCV", NA, None, {}),
    ("hcv-rna-censored", [lb("HCVAB", "POSITIVE"), lb("HCVRNA", "<15", "IU/mL")], "EX05.HCV", U,
     "CENSORED_UNDECIDABLE", {}),
    ("hcv-ab-negative", [], "EX05.HCV", NA, None, {}),
    # EX02 prior malignancy within 5 calendar years before 2025-03-01 (or ongoing)
    ("malig-5y", [mh("PRIOR MALIGNANCY", "Y", "2020-03-01", "2021-01-01")], "EX02", A, None,
     {"DTC": "2020-03-01/2021-01-01"}),
    ("malig-older", [mh("PRIOR MALIGNANCY", "Y", "2020-02-29", "2021-01-01")], "EX02", NA, None, {}),
    ("malig-ongoing", [mh("PRIOR MALIGNANCY", "Y", "2010-01-01", enrf="ONGOING")], "EX02", A, None, {}),
    ("malig-partial", [mh("PRIOR MALIGNANCY", "Y", "2020", "2021")], "EX02", U, "PARTIAL_DATE_UNDECIDABLE", {}),
    ("malig-no-date", [mh("PRIOR MALIGNANCY", "Y")], "EX02", U, "MISSING_DATE", {}),
    ("malig-skin-excepted", [mh("NONMELANOMA SKIN CANCER", "Y", "2024-01-01")], "EX02", NA, None, {}),
    ("malig-no-record", [drop("mh", "MHTERM", "PRIOR MALIGNANCY")], "EX02", U, "MISSING", {}),
    # EX06 serious conditions
    ("dm-hba1c-7", [mh("DIABETES MELLITUS", "Y"), lb("HBA1C", "7.0", "%")], "EX06.DM", NA, None, {}),
    ("dm-hba1c-7.1", [mh("DIABETES MELLITUS", "Y"), lb("HBA1C", "7.1", "%")], "EX06.DM", A, None, {}),
    ("dm-hba1c-ifcc", [mh("DIABETES MELLITUS", "Y"), lb("HBA1C", "54", "mmol/mol")], "EX06.DM", A, None, {}),
    ("dm-hba1c-ifcc-low", [mh("DIABETES MELLITUS", "Y"), lb("HBA1C", "52", "mmol/mol")], "EX06.DM", NA, None, {}),
    ("dm-no-hba1c", [mh("DIABETES MELLITUS", "Y"), drop("lb", "LBTESTCD", "HBA1C")], "EX06.DM", U, "MISSING", {}),
    ("no-dm-no-hba1c", [drop("lb", "LBTESTCD", "HBA1C")], "EX06.DM", NA, None, {}),
    ("lvef-45", [fa("LVEF", "45", "%")], "EX06.LVEF", NA, None, {}),
    ("lvef-44", [fa("LVEF", "44", "%")], "EX06.LVEF", A, None, {}),
    ("mi-183d", [mh("MYOCARDIAL INFARCTION", "Y", "2024-08-01", "2024-08-30")], "EX06.CARD", A, None, {}),
    ("mi-184d", [mh("MYOCARDIAL INFARCTION", "Y", "2024-08-01", "2024-08-29")], "EX06.CARD", NA, None, {}),
    ("angina-ongoing", [mh("UNSTABLE ANGINA", "Y", "2020-01-01", enrf="ONGOING")], "EX06.CARD", A, None, {}),
    ("copd", [mh("COPD", "Y")], "EX06.LUNG", A, None, {}),
    ("fev1-59", [fa("FEV1PP", "59", "%")], "EX06.LUNG", A, None, {}),
    ("fev1-60", [fa("FEV1PP", "60", "%")], "EX06.LUNG", NA, None, {}),
    ("gi-bleeding", [mh("GASTROINTESTINAL BLEEDING", "Y", "2001-01-01", "2001-02-01")], "EX06.GI", A, None, {}),
    ("hf-lvef", [mh("HEART FAILURE", "Y"), fa("LVEF", "40", "%")], "EX06.HF", A, None, {}),
    ("hf-ok-lvef", [mh("HEART FAILURE", "Y"), fa("LVEF", "50", "%")], "EX06.HF", NA, None, {}),
    # EX07, EX08
    ("ascites-5cm", [fa("ASCDEPTH", "5", "cm")], "EX07", NA, None, {}),
    ("ascites-5.1cm", [fa("ASCDEPTH", "5.1", "cm")], "EX07", A, None, {}),
    ("ascites-51mm", [fa("ASCDEPTH", "51", "mm")], "EX07", A, None, {"VALUE": "5.1", "UNIT": "cm"}),
    ("ascites-50mm", [fa("ASCDEPTH", "50", "mm")], "EX07", NA, None, {}),
    ("livtum-70", [fa("LIVTUMPC", "70", "%")], "EX08.VOL", A, None, {}),
    ("livtum-69", [fa("LIVTUMPC", "69", "%")], "EX08.VOL", NA, None, {}),
    ("vascoccl", [fa("VASCOCCL", "Y")], "EX08.VASC", A, None, {}),
    # EX09, EX10, EX11, EX13, EX14
    ("transplant-pr", [pr("SOLID ORGAN TRANSPLANT", "LIVER TRANSPLANT", "2015-01-01", "2015-01-01")], "EX09", A,
     None, {}),
    ("waitlist", [mh("ORGAN TRANSPLANT WAITLIST", "Y")], "EX09", A, None, {}),
    ("antitumour-14d", [cm("ANTI-TUMOR THERAPY", "SORAFENIB", "2024-10-01", "2025-02-15")], "EX10", A, None, {}),
    ("antitumour-15d", [cm("ANTI-TUMOR THERAPY", "SORAFENIB", "2024-10-01", "2025-02-14")], "EX10", NA, None, {}),
    ("antitumour-ongoing", [cm("ANTI-TUMOR THERAPY", "SORAFENIB", "2024-10-01", enrf="ONGOING")], "EX10", A, None,
     {}),
    ("antitumour-no-end", [cm("ANTI-TUMOR THERAPY", "SORAFENIB", "2024-10-01")], "EX10", U, "MISSING_DATE", {}),
    ("radiotherapy-recent", [pr("RADIOTHERAPY", "SBRT", "2025-02-10", "2025-02-20")], "EX10", A, None, {}),
    ("surgery-old", [pr("SURGERY", "RESECTION", "2024-01-10", "2024-01-10")], "EX10", NA, None, {}),
    ("steroid-30d", [cm("SYSTEMIC CORTICOSTEROID", "PREDNISONE", "2025-01-17", "2025-02-15")], "EX11.STER", A, None,
     {}),
    ("steroid-29d", [cm("SYSTEMIC CORTICOSTEROID", "PREDNISONE", "2025-01-18", "2025-02-15")], "EX11.STER", NA,
     None, {}),
    ("steroid-ended-early", [cm("SYSTEMIC CORTICOSTEROID", "PREDNISONE", "2024-12-01", "2025-02-14")], "EX11.STER",
     NA, None, {}),
    ("steroid-ongoing-30d", [cm("SYSTEMIC CORTICOSTEROID", "PREDNISONE", "2025-01-31", enrf="ONGOING")],
     "EX11.STER", A, None, {}),
    ("steroid-ongoing-29d", [cm("SYSTEMIC CORTICOSTEROID", "PREDNISONE", "2025-02-01", enrf="ONGOING")],
     "EX11.STER", NA, None, {}),
    ("steroid-partial", [cm("SYSTEMIC CORTICOSTEROID", "PREDNISONE", "2025-01", "2025-02-15")], "EX11.STER", U,
     "PARTIAL_DATE_UNDECIDABLE", {}),
    ("autoimmune", [mh("AUTOIMMUNE DISEASE", "Y", "2010")], "EX11.AI", A, None, {}),
    ("investigational-91d", [cm("INVESTIGATIONAL AGENT", "XYZ-1", "2024-10-01", "2024-11-30")], "EX13", A, None, {}),
    ("investigational-92d", [cm("INVESTIGATIONAL AGENT", "XYZ-1", "2024-10-01", "2024-11-29")], "EX13", NA, None, {}),
    ("cell-ineffective", [pr("CELL THERAPY", "CAR-T", "2023-01-01", "2023-02-01", "INEFFECTIVE")], "EX14.CELL", A,
     None, {}),
    ("cell-effective", [pr("CELL THERAPY", "CAR-T", "2023-01-01", "2023-02-01", "EFFECTIVE")], "EX14.CELL", NA,
     None, {}),
    ("invjudg-n", [fa("INVJUDG", "N")], "EX14.INV", A, None, {}),
    ("invjudg-n-ex16", [fa("INVJUDG", "N")], "EX16", A, None, {}),
    # EX15 pregnancy: HCG only expected for women
    ("hcg-positive", [dm(SEX="F"), lb("HCG", "POSITIVE")], "EX15", A, None, {}),
    ("hcg-missing-male", [drop("lb", "LBTESTCD", "HCG")], "EX15", NA, None, {}),
    ("hcg-missing-female", [dm(SEX="F"), drop("lb", "LBTESTCD", "HCG")], "EX15", U, "MISSING", {}),
    ("lactating", [dm(SEX="F"), fa("LACTAT", "Y")], "EX15", A, None, {}),
    ("hcg-missing-sex-unknown", [dm(SEX="U"), drop("lb", "LBTESTCD", "HCG")], "EX15", U, "MISSING", {}),
    ("hcg-negative-sex-unknown", [dm(SEX="U")], "EX15", NA, None, {}),
    # MH targeted history: occurrence codes
    ("encephalopathy", [mh("ENCEPHALOPATHY", "Y")], "EX03", A, None, {}),
    ("encephalopathy-bad-code", [mh("ENCEPHALOPATHY", "UNK")], "EX03", U, "INVALID_CODE", {}),
    ("infection", [mh("UNCONTROLLED ACTIVE INFECTION", "Y")], "EX01", A, None, {}),
    ("viral", [mh("ACTIVE VIRAL OR BACTERIAL INFECTION", "Y")], "EX04", A, None, {}),
    ("allergy", [mh("ALLERGY TO STUDY COMPOUNDS", "Y")], "EX12", A, None, {}),
]


def _subject(case_id: str, edits: list[Edit]) -> Rows:
    rows = subject_rows(usubjid=case_id)
    for edit in edits:
        edit(rows)
    return rows


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[str, str], dict]:
    subjects = [_subject(case_id, edits) for case_id, edits, *_ in CASES]
    result = evaluate(frames(*subjects), load_protocol(), AS_OF)
    return {(row["USUBJID"], row["CHECK_ID"]): row for row in result.eligibility.iter_rows(named=True)}


def test_case_ids_are_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("case_id", "edits", "check", "outcome", "reason", "evidence"), CASES,
                         ids=[case[0] for case in CASES])
def test_component_outcome(outcomes, case_id, edits, check, outcome, reason, evidence):
    row = outcomes[(case_id, check)]
    assert (row["OUTCOME"], row["REASON_CODE"]) == (outcome, reason), row
    assert {key: row[key] for key in evidence} == evidence
    if outcome == "UNVERIFIABLE":
        assert row["REASON"], "an UNVERIFIABLE component must say why"
    else:
        assert row["REASON"] is None


def test_every_component_has_a_golden_case():
    checked = {case[2] for case in CASES}
    protocol = load_protocol()
    assert {component.id for _, component in protocol.components()} <= checked


def test_censored_reason_quotes_value_and_limit(outcomes):
    row = outcomes[("wbc-above-censored-undecided", "IN10.WBC")]
    assert row["REASON"] == "WBC >2 10^9/L cannot decide >= 2.5"


def test_stale_result_reason_names_window(outcomes):
    row = outcomes[("wbc-before-window", "IN10.WBC")]
    assert row["REASON"] == "WBC results only before the screening window 2025-02-01..2025-03-01 (latest 2025-01-31)"


def test_birth_date_never_appears_in_outputs(outcomes):
    for (case_id, _), row in outcomes.items():
        if case_id.startswith("age-"):
            text = " ".join(str(v) for v in row.values() if v is not None)
            assert "2007-02" not in text and "1944-02" not in text and "09/02/2007" not in text


def test_evidence_source_points_at_the_row_used():
    subject = _subject("one", [lb("WBC", "5", "10^9/L", dtc="2025-02-10"),
                               lb("WBC", "2", "10^9/L", dtc="2025-02-20", add=True)])
    domains = frames(subject)
    result = evaluate(domains, load_protocol(), AS_OF)
    source = result.eligibility.filter(pl.col("CHECK_ID") == "IN10.WBC")["SOURCE"].item()
    used = domains["lb"].filter(source_text() == source)
    assert used.select("LBTESTCD", "LBORRES", "LBDTC").row(0) == ("WBC", "2", "2025-02-20")


@pytest.mark.parametrize(("edits", "reason", "row"), [
    ([lb("WBC", "", "10^9/L", stat="NOT DONE"), lb("WBC", "5", "10^9/L", dtc="2025-01-10", add=True)], "NOT_DONE",
     ("", SCREEN, "NOT DONE")),
    # the latest before the window, the one its reason dates, whatever the order of the file
    ([lb("WBC", "6", "10^9/L", dtc="2025-01-31"), lb("WBC", "5", "10^9/L", dtc="2025-01-20", add=True)],
     "ONLY_BEFORE_WINDOW", ("6", "2025-01-31", "")),
    ([lb("WBC", "5", "10^9/L", dtc="2025-01-20"), lb("WBC", "6", "10^9/L", dtc="2025-01-31", add=True)],
     "ONLY_BEFORE_WINDOW", ("6", "2025-01-31", "")),
    ([lb("WBC", "5", "10^9/L", dtc="2025-03-02")], "ONLY_AFTER_START", ("5", "2025-03-02", "")),
    ([lb("WBC", "5", "10^9/L", dtc="2025")], "PARTIAL_DATE_UNDECIDABLE", ("5", "2025", "")),
    ([lb("WBC", "5", "10^9/L", dtc="22/02/2025")], "INVALID_DATE", ("5", "22/02/2025", "")),
    ([lb("WBC", "5", "10^9/L", dtc="")], "MISSING_DATE", ("5", "", "")),
])
def test_an_unverifiable_components_source_is_the_record_behind_its_reason(edits, reason, row):
    """A site monitor is pointed at the record to look at: the result not done, the latest one before the
    window, the one with a date that cannot be placed (the query's RECORD names it; it used to be empty)."""
    domains = frames(_subject("reason", edits))
    component = evaluate(domains, load_protocol(), AS_OF).eligibility.filter(pl.col("CHECK_ID") == "IN10.WBC")
    assert component.select("OUTCOME", "REASON_CODE").row(0) == ("UNVERIFIABLE", reason)
    used = domains["lb"].filter(source_text() == component["SOURCE"].item())
    assert used.select(pl.col("LBORRES", "LBDTC", "LBSTAT").fill_null("")).rows() == [row]


def test_a_missing_result_or_treatment_start_names_no_record():
    missing = evaluate(frames(_subject("none", [drop("lb", "LBTESTCD", "WBC")])), load_protocol(), AS_OF).eligibility
    assert missing.filter(pl.col("CHECK_ID") == "IN10.WBC")["SOURCE"].to_list() == [None]
    no_start = evaluate(frames(_subject("nostart", [dm(RFXSTDTC="2025-03")])), load_protocol(), AS_OF).eligibility
    wbc = no_start.filter(pl.col("CHECK_ID") == "IN10.WBC")
    assert wbc.select("REASON_CODE", "SOURCE").row(0) == ("NO_TREATMENT_START", None)


def test_reason_codes_are_enum_members_and_only_on_unverifiable(outcomes):
    from contracts.enums import ReasonCode

    codes = {row["REASON_CODE"] for row in outcomes.values()}
    assert codes - {None} <= {code.value for code in ReasonCode}
    assert all((row["REASON_CODE"] is None) == (row["OUTCOME"] != "UNVERIFIABLE") for row in outcomes.values())


def test_a_source_of_several_records_names_each_once_in_first_seen_order():
    from core.source import with_distinct_records

    frame = pl.DataFrame({"SOURCE": ["a:1; b:2; a:1", "a:1", None, "c:3; c:3", "b:2; a:1"], "N": [1, 2, 3, 4, 5]})
    assert with_distinct_records(frame).to_dict(as_series=False) == {
        "SOURCE": ["a:1; b:2", "a:1", None, "c:3", "b:2; a:1"], "N": [1, 2, 3, 4, 5]}
    single = pl.DataFrame({"SOURCE": ["a:1", None]})
    assert with_distinct_records(single).equals(single)
