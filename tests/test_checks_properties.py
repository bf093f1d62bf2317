"""Properties of evaluate(): the unit convention and the order of rows and sites never change outcomes.

Each hypothesis example is a small cohort evaluated in one call (evaluate() has a fixed cost per
call, the cohort is what varies), with few examples so that the suite stays fast.
"""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import polars as pl
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from checks.evaluation import evaluate
from contracts.protocol import load_protocol
from tests.support.sample_subject import frames, subject_rows

PROTOCOL = load_protocol()
AS_OF = date(2025, 6, 1)
# no shrinking: each example costs one evaluate() call, and a failure prints its cohort anyway
SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])
COMPONENTS = ["IN10.WBC", "IN10.PLT", "IN10.HGB", "IN10.LYM", "IN11.ALB", "IN11.CREAT", "IN11.CRCL", "IN11.BILI",
              "IN11.ALT", "IN09.DNA", "EX05.HBV", "EX06.DM"]


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


# per subject, exact decimal values in SI (or one convention) and the same quantity in the other
LAB = st.fixed_dictionaries({
    "wbc_cells": st.integers(1500, 4000),  # /uL  <->  10^9/L
    "plat_k": st.integers(40, 90),  # 10^3/uL  <->  10^9/L (x1)
    "hgb_gl": st.integers(80, 100),  # g/L  <->  g/dL
    "alb_cgdl": st.integers(250, 350),  # g/dL x 100  <->  g/L
    "creat_cmgdl": st.integers(60, 200),  # mg/dL x 100  <->  umol/L (x 88.4)
    "bili_cmgdl": st.integers(100, 400),  # mg/dL x 100  <->  umol/L (x 17.1)
    "alt_u": st.integers(100, 300),  # U/L  <->  ukat/L (/ 60, when exact)
    "hbvdna_log": st.sampled_from(["1.5", "2", "2.3", "2.30103", "3"]),  # log10 IU/mL  <->  IU/mL
    "hba1c_ifcc": st.integers(45, 60),  # mmol/mol  <->  % (NGSP)
    "censor_wbc": st.booleans(),
})


def _set(rows: dict, test: str, result: str, unit: str, uln: str | None = None) -> None:
    for row in rows["lb"]:
        if row["LBTESTCD"] == test:
            row.update({"LBORRES": result, "LBORRESU": unit, **({"LBORNRHI": uln} if uln is not None else {})})


def _subject(usubjid: str, lab: dict, si: bool) -> dict:
    rows = subject_rows(usubjid=usubjid, birth="1956-05-10")
    rows["lb"] = [r for r in rows["lb"] if r["LBTESTCD"] != "LYM"]  # LYM from LYMLE x WBC
    rows["mh"] = [{**r, "MHOCCUR": "Y"} if r["MHTERM"] == "DIABETES MELLITUS" else r for r in rows["mh"]]
    wbc = Decimal(lab["wbc_cells"])
    prefix = "<" if lab["censor_wbc"] else ""
    creat, bili = Decimal(lab["creat_cmgdl"]) / 100, Decimal(lab["bili_cmgdl"]) / 100
    if si:
        _set(rows, "WBC", prefix + _text(wbc / 1000), "10^9/L")
        _set(rows, "PLAT", str(lab["plat_k"]), "10^9/L")
        _set(rows, "HGB", str(lab["hgb_gl"]), "g/L")
        _set(rows, "ALB", _text(Decimal(lab["alb_cgdl"]) / 10), "g/L")
        _set(rows, "CREAT", _text(creat * Decimal("88.4")), "umol/L", _text(Decimal("1.2") * Decimal("88.4")))
        _set(rows, "BILI", _text(bili * Decimal("17.1")), "umol/L", _text(Decimal("1.2") * Decimal("17.1")))
        _set(rows, "ALT", str(lab["alt_u"]), "U/L", "40")
        _set(rows, "HBVDNA", lab["hbvdna_log"], "log10 IU/mL")
        _set(rows, "HBA1C", str(lab["hba1c_ifcc"]), "mmol/mol")
    else:
        _set(rows, "WBC", prefix + str(wbc), "cells/mm3")
        _set(rows, "PLAT", str(lab["plat_k"]), "K/uL")
        _set(rows, "HGB", _text(Decimal(lab["hgb_gl"]) / 10), "g/dL")
        _set(rows, "ALB", _text(Decimal(lab["alb_cgdl"]) / 100), "g/dL")
        _set(rows, "CREAT", _text(creat), "mg/dL", "1.2")
        _set(rows, "BILI", _text(bili), "mg/dL", "1.2")
        _set(rows, "ALT", str(lab["alt_u"]), "IU/L", "40")
        dna = Decimal(10) ** Decimal(lab["hbvdna_log"])
        _set(rows, "HBVDNA", _text(dna.quantize(Decimal("0.000001"))), "IU/mL")
        ngsp = Decimal("0.09148") * lab["hba1c_ifcc"] + Decimal("2.152")
        _set(rows, "HBA1C", _text(ngsp), "%")
    for test in ("HBSAG",):
        _set(rows, test, "POSITIVE", "")
    rows["cm"].append({"STUDYID": "SZ003", "USUBJID": usubjid, "CMTRT": "baraclude", "CMDECOD": "ENTECAVIR",
                       "CMCAT": "ANTI-HBV THERAPY", "CMSTDTC": "2024-12-01", "CMENDTC": "", "CMENRF": "ONGOING"})
    _set(rows, "LYMLE", "20" if si else "0.2", "%" if si else "fraction")
    return rows


def _outcomes(result) -> dict[tuple[str, str], tuple[str, str | None]]:
    return {(r["USUBJID"].split("-")[0], r["CHECK_ID"]): (r["OUTCOME"], r["REASON_CODE"])
            for r in result.eligibility.filter(pl.col("CHECK_ID").is_in(COMPONENTS)).iter_rows(named=True)}


@SETTINGS
@given(st.lists(LAB, min_size=1, max_size=6))
def test_si_and_conventional_units_give_identical_outcomes(cohort):
    si = [_subject(f"{i}-SI", lab, si=True) for i, lab in enumerate(cohort)]
    us = [_subject(f"{i}-US", lab, si=False) for i, lab in enumerate(cohort)]
    result = evaluate(frames(*si, *us, site="101"), PROTOCOL, AS_OF)
    rows = result.eligibility.filter(pl.col("CHECK_ID").is_in(COMPONENTS))
    by_subject: dict[str, dict[str, tuple]] = {}
    for r in rows.iter_rows(named=True):
        by_subject.setdefault(r["USUBJID"], {})[r["CHECK_ID"]] = (r["OUTCOME"], r["REASON_CODE"])
    for i in range(len(cohort)):
        assert by_subject[f"{i}-SI"] == by_subject[f"{i}-US"]


def _cohort(draw_seed: int) -> list[dict]:
    rng = random.Random(draw_seed)
    subjects = []
    for i in range(6):
        site = rng.choice(["101", "102", "103"])
        rows = subject_rows(usubjid=f"SZ003-{site}-{i:03d}", site=site)
        wbc = next(r for r in rows["lb"] if r["LBTESTCD"] == "WBC")
        rows["lb"].append({**wbc, "LBORRES": str(rng.choice(["1.9", "2.5", "<3", "7"])),
                           "LBDTC": rng.choice(["2025-02-20", "2025-02-22", "2025-01-05", "2025-02"])})
        rows["lb"].append({**wbc, "LBORRES": "3.1", "LBDTC": "2025-02-22"})  # a same-day duplicate
        subjects.append(rows)
    return subjects


def _shuffled(domains: dict[str, pl.DataFrame], seed: int) -> dict[str, pl.DataFrame]:
    names = list(domains)
    random.Random(seed).shuffle(names)
    return {name: domains[name].sample(fraction=1.0, shuffle=True, seed=seed) for name in names}


@SETTINGS
@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_row_and_site_order_change_nothing(cohort_seed, shuffle_seed):
    subjects = _cohort(cohort_seed)
    ordered = evaluate(frames(*subjects), PROTOCOL, AS_OF)
    reversed_sites = frames(*sorted(subjects, key=lambda s: s["dm"][0]["SITEID"], reverse=True))
    # frames() numbers rows per file in the order given: rebuild the source so it names the same rows
    typed = ("SOURCE_KEY", "SOURCE_ROW")
    source_of = {}
    for domain, frame in frames(*subjects).items():
        for row in frame.iter_rows(named=True):
            source_of[(domain, tuple((k, v) for k, v in row.items() if k not in typed))] = (row["SOURCE_KEY"],
                                                                                          row["SOURCE_ROW"])
    relabelled = {}
    for domain, frame in reversed_sites.items():
        pairs = [source_of[(domain, tuple((k, v) for k, v in row.items() if k not in typed))]
                 for row in frame.iter_rows(named=True)]
        relabelled[domain] = frame.with_columns(pl.Series("SOURCE_KEY", [key for key, _ in pairs]),
                                                pl.Series("SOURCE_ROW", [row for _, row in pairs], dtype=pl.Int64))
    shuffled = evaluate(_shuffled(relabelled, shuffle_seed), PROTOCOL, AS_OF)
    assert ordered.eligibility.equals(shuffled.eligibility)
    assert ordered.criteria.equals(shuffled.criteria)
    assert ordered.reference.equals(shuffled.reference)
