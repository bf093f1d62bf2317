"""The aggregates behind the report and the workbook: headline, per site, per criterion, matrix."""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from contracts import DISCREPANCIES, ELIGIBILITY, SUBJECTS
from reporting.summary import (
    criterion_counts,
    current,
    eligibility_matrix,
    headline,
    not_audited_table,
    site_criterion_counts,
    version_table,
)
from tests.support.sample_outputs import make_outputs


def subjects() -> pl.DataFrame:
    return pl.DataFrame(
        [("SZ003", "101", "S1", "ENROLLED", "INELIGIBLE", "2026-11-01", 2, "1.0"),
         ("SZ003", "101", "S2", "SCREEN FAILURE", "ELIGIBLE", None, 1, "1.0"),
         ("SZ003", "102", "S3", "IN SCREENING", "UNVERIFIABLE", None, 0, "2.0")],
        schema=SUBJECTS, orient="row")


def discrepancies() -> pl.DataFrame:
    rows = [("101", "S1", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT", "NEW"),
            ("101", "S1", "IN10", "IE_MISMATCH", "IMPORTANT", "OPEN"),
            ("101", "S2", "EX07,IN07", "SCREEN_FAIL_UNSUPPORTED", "QUERY", "OPEN"),
            ("102", "S3", "PC04", "PROCESS", "QUERY", "RESOLVED")]
    return pl.DataFrame([{"STUDYID": "SZ003", "SITEID": s, "USUBJID": u, "CHECK_ID": c, "CLASS": k,
                          "SEVERITY": v, "STATUS": st} for s, u, c, k, v, st in rows], schema=DISCREPANCIES)


def outputs():
    base = make_outputs(n_subjects=3, n_sites=2)
    return replace(base, subjects=subjects(), discrepancies=discrepancies())


def test_headline_counts_current_findings_only():
    head = headline(outputs())
    assert (head.subjects_screened, head.enrolled, head.screen_failures, head.in_screening,
            head.ineligible_enrolled) == (3, 1, 1, 1, 1)
    # S1's ineligible enrolment hidden by the checklist is one important deviation, as in dv (its IE_MISMATCH is
    # the same deviation: the headline said 2 where DV had 1 record)
    assert (head.important, head.query_discrepancies, head.new, head.resolved) == (1, 1, 1, 1)


def test_headline_counts_a_carried_ineligible_enrolment_apart_so_it_adds_up_to_dv():
    """A subject not evaluated tonight whose ineligible enrolment is carried open stays in dv; the headline's
    recomputed count could not include it and read one below dv's count (user trials)."""
    carried = pl.DataFrame([{"STUDYID": "SZ003", "SITEID": "102", "USUBJID": u, "CHECK_ID": "IN10.PLT",
                             "CLASS": "INELIGIBLE_ENROLLED", "SEVERITY": "IMPORTANT", "STATUS": "OPEN",
                             "CARRIED": why} for u, why in (("S9", "site 102 not audited tonight"),
                                                             # counted tonight already (a partly read site)
                                                             ("S1", "site 101 audited on an older delivery"))]
                           ).with_columns(pl.when(pl.col("USUBJID") == "S1").then(pl.lit("EX10"))
                                          .otherwise(pl.col("CHECK_ID")).alias("CHECK_ID")
                           ).with_columns(pl.col("CARRIED").cast(pl.String))
    resolved = carried.head(1).with_columns(pl.lit("S8").alias("USUBJID"), pl.lit("RESOLVED").alias("STATUS"))
    disc = pl.concat([discrepancies(), carried, resolved], how="diagonal_relaxed")
    head = headline(replace(outputs(), discrepancies=disc))
    assert (head.ineligible_enrolled, head.ineligible_enrolled_carried) == (1, 1)
    in_dv = current(disc).filter(pl.col("CLASS") == "INELIGIBLE_ENROLLED")["USUBJID"].n_unique()
    assert head.ineligible_enrolled + head.ineligible_enrolled_carried == in_dv == 2


def test_headline_counts_the_deliveries_the_report_lists_not_the_routine_ones():
    """The workbook's Summary said 10 deliveries not used where the report listed 6: superseded ones were in it."""
    statuses = ["SUPERSEDED", "SUPERSEDED", "REJECTED", "INCOMPLETE", "AFTER_AS_OF", "REJECTED"]
    base = outputs()
    manifest = {**base.run_manifest, "deliveries_not_used": [
        {"site": "101", "delivery": f"D{i}", "status": status, "reason": "r"} for i, status in enumerate(statuses)]}
    head = headline(replace(base, run_manifest=manifest))
    assert head.deliveries_rejected_or_incomplete == 3
    assert "deliveries_not_used" not in head.as_dict()


def test_subjects_and_open_findings_are_counted_per_protocol_version():
    table = version_table(outputs())
    # S3's PC04 is resolved; S1's ineligible enrolment is one important deviation (its IE_MISMATCH is the same one)
    assert table.rows() == [("1.0", 2, 1, 1, 1, 1), ("2.0", 1, 0, 0, 0, 0)]
    assert table.columns == ["TIVERS", "SUBJECTS", "ENROLLED", "INELIGIBLE_ENROLLED", "IMPORTANT", "QUERIES"]


def test_criteria_of_a_screen_failure_finding_are_counted_each():
    per = {(r["SITEID"], r["CRITERION"]): r["N"] for r in site_criterion_counts(outputs()).iter_rows(named=True)}
    assert per == {("101", "IN10"): 2, ("101", "EX07"): 1, ("101", "IN07"): 1}  # the RESOLVED PC04 is gone
    totals = criterion_counts(outputs())
    # two findings of IN10, one important deviation (the enrolment stands for the checklist answer that hid it)
    assert totals.row(0, named=True) == {"CRITERION": "IN10", "IMPORTANT": 1, "QUERY": 0, "N": 2}


def test_eligibility_matrix_shows_the_worst_component_per_criterion():
    rows = [("S1", "IN10", "IN10.PLT", "NOT_MET"), ("S1", "IN10", "IN10.HGB", "UNVERIFIABLE"),
            ("S1", "EX07", "EX07", "NOT_APPLICABLE"), ("S2", "IN10", "IN10.PLT", "MET"),
            ("S2", "IN10", "IN10.HGB", "UNVERIFIABLE"), ("S2", "EX07", "EX07", "APPLIES")]
    elig = pl.DataFrame([{"STUDYID": "SZ003", "SITEID": "101", "USUBJID": u, "CRITERION_ID": c, "CHECK_ID": k,
                          "OUTCOME": o} for u, c, k, o in rows], schema=ELIGIBILITY)
    matrix = eligibility_matrix(subjects(), elig)
    assert matrix.columns == ["STUDYID", "SITEID", "USUBJID", "SITE_DECISION", "RECOMPUTED", "IN10", "EX07"]
    assert matrix.select("USUBJID", "IN10", "EX07").rows() == [
        ("S1", "NOT_MET", "NOT_APPLICABLE"), ("S2", "UNVERIFIABLE", "APPLIES"), ("S3", None, None)]


def test_eligibility_matrix_ranks_an_unknown_outcome_after_every_known_one():
    # AWAITING sorts before NOT_APPLICABLE as text: only the rank decides; a missing outcome is left out
    rows = [("S1", "IN10", "IN10.PLT", "AWAITING"), ("S1", "IN10", "IN10.HGB", "NOT_APPLICABLE"),
            ("S1", "EX07", "EX07", None), ("S1", "EX07", "EX07.B", "MET"),
            ("S2", "IN10", "IN10.PLT", "AWAITING"), ("S2", "IN10", "IN10.HGB", "AWAITING")]
    elig = pl.DataFrame([{"STUDYID": "SZ003", "SITEID": "101", "USUBJID": u, "CRITERION_ID": c, "CHECK_ID": k,
                          "OUTCOME": o} for u, c, k, o in rows], schema=ELIGIBILITY)
    matrix = eligibility_matrix(subjects(), [elig.head(4), elig.tail(2)])  # in parts, as a cluster run gives it
    assert matrix.select("USUBJID", "IN10", "EX07").rows() == [
        ("S1", "NOT_APPLICABLE", "MET"), ("S2", "AWAITING", None), ("S3", None, None)]


def test_not_audited_lists_problems_not_routine_supersession():
    manifest = {
        "sites_not_audited": [{"site": "104", "reason": "every complete delivery was rejected"}],
        "deliveries": [
            {"site": "101", "delivery": "D1", "status": "SUPERSEDED", "reason": "a newer one is used"},
            {"site": "101", "delivery": "D2", "status": "USED", "reason": ""},
            {"site": "102", "delivery": "D1", "status": "USED", "reason": "newer D2 rejected; D1 used"},
            {"site": "102", "delivery": "D2", "status": "REJECTED", "reason": "sha256 mismatch"},
            {"site": "103", "delivery": "D3", "status": "INCOMPLETE", "reason": "no manifest.json"},
        ],
    }
    assert not_audited_table(manifest).rows() == [
        ("102", "D1", "USED (FALLBACK)", "newer D2 rejected; D1 used"),
        ("102", "D2", "REJECTED", "sha256 mismatch"),
        ("103", "D3", "INCOMPLETE", "no manifest.json"),
        ("104", None, "SITE NOT AUDITED", "every complete delivery was rejected"),
    ]


def test_key_points_name_what_needs_attention():
    from reporting.html import key_points

    base = outputs()
    manifest = dict(base.run_manifest)
    manifest["reconciliation"] = [{"DOMAIN": "LB", "BALANCED": False}, {"DOMAIN": "DM", "BALANCED": True}]
    disc = base.discrepancies.with_columns(pl.lit(20, pl.Int64).alias("DAYS_OPEN"))
    run = replace(base, run_manifest=manifest, discrepancies=disc)
    older = "audited on its older delivery D1 (fallback: newer delivery D2 rejected)"
    risk = pl.DataFrame({"SITEID": ["101", "102", "103"], "LABEL": ["Query rate", "Query rate", "Data-error rate"],
                         "RATE": [0.7, 0.2, 0.01], "STUDY_RATE": [0.18, 0.18, 0.9], "Z": [9.54, 0.3, -4.0],
                         "FLAG": [2, 0, -2], "NOTE": [None, None, older]})
    points = key_points(run, headline(run), risk)
    assert points == [
        "1 new important deviation(s) tonight, for S1.",
        "Site 199 was not audited: newest delivery rejected and no earlier complete delivery.",
        "1 delivery was rejected (site 199); see below for the reasons.",
        "Rows do not reconcile for LB: rows went missing between stages; examine the run before relying on it.",
        "Site 101: query rate 0.7 is far above the study's 0.18 (z = 9.5).",
        # a site audited on an older delivery is measured on it, and the sentence says so (a user trial read a far
        # lower data-error rate as a clean site, where its newest delivery had been rejected)
        f"Site 103: data-error rate 0.01 is far below the study's 0.9 (z = -4.0); {older}.",
        "3 finding(s) open for 14 days or more (longest 20 days).",
    ]


def test_every_count_and_listing_of_important_deviations_agrees_with_dv():
    """A user trial: the headline said 8 important deviations where dv.csv had 6 records; each ineligible enrolment
    the checklist hid was counted twice (its INELIGIBLE_ENROLLED and the criterion's IE_MISMATCH)."""
    import io
    import re

    import fastexcel

    from reporting.history import finding_counts
    from reporting.publish import render_outputs

    files = {f.key: f.data for f in render_outputs(outputs())}
    dv = pl.read_csv(io.BytesIO(files["dv.csv"]))
    html = files["report.html"].decode()
    assert re.search(r'id="n-important">1<', html) and dv.height == 1
    section = html.split('<section id="important">')[1].split("</section>")[0]
    assert "<td>IN10.PLT</td>" in section and "<td>IE_MISMATCH</td>" not in section
    book = fastexcel.read_excel(files["report.xlsx"])
    sheet = book.load_sheet("Important deviations", dtypes="string").to_polars()
    assert sheet["CLASS"].to_list() == ["INELIGIBLE_ENROLLED"]
    sites = book.load_sheet("Sites", dtypes="string").to_polars()
    # 199 was not audited: its row holds its rejection's data-quality finding (the Sites table adds up)
    assert dict(zip(sites["SITEID"], sites["IMPORTANT"], strict=True)) == {"101": "1", "102": "0", "199": "0"}
    assert finding_counts(discrepancies(), "2026-11-28")["IMPORTANT"].to_list() == [1]  # the trend's count
    # both findings stay in the discrepancies table, for the review to decide each
    disc = pl.read_csv(io.BytesIO(files["discrepancies.csv"]))
    assert sorted(disc.filter(pl.col("SEVERITY") == "IMPORTANT")["CLASS"].to_list()) == [
        "IE_MISMATCH", "INELIGIBLE_ENROLLED"]


def test_the_report_says_which_sites_risk_was_measured_on_an_older_delivery():
    """From the run manifest's deliveries to the Site risk sheet's NOTE and report.html's funnel tables."""
    from reporting.html import build_context
    from reporting.summary import risk_table

    base = outputs()
    deliveries = [{"site": "101", "delivery": "20261120T230000Z", "status": "USED",
                   "reason": "fallback: newer delivery 20261127T230000Z rejected"},
                  {"site": "101", "delivery": "20261127T230000Z", "status": "REJECTED", "reason": "sha256 mismatch"},
                  {"site": "102", "delivery": "20261127T230000Z", "status": "USED", "reason": ""}]
    run = replace(base, run_manifest={**base.run_manifest, "deliveries": deliveries})
    risk = risk_table(run)
    note = "audited on its older delivery 20261120T230000Z (fallback: newer delivery 20261127T230000Z rejected)"
    assert set(risk.filter(pl.col("SITEID") == "101")["NOTE"]) == {note}
    assert risk.filter(pl.col("SITEID") == "102")["NOTE"].null_count() == risk.filter(pl.col("SITEID") == "102").height
    at_101 = pl.col("SITEID") == "101"
    flagged = risk.with_columns(pl.when(at_101).then(-2).otherwise(0).alias("FLAG"),
                                pl.when(at_101).then(-4.0).otherwise(pl.col("Z")).alias("Z"),
                                pl.col("RATE").fill_null(0.0))
    panels = build_context(run, flagged, {}, None, None)["funnels"]
    assert panels and all(p["noted"] and [f["NOTE"] for f in p["flagged"]] == [note] for p in panels)


def test_carried_findings_are_counted_in_the_sites_and_versions_tables_and_not_in_tonights_rates():
    """A review: the carried findings of a site not audited tonight were in the headline and dv but in no Sites row
    (important 6 against 5), under a blank protocol version, and in a query rate whose denominator (tonight's
    subjects) lacks their subjects (a rate above 1)."""
    from reporting.summary import CARRIED_VERSION, risk_table, site_table

    base = outputs()
    carried = pl.DataFrame([
        {"STUDYID": "SZ003", "SITEID": "109", "USUBJID": "S9", "CHECK_ID": "IN10.PLT", "CLASS": "INELIGIBLE_ENROLLED",
         "SEVERITY": "IMPORTANT", "STATUS": "OPEN", "CARRIED": "site 109 not audited tonight"},
        {"STUDYID": "SZ003", "SITEID": "101", "USUBJID": "S8", "CHECK_ID": "EX07", "CLASS": "UNVERIFIABLE",
         "SEVERITY": "QUERY", "STATUS": "OPEN", "CARRIED": "subject not evaluated tonight: ..."}],
        schema={**DISCREPANCIES, "CARRIED": pl.String})
    # site 110, not audited either, has only its rejection's data-quality finding
    rejection = base.validation.head(1).with_columns(pl.lit("110").alias("SITEID"), pl.lit(None, pl.String)
                                                     .alias("USUBJID"))
    manifest = {**base.run_manifest, "sites_not_audited": [{"site": "109", "reason": "no delivery folder"},
                                                           {"site": "110", "reason": "every delivery rejected"}]}
    run = replace(base, discrepancies=pl.concat([base.discrepancies, carried], how="diagonal_relaxed"),
                  validation=pl.concat([base.validation, rejection]), run_manifest=manifest)
    head, sites = headline(run), site_table(run, risk_table(run))
    assert {"109", "110"} <= set(sites["SITEID"].to_list())
    assert sites["IMPORTANT"].sum() == head.important and sites["QUERIES"].sum() == head.query_discrepancies
    assert sites["DATA_FINDINGS"].sum() == head.data_findings
    # the risk indicators compare the sites audited tonight: a site not audited would move the study rate (helper-38)
    assert not {"109", "110"} & set(risk_table(run)["SITEID"].to_list())
    assert risk_table(run).equals(risk_table(replace(run, validation=base.validation)))
    versions = {row["TIVERS"]: row for row in version_table(run).iter_rows(named=True)}
    assert (versions[CARRIED_VERSION]["IMPORTANT"], versions[CARRIED_VERSION]["QUERIES"],
            versions[CARRIED_VERSION]["SUBJECTS"]) == (1, 1, 0)
    assert None not in versions
    rates = risk_table(run).filter(pl.col("INDICATOR") == "QUERY")
    assert (rates["NUMERATOR"] <= rates["DENOMINATOR"]).all()
    assert rates.filter(pl.col("SITEID") == "101")["NUMERATOR"].item() == 1  # S2's query, not the carried S8's


def test_a_note_is_no_data_finding_to_count_rate_or_review():
    """A user trial: an `encoding` given for an xlsx (a note: the setting was ignored, nothing asked of the site)
    raised its site's data-error rate, was counted in the Sites table and the headline, and waited in the review
    backlog as UNREVIEWED."""
    from reporting.review_sheet import review_row_count, review_rows
    from reporting.summary import risk_table, site_table
    from review.machine import load_machine

    base = make_outputs(n_subjects=200, n_sites=2)
    site = base.validation["SITEID"][0]
    note = base.validation.head(1).with_columns(
        pl.lit(None, pl.String).alias("USUBJID"), pl.lit("ingest.note.encoding_ignored").alias("EXPECTATION"),
        pl.lit("V-note").alias("FINDING_ID"), pl.lit("encoding").alias("VARIABLE"))
    with_note = replace(base, validation=pl.concat([base.validation, note]))
    assert headline(with_note).data_findings == headline(base).data_findings == base.validation.height

    def data_findings(outputs) -> int:
        return site_table(outputs, risk_table(outputs)).filter(pl.col("SITEID") == site)["DATA_FINDINGS"].item()

    assert data_findings(with_note) == data_findings(base)
    rates = [risk_table(o).filter((pl.col("SITEID") == site) & (pl.col("INDICATOR") == "DATA_ERROR"))["RATE"].item()
             for o in (base, with_note)]
    assert rates[0] == rates[1] > 0
    machine = load_machine()
    for outputs in (base, with_note):
        assert "V-note" not in review_rows(outputs.discrepancies, outputs.validation, machine)["FINDING_ID"]
    assert review_row_count(with_note.discrepancies, with_note.validation, machine) == review_row_count(
        base.discrepancies, base.validation, machine)
