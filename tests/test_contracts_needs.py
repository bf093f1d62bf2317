"""When the protocol needs a result, read from its rule trees (contracts.needs), not restated elsewhere."""

from __future__ import annotations

import pytest

from contracts.needs import conditional_needs, derived_limit
from contracts.protocol import Rule, load_protocol, parse_protocol

COMPLETE = {"screening_window_days": 28}


def _show(condition: Rule | None) -> str:
    if condition is None:
        return "always"
    if condition.kind in ("all", "any"):
        return f"{condition.kind}({', '.join(_show(c) for c in condition.children)})"
    params = condition.params
    what = params.get("test") or params.get("variable") or ",".join(params["match"]["MHTERM"])
    return f"{what}={'/'.join(params['values']) if 'values' in params else 'Y'}"


def test_sz003_conditions_are_the_protocols_own():
    needs = {test: _show(condition) for test, condition in conditional_needs(load_protocol()).items()}
    conditional = {test: shown for test, shown in needs.items() if shown != "always"}
    assert conditional == {
        "LB.HBVDNA": "any(HBSAG=POSITIVE, HBCAB=POSITIVE)",  # IN09.DNA / EX05.HBV applies_when
        "LB.HCVRNA": "HCVAB=POSITIVE",  # EX05.HCV applies_when
        "LB.HCG": "SEX=F",  # EX15: all: [SEX = F, HCG] inside an exclusion
        "LB.HBA1C": "DIABETES MELLITUS=Y",  # EX06.DM: all: [MH DIABETES MELLITUS, HBA1C > 7]
        "FA.LRTXINEL": "BCLC=B",  # IN02: any: [BCLC = C, all: [BCLC = B, LRTXINEL = Y]]
    }
    # read by every subject: the applies_when tests themselves, IN03's two answers (an inclusion's `all`),
    # PREGNANT / LACTAT (EX15 reads them for everyone: docs/criteria.md decision 7), CRCL's inputs
    for test in ("LB.HBSAG", "LB.HBCAB", "LB.HCVAB", "FA.SURGSUIT", "FA.STDTXPI", "FA.PREGNANT", "FA.LACTAT",
                 "FA.BCLC", "LB.CREAT", "VS.WEIGHT", "FA.LVEF", "MH.DIABETES MELLITUS"):
        assert needs[test] == "always", test


def _protocol(category: str, rule: dict, applies_when: dict | None = None) -> dict:
    component = {"id": "C1", "rule": rule, **({"applies_when": applies_when} if applies_when else {})}
    return {"id": "T", "version": {"tivers": "1", "effective": "2024-01-01"}, "parameters": COMPLETE,
            "criteria": [{"id": "C1", "category": category, "components": [component]}]}


SEX_F = {"kind": "subject", "variable": "SEX", "values": ["F"]}
HCG = {"kind": "coded", "domain": "LB", "test": "HCG", "values": ["POSITIVE"]}
GLUCOSE = {"kind": "threshold", "domain": "LB", "test": "GLUC", "op": ">", "limit": 7}


@pytest.mark.parametrize(("category", "rule", "expected"), [
    # an exclusion's `all` is read in order: later parts only when the earlier hold
    ("EXCLUSION", {"all": [SEX_F, HCG]}, "SEX=F"),
    # an inclusion's `all` must hold whole: every part is needed
    ("INCLUSION", {"all": [SEX_F, HCG]}, "always"),
    # `not` turns the expectation round: not(all) in an inclusion must be false, like an exclusion's all
    ("INCLUSION", {"not": {"all": [SEX_F, HCG]}}, "SEX=F"),
    # a part the audit cannot tell per subject (a threshold) is no condition: the rest is needed always
    ("EXCLUSION", {"all": [GLUCOSE, HCG]}, "always"),
    # an inclusion's alternatives: a branch's later parts only when its first part holds
    ("INCLUSION", {"any": [HCG, {"all": [SEX_F, GLUCOSE]}]}, "always"),
])
def test_which_parts_are_conditions(category, rule, expected):
    needs = conditional_needs(parse_protocol(_protocol(category, rule)))
    assert _show(needs["LB.HCG"]) == expected


def test_a_branch_of_an_inclusion_alternative_is_conditional():
    rule = {"any": [HCG, {"all": [SEX_F, GLUCOSE]}]}
    assert _show(conditional_needs(parse_protocol(_protocol("INCLUSION", rule)))["LB.GLUC"]) == "SEX=F"


def test_applies_when_conditions_the_rule_and_its_own_data_are_always_needed():
    needs = conditional_needs(parse_protocol(_protocol("INCLUSION", GLUCOSE, applies_when=HCG)))
    assert (_show(needs["LB.GLUC"]), _show(needs["LB.HCG"])) == ("HCG=POSITIVE", "always")


def test_a_test_read_always_somewhere_is_always_needed():
    protocol = _protocol("EXCLUSION", {"all": [SEX_F, HCG]})
    protocol["criteria"].append({"id": "C2", "category": "EXCLUSION", "components": [{"id": "C2", "rule": HCG}]})
    assert conditional_needs(parse_protocol(protocol))["LB.HCG"] is None


def test_pc06_reads_its_limit_from_the_component():
    assert derived_limit(load_protocol(), "IN11.CRCL") == ("CRCL_CG", ">=", 40.0)
    assert derived_limit(load_protocol(), "IN10.PLT") is None
