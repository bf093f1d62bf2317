"""compare() against a plain-Python oracle of the classification rules, on random small studies.

The oracle restates the specification one subject at a time (readable, slow); compare() does the
same with joins over all subjects. Random component outcomes, site answers (Y / N / U / absent,
which also varies the checklist style) and decisions at two sites must give exactly the same
discrepancy keys and subject verdicts.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_checks_compare import AS_OF, CATEGORY, CRITERIA, PROTOCOL, build, ie, subject

from checks.comparison.compare import compare

FAILED, PASSED = {"NOT_MET", "APPLIES"}, {"MET", "NOT_APPLICABLE"}
DECISIONS = ["ENROLLED", "SCREEN FAILURE", "IN SCREENING"]


def _outcomes(category: str) -> list[str]:
    return ["MET", "NOT_MET", "UNVERIFIABLE"] if category == "INCLUSION" else ["NOT_APPLICABLE", "APPLIES",
                                                                                "UNVERIFIABLE"]


@st.composite
def study(draw):
    n = draw(st.integers(min_value=1, max_value=5))
    subjects = []
    for i in range(n):
        outcomes = {c[0]: draw(st.sampled_from(_outcomes(cat))) for cid, (cat, comps) in CRITERIA.items()
                    for c in comps}
        answers = {cid: draw(st.sampled_from(["Y", "N", "U", None])) for cid in CRITERIA}
        if draw(st.booleans()):  # often no IE row at all, to exercise the site-level rule
            answers = dict.fromkeys(CRITERIA)
        subjects.append({"id": f"S{i}", "site": draw(st.sampled_from(["101", "102"])),
                         "decision": draw(st.sampled_from(DECISIONS)), "outcomes": outcomes, "answers": answers})
    return subjects


def _criterion(outcomes: list[str]) -> str:
    if any(o in FAILED for o in outcomes):
        return next(o for o in outcomes if o in FAILED)
    return "UNVERIFIABLE" if "UNVERIFIABLE" in outcomes else outcomes[0]


def oracle(subjects: list[dict]) -> tuple[set, dict]:
    def passing(cid, a):
        return a == ("Y" if CATEGORY[cid] == "INCLUSION" else "N")

    style = {}
    for s in subjects:
        given_answers = {c: a for c, a in s["answers"].items() if a is not None}
        style[s["id"]] = ("FULL" if any(passing(c, a) for c, a in given_answers.items())
                          else "NMO" if given_answers else None)
    for s in subjects:
        if style[s["id"]] is None:
            site = [style[o["id"]] for o in subjects if o["site"] == s["site"]]
            style[s["id"]] = "NMO" if "NMO" in site and "FULL" not in site else "MISSING"
    found, verdicts = set(), {}
    for s in subjects:
        sid, decision, decided = s["id"], s["decision"], s["decision"] != "IN SCREENING"
        crit = {cid: _criterion([s["outcomes"][c[0]] for c in comps]) for cid, (_, comps) in CRITERIA.items()}
        recorded_failures, absent_or_unknown = [], False
        for cid, outcome in crit.items():
            inclusion, answer = CATEGORY[cid] == "INCLUSION", s["answers"][cid]
            site = None
            if answer in ("Y", "N"):
                site = {("Y", True): "MET", ("N", True): "NOT_MET", ("Y", False): "APPLIES",
                        ("N", False): "NOT_APPLICABLE"}[(answer, inclusion)]
                if site in FAILED:
                    recorded_failures.append(cid)
            elif answer == "U":
                absent_or_unknown = True
            elif style[sid] == "NMO" and decided:
                site = "MET" if inclusion else "NOT_APPLICABLE"
            else:
                absent_or_unknown = absent_or_unknown or style[sid] != "NMO"
            if site and outcome != "UNVERIFIABLE" and site != outcome:
                severity = "IMPORTANT" if decision == "ENROLLED" and outcome in FAILED else "QUERY"
                found.add((sid, cid, "IE_MISMATCH", severity))
        if decision == "ENROLLED":
            for check_id, outcome in s["outcomes"].items():
                if outcome in FAILED:
                    found.add((sid, check_id, "INELIGIBLE_ENROLLED", "IMPORTANT"))
                elif outcome == "UNVERIFIABLE":
                    found.add((sid, check_id, "UNVERIFIABLE", "QUERY"))
        if decision == "SCREEN FAILURE" and recorded_failures and all(crit[c] in PASSED for c in recorded_failures):
            found.add((sid, ",".join(sorted(recorded_failures)), "SCREEN_FAIL_UNSUPPORTED", "QUERY"))
        if decided and (style[sid] == "MISSING" or absent_or_unknown):
            found.add((sid, "PC04", "PROCESS", "QUERY"))
        outcomes = list(crit.values())
        verdicts[sid] = ("INELIGIBLE" if any(o in FAILED for o in outcomes)
                         else "UNVERIFIABLE" if "UNVERIFIABLE" in outcomes else "ELIGIBLE")
    return found, verdicts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(study())
def test_compare_matches_the_oracle(subjects):
    specs = [subject(s["id"], s["decision"], site=s["site"],
                     **{c.replace(".", "_"): {"OUTCOME": o} for c, o in s["outcomes"].items()})
             for s in subjects]
    answers = [(s["id"], cid, a) for s in subjects for cid, a in s["answers"].items() if a is not None]
    result = compare(build(specs), {"ie": ie(answers)} if answers else {}, PROTOCOL, AS_OF)
    expected, verdicts = oracle(subjects)
    got = set(result.discrepancies.select("USUBJID", "CHECK_ID", "CLASS", "SEVERITY").iter_rows())
    assert got == expected
    assert dict(result.subjects.select("USUBJID", "RECOMPUTED").iter_rows()) == verdicts
