"""The protocol file: loading, strict validation, parameters, versions, and a second protocol (RX101)
that runs through the same engine with no code change."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml

from checks.evaluation import evaluate
from contracts.enums import Category
from contracts.protocol import ProtocolError, load_protocol, parse_protocol
from tests.support.sample_subject import frames, subject_rows

BUNDLED = Path(__file__).resolve().parents[1] / "contracts" / "protocols" / "sz003.yaml"
RX101 = Path(__file__).resolve().parent / "protocols" / "rx101.yaml"
SPEC_COMPONENTS = {
    "IN01", "IN02", "IN03", "IN04", "IN05", "IN06", "IN07", "IN08.VS", "IN08.SURV", "IN09.DNA", "IN09.TX",
    "IN10.WBC", "IN10.PLT", "IN10.HGB", "IN10.LYM", "IN11.ALB", "IN11.LIPASE", "IN11.AMYLASE", "IN11.CREAT",
    "IN11.CRCL", "IN11.ALT", "IN11.AST", "IN11.BILI", "IN11.PT", "IN12", "EX01", "EX02", "EX03", "EX04",
    "EX05.HIV", "EX05.HBV", "EX05.HCV", "EX06.DM", "EX06.LVEF", "EX06.CARD", "EX06.LUNG", "EX06.GI", "EX06.HF",
    "EX07", "EX08.VOL", "EX08.VASC", "EX09", "EX10", "EX11.STER", "EX11.AI", "EX12", "EX13", "EX14.CELL",
    "EX14.INV", "EX15", "EX16",
}


def _raw() -> dict:
    return yaml.safe_load(BUNDLED.read_text(encoding="utf-8"))


def test_bundled_protocol_has_every_spec_component():
    protocol = load_protocol()
    assert (protocol.id, protocol.tivers) == ("SZ003", "1.0")
    assert [c.id for c in protocol.criteria] == [f"IN{i:02d}" for i in range(1, 13)] + [f"EX{i:02d}" for i in
                                                                                       range(1, 17)]
    assert {component.id for _, component in protocol.components()} == SPEC_COMPONENTS
    assert {c.category for c in protocol.criteria if c.id.startswith("EX")} == {Category.EXCLUSION}
    assert protocol.parameters["screening_window_days"] == 28
    assert protocol.parameters["cardiac_lookback_days"] == 183


def test_needed_tests_lists_what_the_criteria_read():
    needed = load_protocol().needed_tests()
    assert needed["lb"] == {"WBC", "PLAT", "HGB", "LYM", "LYMLE", "ALB", "LIPASE", "AMYLASE", "CREAT", "ALT", "AST",
                            "BILI", "PT", "HBSAG", "HBCAB", "HBVDNA", "HCVAB", "HCVRNA", "HIV12AB", "HBA1C", "HCG"}
    assert needed["vs"] == {"WEIGHT"}
    assert needed["tr"] == {"LDIAM", "LPERP"}
    assert "KPS" in needed["fa"] and "LIFEEXP" in needed["fa"]
    assert "PRIOR MALIGNANCY" in needed["mh"] and "NONMELANOMA SKIN CANCER" not in needed["mh"]


def _mutated(path: list, value: object, delete: bool = False) -> dict:
    raw = copy.deepcopy(_raw())
    node = raw
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


IN10_WBC_RULE = ["criteria", 9, "components", 0, "rule"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_mutated(["colour"], "blue"), "colour: unknown key 'colour'"),
        (_mutated(["parameters", "screening_window_days"], None, delete=True), "missing parameters"),
        (_mutated(["parameters", "screening_window_days"], "28"), "a parameter must be a number"),
        (_mutated(["version"], {"tivers": "1.0"}), "version: missing key 'effective'"),
        (_mutated(["criteria", 0, "category"], "MAYBE"), r"\[0\].category: Input should be 'INCLUSION'"),
        (_mutated(["criteria", 0, "colour"], "x"), r"criteria\[0\]\.colour: unknown key"),
        (_mutated(["criteria", 0, "components", 0, "colour"], "x"), r"components\[0\]\.colour: unknown key"),
        (_mutated([*IN10_WBC_RULE, "kind"], "magic"), "rule: unknown rule kind 'magic'"),
        (_mutated([*IN10_WBC_RULE, "op"], "=>"), "rule.op: Input should be '>='"),
        (_mutated([*IN10_WBC_RULE, "unit"], "10^9/L"), "rule.unit: unknown key"),
        (_mutated([*IN10_WBC_RULE, "limit"], "$no_such_parameter"), r"unknown parameter \$no_such_parameter"),
        (_mutated([*IN10_WBC_RULE, "range"], [1, 2]), "give either range or op"),
        (_mutated([*IN10_WBC_RULE, "domain"], "XX"), "rule.domain: Input should be 'LB', 'VS', 'FA' or 'TR'"),
        (_mutated(IN10_WBC_RULE, {"kind": "derived", "value": "BMI", "op": ">", "limit": 1}),
         "rule.value: Input should be"),
        (_mutated(IN10_WBC_RULE, {"kind": "subject", "variable": "BRTHDTC", "present": True}),
         "rule.variable: Input should"),
        (_mutated(IN10_WBC_RULE, {"kind": "coded", "domain": "FA", "test": "X", "values": ["Y"], "valid": ["N"]}),
         "subset of valid"),
        (_mutated(IN10_WBC_RULE, {"kind": "event", "domain": "CM", "match": {"CMCAT": ["X"]},
                                  "timing": [{"date": "end", "within": {"days_before": 1}}]}),
         r"rule.timing\[0\].within: unknown key"),
        (_mutated(IN10_WBC_RULE, {"kind": "event", "domain": "CM", "match": {"CMCAT": ["X"]},
                                  "timing": [{"date": "end", "on_or_after": {"weeks_before": 1}}]}),
         "weeks_before: unknown key"),
        (_mutated(IN10_WBC_RULE, {"all": []}), "rule.all: List should have at least 1 item"),
        (_mutated(["criteria", 9, "components", 1, "id"], "IN10.WBC"), r"\[1\]\.id: duplicated ids"),
    ],
)
def test_malformed_protocols_are_rejected(raw, message):
    with pytest.raises(ProtocolError, match=message):
        parse_protocol(raw)


def test_a_parameter_changes_every_rule_that_uses_it():
    rows = subject_rows()
    for row in rows["lb"]:
        if row["LBTESTCD"] == "WBC":
            row["LBDTC"] = "2025-01-20"  # 40 days before treatment start
    domains = frames(rows)
    standard = evaluate(domains, load_protocol(), date(2025, 6, 1))
    wide = parse_protocol(_mutated(["parameters", "screening_window_days"], 60))
    widened = evaluate(domains, wide, date(2025, 6, 1))

    def wbc(result):
        return result.eligibility.filter(pl.col("CHECK_ID") == "IN10.WBC").select("OUTCOME", "REASON_CODE").row(0)

    assert wbc(standard) == ("UNVERIFIABLE", "ONLY_BEFORE_WINDOW")
    assert wbc(widened) == ("MET", None)


def test_versions_come_from_the_files_beside_the_protocol():
    protocol = load_protocol(RX101)
    assert [(v.tivers, v.effective) for v in protocol.versions] == [("1.0", date(2023, 1, 1)),
                                                                      ("2.0", date(2024, 6, 1))]
    assert protocol.tivers == "2.0"


# ------------------------------------------------------------------------------- RX101, no code change


def _rx_subject(usubjid: str, hba1c: str = "8.2", dtc: str | None = None, **dm: str) -> dict:
    rows = subject_rows(usubjid=usubjid)
    rows["dm"][0].update(dm)
    for row in rows["lb"]:
        if row["LBTESTCD"] == "HBA1C":
            row["LBORRES"] = hba1c
            row["LBDTC"] = dtc or row["LBDTC"]
    return rows


def test_second_protocol_runs_through_the_same_engine():
    protocol = load_protocol(RX101)
    insulin = _rx_subject("RX-3")
    insulin["cm"].append({"STUDYID": "SZ003", "USUBJID": "RX-3", "CMTRT": "lantus", "CMDECOD": "INSULIN GLARGINE",
                          "CMCAT": "OTHER", "CMSTDTC": "2024-01-01", "CMENDTC": "2024-12-01", "CMENRF": ""})
    subjects = [
        _rx_subject("RX-1"),  # age 64 at consent, HbA1c 8.2 %, CrCl 82
        _rx_subject("RX-2", hba1c="6.9"),
        insulin,  # insulin ended 2024-12-01, exactly 90 days before 2025-03-01
        _rx_subject("RX-4", hba1c="8.2", dtc="2025-02-14"),  # 15 days before: outside RX101's 14-day window
        _rx_subject("RX-5", BRTHDTC="1980-02-09", RFICDTC="2023-06-01"),  # consent under version 1.0
    ]
    result = evaluate(frames(*subjects, site="201"), protocol, date(2025, 6, 1))
    outcome = {(r["USUBJID"], r["CHECK_ID"]): (r["OUTCOME"], r["REASON_CODE"])
               for r in result.eligibility.iter_rows(named=True)}
    assert result.eligibility["CHECK_ID"].unique().sort().to_list() == sorted(
        ["IN01", "IN02", "IN03.CRCL", "IN03.ALT", "EX01", "EX02", "EX03.PREG", "EX03.HGB"])
    assert outcome[("RX-1", "IN02")] == ("MET", None)
    assert outcome[("RX-1", "IN03.CRCL")] == ("MET", None)
    assert outcome[("RX-1", "EX01")] == ("NOT_APPLICABLE", None)
    assert outcome[("RX-2", "IN02")] == ("NOT_MET", None)
    assert outcome[("RX-3", "EX01")] == ("APPLIES", None)
    assert outcome[("RX-4", "IN02")] == ("UNVERIFIABLE", "ONLY_BEFORE_WINDOW")
    assert outcome[("RX-5", "IN01")] == ("MET", None)
    versions = dict(zip(result.reference["USUBJID"], result.reference["TIVERS"], strict=True))
    assert versions == {"RX-1": "2.0", "RX-2": "2.0", "RX-3": "2.0", "RX-4": "2.0", "RX-5": "1.0"}
    hba1c = result.eligibility.filter((pl.col("USUBJID") == "RX-1") & (pl.col("CHECK_ID") == "IN02")).row(
        0, named=True)
    assert (hba1c["VALUE"], hba1c["UNIT"], hba1c["LIMIT"]) == ("8.2", "%", "7 to 10.5")
