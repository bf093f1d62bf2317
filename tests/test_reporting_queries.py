"""Site queries: neutral text quoting values, units, limits and dates, and a specific action."""

from __future__ import annotations

import polars as pl
import pytest

from contracts import DISCREPANCIES, ELIGIBILITY, FINDINGS
from ingestion.codes import NOTE_PREFIX, Code
from reporting.datafiles import DataFileError, load
from reporting.queries import (
    MAX_DETAIL_LINES,
    MAX_FINDINGS_PER_QUERY,
    QUERY_COLUMNS,
    build_site_queries,
    capped_detail,
    consolidate_queries,
    query_detail,
    render_template,
    split_by_site,
    with_earlier_answers,
    with_finding_answers,
    with_query_ids,
)


def discrepancy(usubjid, check, klass, severity="QUERY", status="NEW", evidence=None, site="101",
                assessment="IN10=Y; ENROLLED", recomputed="NOT_MET"):
    return {"STUDYID": "SZ003", "SITEID": site, "USUBJID": usubjid, "CHECK_ID": check, "CLASS": klass,
            "SEVERITY": severity, "SITE_ASSESSMENT": assessment, "RECOMPUTED": recomputed, "EVIDENCE": evidence,
            "STATUS": status, "FIRST_SEEN": "2026-11-20", "DAYS_OPEN": 8}


ELIG = pl.DataFrame(
    [{"STUDYID": "SZ003", "SITEID": "101", "USUBJID": "SZ003-101-0001", "CRITERION_ID": "IN10",
      "CHECK_ID": "IN10.PLT", "OUTCOME": "NOT_MET", "VALUE": "52", "UNIT": "10^9/L", "LIMIT": "60",
      "DTC": "2026-03-02", "REASON": None, "SOURCE": "SZ003/101/D1/lb.csv:14"},
     {"STUDYID": "SZ003", "SITEID": "101", "USUBJID": "SZ003-101-0002", "CRITERION_ID": "IN10",
      "CHECK_ID": "IN10.HGB", "OUTCOME": "UNVERIFIABLE", "VALUE": None, "UNIT": None, "LIMIT": "9.0",
      "DTC": None, "REASON": "no HGB result in the screening window", "SOURCE": None}],
    schema=ELIGIBILITY,
)


def queries(discrepancies: list[dict], validation: pl.DataFrame | None = None) -> pl.DataFrame:
    return build_site_queries(pl.DataFrame(discrepancies, schema=DISCREPANCIES),
                              validation if validation is not None else pl.DataFrame(schema=FINDINGS), ELIG)


def test_ineligible_enrolled_quotes_value_unit_limit_date_and_asks_for_action():
    q = queries([discrepancy("SZ003-101-0001", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT",
                             evidence="IN10.PLT 52 10^9/L on 2026-03-02 does not meet IN10 (limit 60 10^9/L).")])
    row = q.row(0, named=True)
    assert row["QUERY_TEXT"] == (
        "Subject SZ003-101-0001, IN10.PLT. IN10.PLT 52 10^9/L on 2026-03-02 does not meet IN10 (limit 60 10^9/L). "
        "Value used: 52 10^9/L. Protocol limit: 60 10^9/L. Result date: 2026-03-02. Please confirm this value "
        "against the source document. If it is correct, report the eligibility deviation as the protocol "
        "requires; if it was entered wrongly, correct it so that the next delivery carries the right value.")
    assert (row["VALUE"], row["UNIT"], row["LIMIT"], row["DTC"], row["SOURCE"]) == (
        "52", "10^9/L", "60", "2026-03-02", "SZ003/101/D1/lb.csv:14")
    assert q.columns == QUERY_COLUMNS


def test_a_converted_value_is_listed_with_what_the_site_delivered():
    eligibility = ELIG.with_columns(pl.when(pl.col("CHECK_ID") == "IN10.PLT").then(pl.lit("52 10^3/uL"))
                                    .alias("DELIVERED"))
    q = build_site_queries(pl.DataFrame([discrepancy("SZ003-101-0001", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT")],
                                        schema=DISCREPANCIES), pl.DataFrame(schema=FINDINGS), eligibility)
    detail = query_detail(q)
    assert detail.select("VALUE", "UNIT", "LIMIT", "DELIVERED").row(0) == ("52", "10^9/L", "60", "52 10^3/uL")
    # after VALUE, UNIT and LIMIT, which are all in the protocol unit (DELIVERED between them read as if
    # the limit were in the delivered unit)
    assert detail.columns.index("DELIVERED") == detail.columns.index("LIMIT") + 1


def test_missing_parts_are_left_out_not_printed_blank():
    q = queries([discrepancy("SZ003-101-0002", "IN10.HGB", "UNVERIFIABLE", recomputed="UNVERIFIABLE")])
    text = q["QUERY_TEXT"][0]
    assert text == ("Subject SZ003-101-0002, IN10.HGB cannot be verified from the delivered data. Reason: no HGB "
                    "result in the screening window. Please deliver the missing result with its unit, reference "
                    "range and date, or state why it is not available.")
    assert "None" not in text and "null" not in text


@pytest.mark.parametrize("every_text", [True, False])
def test_an_unverifiable_component_says_once_that_it_cannot_be_verified(every_text):
    # a site-monitor trial: "IN11.ALB cannot be verified: the test is recorded as not done. IN11.ALB could not be
    # verified: ALB not done or blank ..."; DETAIL keeps the evidence sentence as it is
    evidence = "IN10.HGB could not be verified: no HGB result in the screening window; the site recorded IN10 as met"
    q = build_site_queries(pl.DataFrame([discrepancy("SZ003-101-0002", "IN10.HGB", "UNVERIFIABLE",
                                                     recomputed="UNVERIFIABLE", evidence=evidence)],
                                        schema=DISCREPANCIES), pl.DataFrame(schema=FINDINGS), ELIG,
                           every_text=every_text)
    text = q["QUERY_TEXT"][0]
    assert text.count("verified") == 1, text
    assert "cannot be verified from the delivered data. No HGB result in the screening window; the site recorded IN10 "\
        "as met. Please" in text
    assert q["DETAIL"][0] == evidence


def test_process_checks_get_their_specific_action_and_resolved_rows_are_not_queried():
    q = queries([
        discrepancy("SZ003-101-0003", "PC05", "PROCESS", evidence="DM.AGE 54 but 55 from BRTHDTC and RFICDTC."),
        discrepancy("SZ003-101-0004", "IN07", "IE_MISMATCH", status="RESOLVED"),
    ])
    assert q.height == 1
    assert q["QUERY_TEXT"][0].startswith("Subject SZ003-101-0003, check PC05 (age). DM.AGE 54 but 55 from")
    assert "correct the one that is wrong" in q["QUERY_TEXT"][0]


def test_validation_findings_become_queries_with_the_observed_value():
    validation = pl.DataFrame(
        [{"STUDYID": "SZ003", "SITEID": "102", "USUBJID": "SZ003-102-0001", "DOMAIN": "LB", "VARIABLE": "LBORRESU",
          "EXPECTATION": "expect_column_values_to_be_in_set", "OBSERVED": "mg/dl?", "MESSAGE": "unit not recognised.",
          "SOURCE": "SZ003/102/D1/lb.csv:7"},
         {"STUDYID": "SZ003", "SITEID": "102", "USUBJID": None, "DOMAIN": "LB", "VARIABLE": None,
          "EXPECTATION": "ingest.file_rejected.missing_column", "OBSERVED": None, "MESSAGE": "LBDTC missing",
          "SOURCE": "SZ003/102/D1/lb.csv"}],
        schema=FINDINGS,
    )
    q = queries([], validation)
    texts = dict(zip(q["CHECK_ID"], q["QUERY_TEXT"], strict=True))
    assert texts["expect_column_values_to_be_in_set"] == (
        'Subject SZ003-102-0001, LB.LBORRESU value "mg/dl?" (SZ003/102/D1/lb.csv record 7 after the header): '
        'unit not recognised. Please '
        "check this value against the source document and correct it in the next delivery, or confirm that it is "
        "correct.")
    assert texts["ingest.file_rejected.missing_column"] == (
        "LBDTC missing. Please re-send the delivery as a new delivery folder with the LB file carrying every "
        "required variable of the data transfer specification (section 2).")
    assert set(q["ORIGIN"]) == {"VALIDATION"} and set(q["SEVERITY"]) == {"QUERY"}


def test_split_by_site():
    q = queries([discrepancy("SZ003-101-0003", "PC05", "PROCESS"),
                 discrepancy("SZ003-102-0003", "PC05", "PROCESS", site="102"),
                 discrepancy("SZ003-102-0004", "PC05", "PROCESS", site=None)])
    parts = split_by_site(q)
    assert list(parts) == ["101", "102", "UNKNOWN"]
    assert parts["102"]["USUBJID"].to_list() == ["SZ003-102-0003"]


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [3, 0, 4, 1, 2], [4, 3, 2, 1, 0]])
def test_split_by_site_keeps_each_sites_rows_in_order_whether_or_not_they_are_together(order):
    """Rows sorted by site are sliced, others partitioned: the same parts either way."""
    rows = pl.DataFrame({"SITEID": ["101", "101", None, "102", "102"], "N": [0, 1, 2, 3, 4]})[order]
    parts = split_by_site(rows)
    assert list(parts) == ["101", "102", "UNKNOWN"]
    for site, part in parts.items():
        expected = rows.filter(pl.col("SITEID").fill_null("UNKNOWN") == site)
        assert part.equals(expected)
    assert split_by_site(rows.clear()) == {}


@pytest.mark.parametrize(
    ("template", "row", "expected"),
    [
        ("A {X}[[ b {Y}]] c", {"X": "1", "Y": None}, "A 1 c"),
        ("A {X}[[ b {Y}]] c", {"X": None, "Y": "2"}, "A not recorded b 2 c"),
        ("[[{X}/{Y}]]", {"X": "1", "Y": ""}, ""),
        ("no fields", {"X": "1", "Y": "2"}, "no fields"),
    ],
)
def test_render_template(template, row, expected):
    frame = pl.DataFrame([row], schema={"X": pl.String, "Y": pl.String})
    assert frame.select(render_template(template))[0, 0] == expected


def test_reason_is_not_repeated_when_the_evidence_gives_it():
    q = queries([discrepancy("SZ003-101-0002", "IN10.HGB", "UNVERIFIABLE", recomputed="UNVERIFIABLE",
                             evidence="IN10.HGB could not be verified: no HGB result in the screening window; "
                                      "the site enrolled the subject.")])
    assert q["QUERY_TEXT"][0].lower().count("no hgb result in the screening window") == 1


def test_an_ingestion_note_stays_in_validation_and_is_not_a_query_to_the_site():
    rows = [{"STUDYID": "SZ003", "SITEID": "101", "USUBJID": None, "DOMAIN": "LB", "VARIABLE": "encoding",
             "EXPECTATION": expectation, "OBSERVED": "cp1252", "MESSAGE": "Site 101, file x: ...",
             "SOURCE": "SZ003/101/D1/manifest.json"}
            for expectation in ("ingest.note.encoding_ignored", "ingest.file_rejected.empty")]
    q = queries([], pl.DataFrame(rows, schema=FINDINGS))
    assert q["CHECK_ID"].to_list() == ["ingest.file_rejected.empty"]


def _detail(n: int, *, site: str = "101", check: str = "EX06.LUNG", cause: str | None = "MISSING",
            klass: str = "UNVERIFIABLE", start: int = 0) -> pl.DataFrame:
    """`n` per-finding site queries of one problem, as build_site_queries makes them."""
    rows = [{c: None for c in QUERY_COLUMNS} | {
        "QUERY_ID": f"{klass}:S{i}:{check}", "FINDING_ID": f"D-{site}{check}{i:05d}", "STUDYID": "SZ003",
        "SITEID": site, "USUBJID": f"SZ003-{site}-{i:04d}", "ORIGIN": "DISCREPANCY", "CHECK_ID": check,
        "CLASS": klass, "SEVERITY": "QUERY", "STATUS": "NEW" if i % 2 else "OPEN",
        "FIRST_SEEN": f"2026-11-{10 + i % 9}",
        "DAYS_OPEN": i % 9, "CAUSE": cause, "DETAIL": f"{check} could not be verified: no FEV1PP result ({i})",
        "QUERY_TEXT": f"Subject SZ003-{site}-{i:04d}, {check} cannot be verified. Please deliver the result."}
        for i in range(start, start + n)]
    return with_query_ids(pl.DataFrame(rows, schema={c: (pl.Int64 if c == "DAYS_OPEN" else pl.String)
                                                     for c in QUERY_COLUMNS}))


def test_one_problem_across_subjects_is_one_query_listing_them():
    detail = _detail(56)
    problem = consolidate_queries(detail).row(0, named=True)
    assert consolidate_queries(detail).height == 1
    assert (problem["N_SUBJECTS"], problem["N_FINDINGS"], problem["STATUS"]) == (56, 56, "OPEN")
    assert problem["SUBJECTS"].split(", ") == detail["USUBJID"].to_list()
    assert problem["FINDING_IDS"].split(" ") == detail["FINDING_ID"].to_list()
    assert (problem["FIRST_SEEN"], problem["DAYS_OPEN"]) == ("2026-11-10", 8)
    assert problem["QUERY_TEXT"].startswith("EX06.LUNG, the same finding (UNVERIFIABLE, MISSING) for 56 subjects: "
                                            "SZ003-101-0000, SZ003-101-0001")
    assert problem["QUERY_TEXT"].endswith("please handle each as in the first: Subject SZ003-101-0000, EX06.LUNG "
                                          "cannot be verified. Please deliver the result.")
    lines = problem["DETAIL"].split("\n")  # each finding's own detail, the first MAX_DETAIL_LINES of them
    assert lines[0] == "SZ003-101-0000: EX06.LUNG could not be verified: no FEV1PP result (0)"
    assert len(lines) == MAX_DETAIL_LINES + 1 and lines[-1] == (
        "... and 36 more findings: the Detail sheet lists them (up to 100 a query), "
        "the site's query detail CSV every one")


def test_a_query_is_new_only_when_each_finding_it_lists_is_new_and_data_quality_queries_have_no_status():
    new = _detail(3).with_columns(pl.lit("NEW").alias("STATUS"))
    assert consolidate_queries(new)["STATUS"].to_list() == ["NEW"]
    assert consolidate_queries(_detail(3))["STATUS"].to_list() == ["OPEN"]  # NEW, OPEN, NEW
    quality = _detail(3, check="LB.unit_known", klass="VALIDATION").with_columns(
        pl.lit("VALIDATION").alias("ORIGIN"), pl.lit(None, pl.String).alias("STATUS"))
    assert consolidate_queries(quality)["STATUS"].to_list() == [None]  # as docs/outputs.md says: empty


def test_queries_are_split_by_site_check_and_cause_and_a_single_finding_keeps_its_text():
    detail = pl.concat([_detail(3), _detail(2, cause="UNIT_NOT_CONVERTIBLE", start=10), _detail(2, site="102"),
                        _detail(1, check="IN10.PLT", start=20)])
    problems = consolidate_queries(detail)
    assert problems.select("SITEID", "CHECK_ID", "CAUSE", "N_FINDINGS").rows() == [
        ("101", "EX06.LUNG", "MISSING", 3), ("101", "EX06.LUNG", "UNIT_NOT_CONVERTIBLE", 2),
        ("101", "IN10.PLT", "MISSING", 1), ("102", "EX06.LUNG", "MISSING", 2)]
    single = problems.filter(pl.col("CHECK_ID") == "IN10.PLT").row(0, named=True)
    original = detail.filter(pl.col("CHECK_ID") == "IN10.PLT").row(0, named=True)
    assert (single["QUERY_TEXT"], single["DETAIL"]) == (original["QUERY_TEXT"], original["DETAIL"])
    assert problems["QUERY_ID"].n_unique() == problems.height
    listed = detail.group_by("QUERY_ID").agg(pl.col("FINDING_ID").str.join(" ").alias("FINDING_IDS"))
    assert problems.join(listed, on="QUERY_ID", suffix="_DETAIL").select(
        (pl.col("FINDING_IDS") == pl.col("FINDING_IDS_DETAIL")).all()).item()  # the Detail rows link to their query


def test_a_query_id_names_the_problem_whatever_the_night_brings():
    tonight, tomorrow = _detail(5), _detail(7, start=3)  # subjects come and go; the problem stays
    assert consolidate_queries(tonight)["QUERY_ID"].to_list() == consolidate_queries(tomorrow)["QUERY_ID"].to_list()
    reversed_ids = consolidate_queries(tonight.reverse())["QUERY_ID"].to_list()
    assert reversed_ids == consolidate_queries(tonight)["QUERY_ID"].to_list()


def test_a_very_large_problem_is_split_into_parts_that_fit_a_cell():
    detail = _detail(MAX_FINDINGS_PER_QUERY + 5)
    problems = consolidate_queries(detail)
    assert problems["N_FINDINGS"].to_list() == [MAX_FINDINGS_PER_QUERY, 5]
    assert problems["QUERY_ID"].n_unique() == 2
    assert problems["FINDING_IDS"].str.len_chars().max() < 32_767  # an Excel cell's limit
    assert sorted(problems["FINDING_IDS"].str.split(" ").explode().to_list()) == sorted(detail["FINDING_ID"].to_list())


def test_query_text_white_space_is_one_plain_space_whatever_the_site_typed():
    # tabs, line breaks, no-break and ideographic spaces, runs of spaces: each run becomes one space, as
    # replacing every `\s+` would (the cheaper pattern must give exactly that result)
    messages = ["a  b", "a\tb", "a\r\nb", "a\u00a0b", "a \u3000 b", " a b ", "a\u2028b", "plain text", "a\n", ""]
    validation = pl.DataFrame(
        [{"STUDYID": "SZ003", "SITEID": "101", "USUBJID": f"SZ003-101-{i:04d}", "DOMAIN": "LB", "VARIABLE": "LBORRES",
          "OBSERVED": "x", "SOURCE": "lb.csv:2", "EXPECTATION": "LB.not_null.LBORRES", "MESSAGE": message}
         for i, message in enumerate(messages)], schema_overrides={c: FINDINGS[c] for c in FINDINGS})
    texts = queries([], validation).sort("USUBJID")["QUERY_TEXT"]
    assert texts.str.contains(r"\s\s|[^\S ]|^\s|\s$").sum() == 0
    rendered = pl.Series([f"Subject SZ003-101-{i:04d}, LB.LBORRES value \"x\" (lb.csv record 2 after the header): "
                          f"{m.rstrip(' .')}." for i, m in
                          enumerate(messages)]).str.replace_all(r"\s+", " ").str.strip_chars()
    assert texts.str.extract(r"^(.*?) Please", 1).to_list() == rendered.to_list()


def test_the_detail_sheet_lists_a_querys_first_findings_then_names_the_file_with_every_one():
    detail = pl.DataFrame({
        "QUERY_ID": ["Q-A", "Q-B", "Q-A", "Q-A", "Q-B", "Q-A", "Q-A"],
        "FINDING_ID": [f"F{i}" for i in range(7)],
        "SITEID": ["101"] * 7, "USUBJID": [f"S{i}" for i in range(7)], "CHECK_ID": ["C"] * 7,
        "CLASS": ["VALIDATION"] * 7, "SEVERITY": ["QUERY"] * 7, "DOMAIN": ["LB"] * 7, "VARIABLE": ["LBORRES"] * 7,
        "VALUE": [f"v{i}" for i in range(7)], "DETAIL": [f"d{i}" for i in range(7)],
    })
    capped = capped_detail(detail, {"101": "site_queries/detail/101.csv"}, limit=3)
    assert capped["FINDING_ID"].to_list() == ["F0", "F1", "F2", "F3", "F4", None]  # Q-A: 3 findings, then the note
    note = capped.row(5, named=True)
    assert note["DETAIL"] == "... and 2 more findings of this query: site_queries/detail/101.csv lists all 5 of them"
    assert (note["QUERY_ID"], note["SITEID"], note["CHECK_ID"], note["DOMAIN"]) == ("Q-A", "101", "C", "LB")
    assert (note["USUBJID"], note["VALUE"]) == (None, None)
    assert capped.head(5).equals(detail.head(5))  # the findings listed are the rows themselves
    assert capped_detail(detail, {}, limit=5).equals(detail)  # nothing to cap: every row as it was


@pytest.mark.parametrize("with_identities", [True, False])
def test_only_the_quoted_texts_make_the_same_queries_and_rows(with_identities):
    # publication renders a finding's text only where its query quotes it: the first finding, and the
    # first MAX_DETAIL_LINES without a detail of their own; rows, order and queries stay the same
    validation = pl.DataFrame(
        [{"STUDYID": "SZ003", "SITEID": site, "USUBJID": f"SZ003-{site}-{i % 13:04d}", "DOMAIN": "LB",
          "VARIABLE": "LBORRESU", "OBSERVED": f"u{i}", "SOURCE": f"lb.csv:{i}", "EXPECTATION": check,
          "MESSAGE": None if i % 3 else f"unit u{i} unknown", "FINDING_ID": f"V-{site}{check}{i:04d}"}
         for site in ("101", "102") for check in ("LB.unit_known", "LB.not_null") for i in range(30)],
        schema_overrides={c: FINDINGS[c] for c in FINDINGS})
    if not with_identities:  # no identities to tell findings apart: every text is rendered, as before
        validation = validation.with_columns(pl.lit(None, pl.String).alias("FINDING_ID"))
    disc = pl.DataFrame([discrepancy(f"SZ003-101-{i:04d}", "IN10.HGB", "UNVERIFIABLE", recomputed="UNVERIFIABLE")
                         | {"FINDING_ID": f"D-{i}" if with_identities else None} for i in range(25)],
                        schema=DISCREPANCIES)
    every = build_site_queries(disc, validation, ELIG)
    quoted = build_site_queries(disc, validation, ELIG, every_text=False)
    assert quoted.drop("QUERY_TEXT").equals(every.drop("QUERY_TEXT"))
    assert consolidate_queries(quoted).equals(consolidate_queries(every))
    rendered = quoted["QUERY_TEXT"].is_not_null()
    assert quoted.filter(rendered)["QUERY_TEXT"].equals(every.filter(rendered)["QUERY_TEXT"])
    if with_identities:
        assert 0 < rendered.sum() < quoted.height


@pytest.mark.parametrize("every_text", [True, False])
def test_one_subjects_findings_of_one_check_are_listed_in_the_order_of_their_values(every_text):
    # a subject's missing IE answers read EX01, EX03, EX12 whatever their FINDING_IDs (digests) say
    criteria = ["EX12", "EX01", "EX03"]
    validation = pl.DataFrame(
        [{"STUDYID": "SZ003", "SITEID": "111", "USUBJID": "SZ003-111-0032", "DOMAIN": "IE", "VARIABLE": "IETESTCD",
          "OBSERVED": f"{criterion}: no answer", "SOURCE": "dm.csv:32",
          "EXPECTATION": "expect_column_values_to_be_null",
          "MESSAGE": f"ENROLLED subject has no IE answer for {criterion}", "FINDING_ID": finding}
         for criterion, finding in zip(criteria, ["V-0001", "V-0002", "V-0003"], strict=True)],
        schema_overrides={c: FINDINGS[c] for c in FINDINGS})
    listed = build_site_queries(pl.DataFrame(schema=DISCREPANCIES), validation, ELIG, every_text=every_text)
    assert listed["VALUE"].to_list() == ["EX01: no answer", "EX03: no answer", "EX12: no answer"]
    detail = consolidate_queries(listed)["DETAIL"].item().split("\n")
    assert [line.rsplit(" ", 1)[-1] for line in detail] == ["EX01", "EX03", "EX12"]


@pytest.mark.parametrize("every_text", [True, False])
def test_one_subjects_findings_of_one_check_are_listed_in_the_order_of_their_records(every_text):
    # a site-monitor trial: 19 lab rows of a subject missing from DM were listed 79, 89, 87, 82, ... (their
    # FINDING_IDs' digest order), each with the same VALUE; now by file and data row, as numbers (8 before 77)
    rows = [8, 79, 89, 87, 82, 77, 100]
    validation = pl.DataFrame(
        [{"STUDYID": "SZ003", "SITEID": "103", "USUBJID": "SZ003-103-0005", "DOMAIN": "LB", "VARIABLE": "USUBJID",
          "OBSERVED": "SZ003-103-0005", "SOURCE": f"SZ003/103/D/lb.csv:{row}", "EXPECTATION": "x",
          "CHECK": "LB.in_dm.USUBJID", "MESSAGE": "subject SZ003-103-0005 is not in DM (no demographics row): row "
          "not used", "FINDING_ID": f"V-{9 - i:04d}"} for i, row in enumerate(rows)],
        schema={**FINDINGS, "CHECK": pl.String})
    listed = build_site_queries(pl.DataFrame(schema=DISCREPANCIES), validation, ELIG, every_text=every_text)
    assert listed["SOURCE"].to_list() == [f"SZ003/103/D/lb.csv:{row}" for row in sorted(rows)]
    assert listed.columns == QUERY_COLUMNS
    [query] = consolidate_queries(listed).iter_rows(named=True)
    assert ("lb.csv record 8 after the header): subject SZ003-103-0005 is not in DM (no demographics row): row "
            "not used. Please deliver this subject's demographics (DM) record in the next delivery, or correct "
            "the subject identifier of the record if it is wrong.") in query["QUERY_TEXT"]
    assert "check this value" not in query["QUERY_TEXT"]
    # DETAIL names each finding's record, in file order, instead of repeating the message 19 times alone
    lines = query["DETAIL"].split("\n")
    assert lines[:2] == [
        f"SZ003-103-0005 (SZ003/103/D/lb.csv record {row} after the header): subject SZ003-103-0005 is "
        "not in DM (no demographics row): row not used" for row in (8, 77)]
    assert len(lines) == len(rows)


def test_the_detail_names_each_findings_record_as_a_site_finds_it():
    # a monitor works the Detail sheet record by record, and read its bare SOURCE `lb.csv:462` as line 462
    sources = {"SZ003/101/D/lb.csv:462": "record 462 after the header",
               "SZ003/101/D/LB.XLSX:007": "row 7 below the header",
               "SZ003/101/D/lb.parquet:3": "record 3",
               "SZ003/101/D/lb.csv:8; SZ003/101/D/lb.csv:9": "records 8, 9 after the header",
               "SZ003/101/D/a.csv:1; SZ003/101/D/b.xlsx:2":
                   "SZ003/101/D/a.csv record 1 after the header; SZ003/101/D/b.xlsx row 2 below the header",
               "SZ003/101/D/lb.csv": None}
    queries = pl.DataFrame({"SOURCE": [*sources, None]}).with_columns(
        pl.lit(None, pl.String).alias(c) for c in QUERY_COLUMNS if c != "SOURCE")
    detail = query_detail(queries)
    assert detail["RECORD"].to_list() == [*sources.values(), None]
    assert detail.columns.index("RECORD") == detail.columns.index("SOURCE") + 1


def test_a_query_shows_the_sites_last_answer_and_for_how_many_of_its_findings():
    problems = consolidate_queries(_detail(3))
    ids = problems["FINDING_IDS"].item().split(" ")
    states = pl.DataFrame({"FINDING_ID": [ids[0], ids[1], "D-other"],
                           "SITE_ANSWER": ["not done at screening", "sent again", "elsewhere"],
                           "SITE_ANSWERED_BY": ["site 101 (Dr Lee)", "site 101", "site 102"],
                           "SITE_ANSWERED_AT": ["2026-11-20T10:00:00Z", "2026-11-21T09:00:00Z",
                                                "2026-11-22T00:00:00Z"]})
    answered = with_earlier_answers(problems, states)
    assert answered["EARLIER_ANSWER"].item() == (
        '"sent again" (site 101, 2026-11-21); the latest of the answers to 2 of its 3 findings, which differ')
    assert answered.drop("EARLIER_ANSWER").equals(problems)
    same = states.with_columns(pl.lit("not done at screening").alias("SITE_ANSWER"))
    assert with_earlier_answers(problems, same)["EARLIER_ANSWER"].item() == (
        '"not done at screening" (site 101, 2026-11-21); the latest of the answers to 2 of its 3 findings')
    every = pl.DataFrame({"FINDING_ID": ids, "SITE_ANSWER": ["ok"] * 3, "SITE_ANSWERED_BY": ["site 101"] * 3,
                          "SITE_ANSWERED_AT": ["2026-11-20T10:00:00Z"] * 3})
    assert with_earlier_answers(problems, every)["EARLIER_ANSWER"].item() == '"ok" (site 101, 2026-11-20)'
    # a subject who moved: the answer another site gave is not shown to this one
    moved = every.with_columns(pl.lit("site 102 (Dr Who)").alias("SITE_ANSWERED_BY"))
    assert with_earlier_answers(problems, moved)["EARLIER_ANSWER"].item() is None
    assert with_earlier_answers(problems, None)["EARLIER_ANSWER"].item() is None
    assert with_earlier_answers(problems, states.head(0))["EARLIER_ANSWER"].item() is None


def test_each_finding_in_the_detail_shows_its_own_last_answer():
    detail = _detail(3)
    ids = detail["FINDING_ID"].to_list()
    states = pl.DataFrame({"FINDING_ID": [ids[0], ids[2]], "SITE_ANSWER": ["not done", "sent again"],
                           "SITE_ANSWERED_BY": ["site 101 (Dr Lee)", "site 102"],
                           "SITE_ANSWERED_AT": ["2026-11-20T10:00:00Z", "2026-11-21T09:00:00Z"]})
    shown = query_detail(with_finding_answers(detail, states))
    # the third was answered as site 102's (a subject who moved): not shown to site 101
    assert shown["EARLIER_ANSWER"].to_list() == ['"not done" (site 101 (Dr Lee), 2026-11-20)', None, None]
    assert shown.columns[-1] == "EARLIER_ANSWER"
    assert with_finding_answers(detail, None)["EARLIER_ANSWER"].null_count() == 3
    assert query_detail(detail)["EARLIER_ANSWER"].null_count() == 3  # rows without answers looked up


def _ingestion_finding(code: str, message: str, *, site: str = "110", domain: str | None = None,
                       variable: str | None = None, observed: str | None = None, source: str | None = None) -> dict:
    return {"STUDYID": "SZ003", "SITEID": site, "USUBJID": None, "DOMAIN": domain, "VARIABLE": variable,
            "EXPECTATION": code, "OBSERVED": observed, "MESSAGE": message, "SOURCE": source}


def test_a_delivery_finding_says_what_is_wrong_with_the_delivery_and_asks_for_it_not_for_a_value():
    # the new-user trial: a manifest listing a file that is not there was asked about as a data value
    # ('not recorded.files value "tr.csv" ... Please check this value against the source document')
    validation = pl.DataFrame([
        _ingestion_finding("ingest.delivery_rejected.missing_file",
                           "Site 110, delivery 20261127T230000Z: manifest.json lists tr.csv, not in the delivery "
                           "folder; the delivery is rejected.", variable="files", observed="tr.csv",
                           source="SZ003/110/20261127T230000Z/manifest.json"),
        _ingestion_finding("ingest.delivery_rejected.row_count",
                           "Site 110, file SZ003/110/20261120T230000Z/lb.csv: it has 1666 data rows but manifest.json "
                           "says 1667; delivery 20261120T230000Z is rejected.", domain="LB", variable="rows",
                           observed="1666", source="SZ003/110/20261120T230000Z/lb.csv"),
        _ingestion_finding("ingest.delivery_incomplete",
                           "Site 111, delivery 20261126T230000Z: no manifest.json after 49 hours: the upload never "
                           "finished, so this delivery is skipped.", site="111",
                           source="SZ003/111/20261126T230000Z/"),
        _ingestion_finding("ingest.delivery_fallback",
                           "Site 112, delivery 20261120T230000Z: used instead of the newer delivery 20261127T230000Z, "
                           "which was rejected; the site's latest data are not audited until it is corrected.",
                           site="112", observed="20261127T230000Z", source="SZ003/112/20261120T230000Z/"),
    ], schema=FINDINGS)
    q = queries([], validation)
    texts = dict(zip(q["CHECK_ID"], q["QUERY_TEXT"], strict=True))
    assert texts["ingest.delivery_rejected.missing_file"] == (
        "Site 110, delivery 20261127T230000Z: manifest.json lists tr.csv, not in the delivery folder; the delivery "
        "is rejected. Please re-send the delivery as a new delivery folder with every file its manifest.json lists "
        "(tr.csv included), uploading manifest.json last.")
    assert texts["ingest.delivery_incomplete"].endswith(
        "the upload never finished, so this delivery is skipped. Please complete the upload of this delivery (its "
        "remaining files, then manifest.json last), or, if it was abandoned, send a new complete delivery and ask "
        "the sponsor's data manager to remove the unfinished folder.")
    assert texts["ingest.delivery_fallback"].endswith(
        "Please correct the problems named in this site's queries about delivery 20261127T230000Z and send a new "
        "complete delivery.")
    assert "data rows (the header not counted)" in texts["ingest.delivery_rejected.row_count"]
    for text in texts.values():
        assert " value " not in text and "source document" not in text and "not recorded" not in text, text


#: codes about a record or a value ingestion could not use: their own ask, not "check this value"
_VALUE_CODES = {Code.VALUE_EXCEL_ERROR: "Please deliver the value itself",
                Code.ROW_RAGGED: "Please correct this record in the export, with as many fields as the header",
                Code.ROW_OTHER_STUDY: "Please leave other studies' records out of this study's deliveries",
                Code.ROW_FIELD_TOO_LONG: "Please check this record in the export"}


@pytest.mark.parametrize("code", [c for c in Code if c not in _VALUE_CODES and not c.startswith(NOTE_PREFIX)])
def test_every_finding_about_a_site_delivery_or_file_gets_a_delivery_text(code):
    validation = pl.DataFrame([_ingestion_finding(code, "Site 110, file SZ003/110/D/lb.csv: the problem.", domain="LB",
                                                  variable="LBDTC", observed="x", source="SZ003/110/D/lb.csv")],
                              schema=FINDINGS)
    text = queries([], validation)["QUERY_TEXT"][0]
    assert text.startswith("Site 110, file SZ003/110/D/lb.csv: the problem. Please ")
    assert "value" not in text and "source document" not in text, text


@pytest.mark.parametrize("code", sorted(_VALUE_CODES))
def test_a_record_or_value_ingestion_could_not_use_is_asked_for_what_would_fix_it(code):
    # a user trial: `CM value "11 fields" (…cm.csv record 2 after the header): … row 2: record starting on line 3
    # has 11 fields … Please check this value … or confirm that it is correct` (there is no value to confirm)
    message = ("Site 110, file SZ003/110/D/lb.csv, record 7 after the header: it starts on line 8 of the file and has "
               "11 fields where the header has 10; the row is not used.")
    validation = pl.DataFrame([_ingestion_finding(code, message, domain="LB", variable="LBORRES", observed="11 fields",
                                                  source="SZ003/110/D/lb.csv:7")], schema=FINDINGS)
    text = queries([], validation)["QUERY_TEXT"][0]
    assert text.startswith(message + " " + _VALUE_CODES[code]), text
    assert "value \"" not in text and "confirm that it is correct" not in text


def test_a_date_the_audit_cannot_read_is_asked_for_as_iso_8601():
    validation = pl.DataFrame([{"STUDYID": "SZ003", "SITEID": "119", "USUBJID": "SZ003-119-0030", "DOMAIN": "CM",
                                "VARIABLE": "CMSTDTC", "EXPECTATION": "expect_column_values_to_match_regex",
                                "CHECK": "CM.iso_date.CMSTDTC", "OBSERVED": "03/12/2019",
                                "MESSAGE": "CMSTDTC 03/12/2019 is not an ISO 8601 date (YYYY-MM-DD, YYYY-MM or YYYY): "
                                           "not used", "SOURCE": "SZ003/119/D/cm.csv:87"}],
                              schema={**FINDINGS, "CHECK": pl.String})
    text = queries([], validation)["QUERY_TEXT"][0]
    assert text == ('Subject SZ003-119-0030, CM.CMSTDTC value "03/12/2019" (SZ003/119/D/cm.csv record 87 after the '
                    "header): CMSTDTC 03/12/2019 is not an ISO 8601 date (YYYY-MM-DD, YYYY-MM or YYYY): not used. "
                    "Please deliver this date as YYYY-MM-DD (YYYY-MM or YYYY when the source document gives no more), "
                    "as the source document gives it, in the next delivery.")


def test_several_delivery_findings_of_one_kind_are_one_query_about_deliveries():
    validation = pl.DataFrame([
        _ingestion_finding("ingest.delivery_incomplete", f"Site 111, delivery {d}: no manifest.json after 49 hours",
                           site="111", source=f"SZ003/111/{d}/") for d in ("20261120T230000Z", "20261126T230000Z")],
        schema=FINDINGS)
    problem = consolidate_queries(queries([], validation)).row(0, named=True)
    assert problem["N_FINDINGS"] == 2
    assert problem["QUERY_TEXT"].startswith(
        "2 findings of the same kind (ingest.delivery_incomplete) about site 111's deliveries or files. DETAIL lists "
        "each; please handle each as in the first: Site 111, delivery 20261120T230000Z: no manifest.json after 49 "
        "hours. Please complete the upload")
    assert "not recorded" not in problem["QUERY_TEXT"]


def test_a_delivery_wording_for_a_code_that_does_not_exist_is_an_error(monkeypatch):
    import reporting.queries as module

    data = load("queries.yaml")
    wrong = {**data, "delivery": {**data["delivery"], "codes": {**data["delivery"]["codes"],
                                                               "ingest.delivery_rejectd": "{MESSAGE}."}}}
    monkeypatch.setattr(module, "load", lambda name: wrong)
    with pytest.raises(DataFileError, match=r"queries.yaml.*ingest\.delivery_rejectd"):
        queries([], pl.DataFrame(schema=FINDINGS))


def test_a_site_that_never_delivers_a_needed_result_is_asked_for_it_not_about_a_value():
    # issue 13's example, as the new-user trial saw it: 'FA.FATESTCD value "FEV1PP: no result at the site"
    # (…/fa.xlsx): site 104 delivers no FEV1PP result … Please check this value against the source document'
    message = ("site 104 delivers no FEV1PP result in FA for any subject: EX06.LUNG cannot be verified for its 43 "
               "ENROLLED subjects")
    validation = pl.DataFrame([{
        "STUDYID": "SZ003", "SITEID": "104", "USUBJID": None, "DOMAIN": "FA", "VARIABLE": "FATESTCD",
        "EXPECTATION": "expect_column_values_to_be_null", "CHECK": "DM.needed_results_site.SITE_MISSING_FA",
        "OBSERVED": "FEV1PP: no result at the site", "MESSAGE": message,
        "SOURCE": "SZ003/104/20261127T230000Z/fa.xlsx"}], schema={**FINDINGS, "CHECK": pl.String})
    text = queries([], validation)["QUERY_TEXT"].to_list()
    assert text == [f"{message}. If the site collects this result, please deliver it for these subjects in the next "
                    "delivery, with its unit, reference range and date; if it does not, please tell the sponsor's "
                    "data manager why, so that the criteria it serves can be assessed."]


@pytest.mark.parametrize(("check", "domain", "message", "ask"), [
    ("DM.needed_results.MISSING_LB", "LB", "ENROLLED subject has no ALB result in LB: IN11.ALB cannot be verified",
     "Please deliver this result with its unit, reference range and date in the next delivery, or state why it is "
     "not available."),
    ("DM.ie_checklist.MISSING_IE", "IE", "ENROLLED subject has no IE answer for EX08 (full checklist expected)",
     "Please complete the IE checklist, one answer per criterion with its date, in the next delivery."),
    ("LB.unique_key.LBTESTCD", "LB", "LBTESTCD=ALB occurs 2 times in LB (identical copies: …lb.csv records 8, 9 "
     "after the header); only the first copy is used", "Please deliver each record once in the next delivery"),
    ("LB.subject_site.USUBJID", "LB", "subject SZ003-107-0065 belongs to site 108 in DM but was delivered by site "
     "107: row not used", "Please check the subject identifier against the source document: correct it if it is "
     "wrong, or leave the record out of this site's deliveries if the subject is the other site's."),
    ("CM.formula_text.*", "CM", "CMTRT =HYPERLINK(\"x\") would run as a formula in a spreadsheet: reports show it "
     "quoted as text; please correct it at the source", "please correct it at the source."),
])
def test_a_finding_that_is_not_about_a_value_asks_for_its_own_action(check, domain, message, ask):
    # the second trial: a missing result ('LB.LBTESTCD value "ALB: no result" (…dm.parquet:65)'), a missing IE
    # answer, a record exported twice and a formula-like text each ended with "check this value ... or confirm
    # that it is correct", which is no action for them (and contradicted "correct it at the source")
    validation = pl.DataFrame([{
        "STUDYID": "SZ003", "SITEID": "107", "USUBJID": "SZ003-107-0065", "DOMAIN": domain, "VARIABLE": "X",
        "EXPECTATION": "expect_x", "CHECK": check, "OBSERVED": "ALB: no result", "MESSAGE": message,
        "SOURCE": "SZ003/107/20261127T230000Z/dm.parquet:65"}], schema={**FINDINGS, "CHECK": pl.String})
    [text] = queries([], validation)["QUERY_TEXT"].to_list()
    assert ask in text and message in text
    assert "check this value against the source document" not in text and "ALB: no result" not in text


def test_a_data_check_key_is_a_check_id_or_its_start_with_a_star_for_one_part():
    import re

    from reporting.check_keys import key_pattern
    matches = lambda key, check: re.match(key_pattern(key), check) is not None  # noqa: E731
    assert matches("*.unique_key", "LB.unique_key.LBTESTCD") and matches("*.unique_key", "DM.unique_key")
    assert matches("DM.needed_results", "DM.needed_results.MISSING_LB")
    assert not matches("DM.needed_results", "DM.needed_results_site.SITE_MISSING_VS")  # a part, not a prefix
    assert not matches("*.unique_key", "LB.unique_keys") and not matches("*.unique_key", "unique_key")


def _unverifiable(code: str | None, reason: str) -> str:
    """The query text of one UNVERIFIABLE IN10.HGB component whose cause is `code`."""
    elig = ELIG.with_columns(pl.when(pl.col("CHECK_ID") == "IN10.HGB").then(pl.lit(code, pl.String))
                             .alias("REASON_CODE"), pl.when(pl.col("CHECK_ID") == "IN10.HGB").then(pl.lit(reason))
                             .otherwise(pl.col("REASON")).alias("REASON"))
    disc = pl.DataFrame([discrepancy("SZ003-101-0002", "IN10.HGB", "UNVERIFIABLE", recomputed="UNVERIFIABLE")],
                        schema=DISCREPANCIES)
    return build_site_queries(disc, pl.DataFrame(schema=FINDINGS), elig)["QUERY_TEXT"][0]


def test_a_delivered_result_that_cannot_be_used_is_asked_to_be_corrected_not_delivered():
    text = _unverifiable("UNKNOWN_UNIT", "HGB unit g/hL is not in the unit catalog")
    assert text == ("Subject SZ003-101-0002, IN10.HGB cannot be verified: the delivered result cannot be used. "
                    "Reason: HGB unit g/hL is not in the unit catalog. Please check the result, its unit and "
                    "reference range against the source document and correct them in the next delivery, or "
                    "confirm them as recorded.")
    assert "deliver the missing result" not in _unverifiable("EXCLUDED_BY_VALIDATION", "HGB 250 g/dL is implausible")
    assert "reported only as a bound" in _unverifiable("CENSORED_UNDECIDABLE", "HGB <10 g/dL cannot decide >= 9")
    assert "none in the period the protocol requires" in _unverifiable("ONLY_BEFORE_WINDOW", "only before day -28")


@pytest.mark.parametrize("code", [None, "MISSING"])
def test_a_missing_result_is_still_asked_for(code):
    assert _unverifiable(code, "no HGB result in the screening window").endswith(
        "Please deliver the missing result with its unit, reference range and date, or state why it is not "
        "available.")


def test_a_cause_wording_for_a_reason_code_that_does_not_exist_is_an_error(monkeypatch):
    import reporting.queries as module

    data = load("queries.yaml")
    monkeypatch.setattr(module, "load", lambda name: {**data, "unverifiable_causes": {"NO_SUCH_CODE": "x"}})
    with pytest.raises(DataFileError, match="unverifiable_causes: 'NO_SUCH_CODE' is no reason code"):
        module._data()


def test_every_cause_of_an_unverifiable_component_but_a_missing_result_has_its_own_wording():
    """A new reason code must come with the ask a site gets for it (else it would be asked for the result)."""
    from contracts.enums import ReasonCode

    assert set(ReasonCode) - set(load("queries.yaml")["unverifiable_causes"]) == {ReasonCode.MISSING}
    assert "Please deliver the date (YYYY-MM-DD)" in _unverifiable("MISSING_DATE", "no informed consent date")


def _missing_ie(usubjid: str, criterion: str, site: str = "111") -> dict:
    return {"STUDYID": "SZ003", "SITEID": site, "USUBJID": usubjid, "DOMAIN": "IE", "VARIABLE": "IETESTCD",
            "EXPECTATION": "expect_column_values_to_be_null", "CHECK": "DM.ie_checklist.MISSING_IE",
            "OBSERVED": f"{criterion}: no answer",
            "MESSAGE": f"ENROLLED subject has no IE answer for {criterion} (full checklist expected)",
            "SOURCE": f"SZ003/{site}/20261127T230000Z/dm.csv:3"}


def test_an_incomplete_checklist_the_discrepancy_asks_for_is_not_asked_again_as_data_quality():
    # the dirty run: an enrolled subject without IE answers got PC04 ("please complete the IE checklist") and a
    # data-quality query of 16 findings with the same ask; a subject without PC04 keeps its own query
    validation = pl.DataFrame([_missing_ie("SZ003-111-0032", "EX01"), _missing_ie("SZ003-111-0032", "EX02"),
                               _missing_ie("SZ003-111-0040", "EX01")], schema={**FINDINGS, "CHECK": pl.String})
    pc04 = discrepancy("SZ003-111-0032", "PC04", "PROCESS", site="111",
                       evidence="The site's IE checklist is incomplete although the site enrolled the subject: "
                                "no answer for EX01, EX02")
    q = queries([pc04], validation)
    assert q.select("USUBJID", "CHECK_ID").rows() == [("SZ003-111-0032", "PC04"),
                                                      ("SZ003-111-0040", "DM.ie_checklist.MISSING_IE")]
    problems = consolidate_queries(q)
    assert problems["CHECK_ID"].to_list() == ["PC04", "DM.ie_checklist.MISSING_IE"]
    # without the discrepancy, both subjects' answers are asked for
    assert queries([], validation).height == 3
    # another site's PC04 for the same subject id covers nothing here
    assert queries([{**pc04, "SITEID": "112"}], validation).height == 4


def test_a_result_excluded_by_a_data_quality_check_points_at_that_record_not_at_its_unit():
    # the dirty run: EX10 could not be verified because CMSTDTC was written 25/11/2024; the query asked the
    # site to "check the result, its unit and reference range", which a date has not
    reason = "CMSTDTC 25/11/2024 is not an ISO 8601 date (YYYY-MM-DD, YYYY-MM or YYYY): not used"
    elig = ELIG.with_columns(pl.lit("EXCLUDED_BY_VALIDATION").alias("REASON_CODE"), pl.lit(reason).alias("REASON"),
                             pl.lit("SZ003/101/D1/cm.csv:4").alias("SOURCE"))
    disc = pl.DataFrame([discrepancy("SZ003-101-0002", "IN10.HGB", "UNVERIFIABLE", recomputed="UNVERIFIABLE")],
                        schema=DISCREPANCIES)
    text = build_site_queries(disc, pl.DataFrame(schema=FINDINGS), elig)["QUERY_TEXT"][0]
    assert text == (f"Subject SZ003-101-0002, IN10.HGB cannot be verified: a record it needs failed a data-quality "
                    f"check and was not used. Reason: {reason}. Record: SZ003/101/D1/cm.csv record 4 after "
                    "the header. The site's "
                    "data-quality query on that record says what is wrong with it. Please correct the record in "
                    "the next delivery, or confirm it as recorded; IN10.HGB is assessed again from the corrected "
                    "record.")


@pytest.mark.parametrize("code", ["NOT_DONE", "ONLY_BEFORE_WINDOW", "ONLY_AFTER_START", "INVALID_DATE",
                                  "PARTIAL_DATE_UNDECIDABLE", "MISSING_DATE"])
def test_a_component_without_a_usable_result_names_the_record_behind_its_reason(code):
    """The record a site monitor opens: the result not done, the latest one before the window, the one whose
    date cannot be placed (evaluation gives it as the component's SOURCE); without one, the text has no Record."""
    elig = ELIG.with_columns(pl.lit(code).alias("REASON_CODE"), pl.lit("HGB: see the record").alias("REASON"),
                             pl.lit("SZ003/101/D1/lb.csv:12").alias("SOURCE"))
    disc = pl.DataFrame([discrepancy("SZ003-101-0002", "IN10.HGB", "UNVERIFIABLE", recomputed="UNVERIFIABLE")],
                        schema=DISCREPANCIES)
    q = build_site_queries(disc, pl.DataFrame(schema=FINDINGS), elig)
    assert " Record: SZ003/101/D1/lb.csv record 12 after the header. Please " in q["QUERY_TEXT"][0]
    assert query_detail(q)["RECORD"].to_list() == ["record 12 after the header"]
    unnamed = build_site_queries(disc, pl.DataFrame(schema=FINDINGS), elig.with_columns(pl.lit(None).alias("SOURCE")))
    assert "Record" not in unnamed["QUERY_TEXT"][0]


@pytest.mark.parametrize(("source", "reference"), [
    ("SZ003/117/D/lb.csv:462", "SZ003/117/D/lb.csv record 462 after the header"),
    ("SZ003/117/D/lb.xlsx:9", "SZ003/117/D/lb.xlsx row 9 below the header"),
    ("SZ003/117/D/lb.parquet:9", "SZ003/117/D/lb.parquet record 9"),
    ("SZ003/121/D/pr.csv:3; SZ003/121/D/cm.csv:4",
     "SZ003/121/D/pr.csv record 3 after the header; SZ003/121/D/cm.csv record 4 after the header"),
    ("SZ003/104/D/fa.xlsx", "SZ003/104/D/fa.xlsx"),
])
def test_a_query_names_a_record_as_a_site_finds_it_in_its_file(source, reference):
    # a site-monitor trial: "lb.csv:462" was read as the file's row 462, the record above the HGB 250 on
    # line 463 (SOURCE counts the records after the header); SOURCE itself is unchanged
    validation = pl.DataFrame([{
        "STUDYID": "SZ003", "SITEID": "117", "USUBJID": "SZ003-117-0001", "DOMAIN": "LB", "VARIABLE": "LBORRES",
        "EXPECTATION": "expect_x", "CHECK": "LB.plausible_high.LBORRES", "OBSERVED": "250",
        "MESSAGE": "HGB 250 g/dL is implausible", "SOURCE": source}], schema={**FINDINGS, "CHECK": pl.String})
    row = queries([], validation).row(0, named=True)
    assert f'LB.LBORRES value "250" ({reference}): HGB 250 g/dL is implausible.' in row["QUERY_TEXT"]
    assert row["SOURCE"] == source


def test_a_result_in_a_unit_that_cannot_be_used_is_asked_for_in_an_accepted_unit_not_confirmed():
    # a site-monitor trial: HBV DNA in copies/mL was asked to be "checked ... or confirmed", which leaves EX05 and
    # IN09 unverifiable for good; the audit never guesses the assay's conversion
    message = ("HBVDNA unit copies/mL cannot be used (UNIT_NOT_CONVERTIBLE); accepted: IU/mL, log10 IU/mL: result "
               "not used")
    validation = pl.DataFrame([{
        "STUDYID": "SZ003", "SITEID": "104", "USUBJID": "SZ003-104-0093", "DOMAIN": "LB", "VARIABLE": "LBORRESU",
        "EXPECTATION": "expect_column_values_to_be_in_set", "CHECK": "LB.unit_known.LBORRESU", "OBSERVED": "copies/mL",
        "MESSAGE": message, "SOURCE": "SZ003/104/D/lb.csv:330"}], schema={**FINDINGS, "CHECK": pl.String})
    [text] = queries([], validation)["QUERY_TEXT"].to_list()
    assert text == ('Subject SZ003-104-0093, LB.LBORRESU value "copies/mL" (SZ003/104/D/lb.csv record 330 after the '
                    f"header): {message}. Please deliver the result in one of the accepted units, as "
                    "the laboratory report gives it, in the next delivery; if the laboratory reports it only in this "
                    "unit, please tell the sponsor's data manager, so that a conversion can be agreed.")


def test_a_data_quality_query_is_named_by_its_check_not_by_the_great_expectations_type():
    # two site-monitor trials: CHECK_ID said expect_column_values_to_be_in_set for a unit, a date, a formula and
    # a subject missing from DM alike; a finding without a check (ingestion's) keeps its code
    def finding(check: str | None, expectation: str) -> dict:
        return {"STUDYID": "SZ003", "SITEID": "121", "USUBJID": "SZ003-121-0001", "DOMAIN": "CM", "VARIABLE": "X",
                "EXPECTATION": expectation, "CHECK": check, "OBSERVED": "x", "MESSAGE": "m", "SOURCE": "cm.csv:4"}
    validation = pl.DataFrame([finding("CM.iso_date.CMSTDTC", "expect_column_values_to_be_in_set"),
                               finding("LB.unit_known.LBORRESU", "expect_column_values_to_be_in_set"),
                               finding(None, "ingest.file_rejected.empty")], schema={**FINDINGS, "CHECK": pl.String})
    problems = consolidate_queries(queries([], validation))
    assert sorted(problems.select("CHECK_ID", "CAUSE").rows(), key=str) == [
        ("CM.iso_date.CMSTDTC", "CM.iso_date.CMSTDTC"), ("LB.unit_known.LBORRESU", "LB.unit_known.LBORRESU"),
        ("ingest.file_rejected.empty", None)]


def test_an_abandoned_upload_older_than_the_audited_delivery_is_not_asked_to_be_completed():
    message = ("Site 119, delivery 20261126T230000Z: no manifest.json after 52 hours: the upload never finished; the "
               "newer complete delivery 20261127T230000Z is audited, so nothing of this folder is used or missing")
    [text] = queries([], pl.DataFrame([_ingestion_finding("ingest.delivery_incomplete.superseded", message,
                                                          site="119")], schema=FINDINGS))["QUERY_TEXT"].to_list()
    assert text == (f"{message}. Please remove the unfinished folder, or ask the sponsor's data manager to remove "
                    "it, so that it is not reported again; nothing needs to be sent again.")


def test_a_creatinine_clearance_query_names_the_records_the_audit_computed_it_from():
    # the trials: PC06 asked a site to "check the serum creatinine, body weight, age ..." and quoted none of
    # them; it now quotes the clearance's row (value, limit, date) and its records (creatinine, weight, DM)
    from reporting.queries import quoted_value_keys

    source = "SZ003/115/D/lb.csv:878; SZ003/115/D/vs.csv:553; SZ003/115/D/dm.csv:47"
    elig = pl.DataFrame([{"STUDYID": "SZ003", "SITEID": "115", "USUBJID": "SZ003-115-0047", "CRITERION_ID": "IN11",
                          "CHECK_ID": "IN11.CRCL", "OUTCOME": "MET", "VALUE": "90.1937", "UNIT": "mL/min",
                          "LIMIT": "40", "DTC": "2025-12-12", "REASON": None, "SOURCE": source,
                          "REASON_CODE": "ANY"}], schema={**ELIGIBILITY, "REASON_CODE": pl.String})
    pc06 = {**discrepancy("SZ003-115-0047", "PC06", "PROCESS", site="115", assessment="CREATCLR=32 mL/min",
                          recomputed="IN11.CRCL=90.3 mL/min", evidence="Site-reported CREATCLR 32 mL/min differs")}
    disc = pl.DataFrame([pc06], schema=DISCREPANCIES)
    assert quoted_value_keys(disc).rows() == [("SZ003", "115", "SZ003-115-0047", "IN11.CRCL")]
    row = build_site_queries(disc, pl.DataFrame(schema=FINDINGS), elig).row(0, named=True)
    assert (row["CHECK_ID"], row["VALUE"], row["UNIT"], row["LIMIT"], row["DTC"], row["SOURCE"], row["CAUSE"]) == (
        "PC06", "90.1937", "mL/min", "40", "2025-12-12", source, None)  # its own cause, not the component's
    assert ("Site-reported CREATCLR 32 mL/min differs. The audit computed it from these records: SZ003/115/D/lb.csv "
            "record 878 after the header; SZ003/115/D/vs.csv record 553 after the header; SZ003/115/D/dm.csv "
            "record 47 after the header. Please check the serum creatinine") in row["QUERY_TEXT"]
    # another process check quotes no component's row
    pc05 = discrepancy("SZ003-115-0047", "PC05", "PROCESS", site="115", recomputed="AGE=63")
    assert build_site_queries(pl.DataFrame([pc05], schema=DISCREPANCIES), pl.DataFrame(schema=FINDINGS),
                              elig)["SOURCE"].to_list() == [None]


def test_values_of_component_must_be_a_list_of_check_ids(monkeypatch):
    import reporting.queries as module

    data = load("queries.yaml")
    assert data["values_of_component"] == ["PC06"]
    monkeypatch.setattr(module, "load", lambda name: {**data, "values_of_component": "PC06"})
    with pytest.raises(DataFileError, match="values_of_component must be a list of check ids"):
        module._data()


def test_pc04_is_one_query_per_missing_part_of_the_checklist_not_one_for_every_subject():
    """helper-45: 23 subjects without the amendment's EX17 and one without EX01-EX16 were one PC04 query ("please
    handle each as in the first"); each problem (PC04's RECOMPUTED: queries.yaml problem_in_recomputed) is its own."""
    found = [discrepancy(f"SZ003-101-000{n}", "PC04", "PROCESS", recomputed="no answer for EX17",
                         assessment="IE full checklist, 27 of 28 criteria answered Y/N; ENROLLED") for n in (1, 2)]
    found.append(discrepancy("SZ003-101-0003", "PC04", "PROCESS", recomputed="no answer for EX01, EX02",
                             assessment="IE full checklist, 26 of 28 criteria answered Y/N; ENROLLED"))
    found.append(discrepancy("SZ003-101-0004", "PC05", "PROCESS", recomputed="AGE=63"))
    found.append(discrepancy("SZ003-101-0005", "PC05", "PROCESS", recomputed="AGE=71"))
    # the same undecided answer whatever the site wrote (helper-48: `EX03=u` and `EX03=?` were two queries)
    found += [discrepancy(f"SZ003-101-000{n}", "PC04", "PROCESS", recomputed=f"answer not Y/N for EX03={answer}")
              for n, answer in ((6, "u"), (7, "?"))]
    queries = build_site_queries(pl.DataFrame(found, schema=DISCREPANCIES), pl.DataFrame(schema=FINDINGS), ELIG)
    problems = consolidate_queries(queries)
    assert sorted(problems.select("CHECK_ID", "CAUSE", "SUBJECTS").rows(), key=str) == sorted([
        ("PC04", "answer not Y/N for EX03", "SZ003-101-0006, SZ003-101-0007"),
        ("PC04", "no answer for EX01, EX02", "SZ003-101-0003"),
        ("PC04", "no answer for EX17", "SZ003-101-0001, SZ003-101-0002"),
        ("PC05", None, "SZ003-101-0004, SZ003-101-0005")], key=str)  # another check's RECOMPUTED is its values


def test_a_process_checks_own_records_and_date_are_its_query_detail():
    # a user trial: "… 49 more screening record(s) are also dated before consent" with no record named anywhere
    # in date order, which is not the files' order
    records = "; ".join(f"SZ003/101/D1/vs.csv:{row}" for row in (5, 3, 4, 6, 7, 8, 9))
    # (a study that made PC01 a query in process_checks.yaml: an important finding is a query of its own)
    pc01 = [{**discrepancy(subject, "PC01", "PROCESS", "QUERY", evidence=f"VS WEIGHT of {subject} precedes "
                           "informed consent"), "DTC": "2026-02-10", "SOURCE": records}
            for subject in ("SZ003-101-0001", "SZ003-101-0002")]
    q = queries(pc01)
    detail = query_detail(q)
    assert detail.select("DTC", "SOURCE", "RECORD").unique().rows() == [
        ("2026-02-10", records, "records 3, 4, 5, 6, 7, 8, 9 after the header")]
    assert query_detail(queries([{**pc01[0], "SOURCE": "SZ003/101/D1/vs.csv:5; SZ003/101/D1/lb.csv:9; "
                                                    "SZ003/101/D1/vs.csv:3"}]))["RECORD"].to_list() == [
        "SZ003/101/D1/vs.csv records 3, 5 after the header; SZ003/101/D1/lb.csv record 9 after the header"]
    # the query's DETAIL quotes each finding's first five records, the file once, and says where the others are
    # (helper-34: the path repeated for each record, in date order, read as a list of unrelated places)
    problem = consolidate_queries(q).row(0, named=True)
    assert problem["N_FINDINGS"] == 2
    first_five = "SZ003/101/D1/vs.csv records 3, 4, 5, 6, 7 after the header"
    assert (f"SZ003-101-0001 ({first_five}; and 2 more records (RECORD in the query detail lists them)): "
            "VS WEIGHT of SZ003-101-0001 precedes informed consent") in problem["DETAIL"]
    # one record more is "1 more record"; a whole-file part is named apart from the file's rows (helper-35)
    six = queries([{**pc01[0], "SOURCE": "; ".join(f"SZ003/101/D1/vs.csv:{row}" for row in range(3, 9))}])
    assert "vs.csv records 3, 4, 5, 6, 7 after the header; and 1 more record (RECORD" in six["QUERY_TEXT"][0]
    whole = query_detail(queries([{**pc01[0], "SOURCE": "SZ003/101/D1/lb.csv; SZ003/101/D1/lb.csv:3"}]))
    assert whole["RECORD"].to_list() == ["SZ003/101/D1/lb.csv; SZ003/101/D1/lb.csv record 3 after the header"]
    # and the text itself names them, for a site working from its queries CSV alone (a user trial)
    assert (f"Records dated before consent: {first_five}; and 2 more records (RECORD in the query detail lists "
            "them). Please confirm the informed consent date") in q["QUERY_TEXT"][0]
    # records of several files (PC01 reads LB, VS, FA and TR, in date order): RECORD still names every one
    # (helper-28), each file once with its rows in order
    mixed = "SZ003/101/D1/vs.csv:9; SZ003/101/D1/lb.csv:4; SZ003/101/D1/vs.csv:2; SZ003/101/D1/vs.csv:10"
    detail = query_detail(queries([{**pc01[0], "SOURCE": mixed}]))
    assert detail["RECORD"].item() == ("SZ003/101/D1/vs.csv records 2, 9, 10 after the header; "
                                       "SZ003/101/D1/lb.csv record 4 after the header")


def test_an_important_finding_is_a_query_of_its_subject_and_the_others_keep_their_ids():
    # a user trial: a new ineligible enrolment (PLT 45) was listed in the OPEN query of another subject's, beside
    # that subject's earlier answer, and the site's next answer was recorded on both deviations
    important = [discrepancy(subject, "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT", status=status)
                 for subject, status in (("SZ003-101-0001", "OPEN"), ("SZ003-101-0002", "NEW"))]
    gaps = [discrepancy(subject, "IN10.HGB", "UNVERIFIABLE", "QUERY") for subject in ("SZ003-101-0001",
                                                                                       "SZ003-101-0002")]
    problems = consolidate_queries(queries([*important, *gaps]))
    assert problems.select("CHECK_ID", "SUBJECTS", "STATUS").rows() == [
        ("IN10.PLT", "SZ003-101-0001", "OPEN"), ("IN10.PLT", "SZ003-101-0002", "NEW"),
        ("IN10.HGB", "SZ003-101-0001, SZ003-101-0002", "NEW")]
    # a query id is the same night after night: a data-quality or query-level problem's as before, whichever
    # subjects it lists, an important one's for its subject
    alone = consolidate_queries(queries(gaps[:1]))
    assert alone["QUERY_ID"].item() == problems.filter(pl.col("CHECK_ID") == "IN10.HGB")["QUERY_ID"].item()
    assert problems["QUERY_ID"].n_unique() == 3


def test_a_data_quality_query_is_new_or_open_as_its_findings_history_says():
    # a user trial: a site could not tell its new data-quality queries from the old ones (STATUS was empty)
    def finding(site: str, row: int, days: int | None) -> dict:
        return {"STUDYID": "SZ003", "SITEID": site, "USUBJID": f"SZ003-{site}-0001", "DOMAIN": "LB",
                "VARIABLE": "LBDTC", "OBSERVED": "05/10/2026", "SOURCE": f"SZ003/{site}/D/lb.csv:{row}",
                "EXPECTATION": "x", "CHECK": "LB.iso_date.LBDTC", "MESSAGE": "not an ISO 8601 date",
                "FINDING_ID": f"V-{site}{row}", "FIRST_SEEN": None if days is None else f"2026-11-{28 - days}",
                "DAYS_OPEN": days}
    validation = pl.DataFrame([finding("101", 1, 0), finding("101", 2, 0), finding("102", 1, 0),
                               finding("102", 2, 3), finding("103", 1, None)],
                              schema={**FINDINGS, "CHECK": pl.String, "FINDING_ID": pl.String,
                                      "FIRST_SEEN": pl.String, "DAYS_OPEN": pl.Int64})
    listed = build_site_queries(pl.DataFrame(schema=DISCREPANCIES), validation, ELIG)
    assert listed["STATUS"].to_list() == ["NEW", "NEW", "NEW", "OPEN", None]
    assert consolidate_queries(listed).select("SITEID", "STATUS").rows() == [
        ("101", "NEW"), ("102", "OPEN"), ("103", None)]


def test_a_finding_carried_from_an_earlier_night_is_not_asked_again():
    """Its site was not audited tonight, or its subject not evaluated: tonight's audit has no value to quote, and
    what kept it out (the site's rejection, a duplicated DM record) is what the site is asked tonight."""
    carried = {**discrepancy("SZ003-101-0001", "IN10.PLT", "INELIGIBLE_ENROLLED", severity="IMPORTANT",
                             status="OPEN"), "CARRIED": "site 101 not audited tonight"}
    tonight = {**discrepancy("SZ003-101-0003", "PC05", "PROCESS", evidence="DM.AGE 54 but 55."), "CARRIED": None}
    schema = {**DISCREPANCIES, "CARRIED": pl.String}
    q = build_site_queries(pl.DataFrame([carried, tonight], schema=schema), pl.DataFrame(schema=FINDINGS), ELIG)
    assert q["USUBJID"].to_list() == ["SZ003-101-0003"]
    both = build_site_queries(pl.DataFrame([{**carried, "CARRIED": None}, tonight], schema=schema),
                              pl.DataFrame(schema=FINDINGS), ELIG)
    assert sorted(both["USUBJID"].to_list()) == ["SZ003-101-0001", "SZ003-101-0003"]


def test_an_ineligible_enrolment_judged_not_a_deviation_takes_its_checklist_answer_out_of_the_queries():
    """A user trial: the INELIGIBLE_ENROLLED judged NOT_A_DEVIATION left the site's list, and the IE_MISMATCH it had
    covered (the same deviation, reporting.dv.judged_with_their_enrolment) took its place as a new query. An
    IE_MISMATCH of another subject, whose enrolment is still open, stays covered by it as before; a confirmed one
    stands on its own."""
    rows = [discrepancy("SZ003-101-0001", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT"),
            discrepancy("SZ003-101-0001", "IN10", "IE_MISMATCH", "IMPORTANT"),
            discrepancy("SZ003-101-0002", "IN10.HGB", "INELIGIBLE_ENROLLED", "IMPORTANT"),
            discrepancy("SZ003-101-0002", "IN10", "IE_MISMATCH", "IMPORTANT")]
    judged = (pl.col("USUBJID") == "SZ003-101-0001") & (pl.col("CLASS") == "INELIGIBLE_ENROLLED")
    frame = pl.DataFrame(rows, schema=DISCREPANCIES).with_columns(
        pl.concat_str([pl.lit("D-"), pl.col("USUBJID").str.slice(-4), pl.col("CLASS").str.slice(0, 3)]).alias(
            "FINDING_ID"),
        pl.when(judged).then(pl.lit("NOT_A_DEVIATION")).otherwise(pl.lit("UNREVIEWED")).alias("REVIEW_STATE"),
        pl.when(judged).then(pl.lit(None, pl.String)).otherwise(pl.lit("NOT YET REVIEWED")).alias("DV_REVIEW"))
    q = build_site_queries(frame, pl.DataFrame(schema=FINDINGS), ELIG)
    assert q.select("USUBJID", "CLASS", "COVERED_FINDING_IDS").rows() == [
        ("SZ003-101-0002", "INELIGIBLE_ENROLLED", "D-0002IE_")]
    confirmed = frame.with_columns(pl.when((pl.col("USUBJID") == "SZ003-101-0001") & (pl.col("CLASS") == "IE_MISMATCH"))
                                   .then(pl.lit("CONFIRMED")).otherwise(pl.col("DV_REVIEW")).alias("DV_REVIEW"))
    q = build_site_queries(confirmed, pl.DataFrame(schema=FINDINGS), ELIG)
    assert ("SZ003-101-0001", "IE_MISMATCH") in q.select("USUBJID", "CLASS").rows()


@pytest.mark.parametrize("every_text", [True, False])
def test_the_version_note_follows_the_nights_subjects_not_the_quoted_rows(every_text):
    """Publication passes only the eligibility rows the queries quote; on a night that judged subjects by two
    versions whose discrepancies are all of one, the note must still name the version (a review found it missing on
    a cluster run): the subjects table says which versions the night judged by."""
    evidence = "IN10.PLT 52 10^9/L on 2026-03-02 does not meet IN10 (limit 60 10^9/L)."
    disc = pl.DataFrame([discrepancy("SZ003-101-0001", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT",
                                     evidence=evidence)], schema=DISCREPANCIES)
    quoted = ELIG.head(1).with_columns(pl.lit("1.0").alias("TIVERS"))
    subjects = pl.DataFrame({"USUBJID": ["SZ003-101-0001", "SZ003-101-0009"], "TIVERS": ["1.0", "2.0"]})
    empty = pl.DataFrame(schema=FINDINGS)
    with_subjects = build_site_queries(disc, empty, quoted, every_text=every_text, subjects=subjects)
    assert with_subjects["QUERY_TEXT"][0].endswith(" Judged by protocol version 1.0.")
    # a night of one version says nothing of versions
    one = build_site_queries(disc, empty, quoted, every_text=every_text, subjects=subjects.head(1))
    assert "Judged by" not in one["QUERY_TEXT"][0]
    # without the subjects table, the quoted rows are all there is to go by (of one version: no note)
    assert "Judged by" not in build_site_queries(disc, empty, quoted, every_text=every_text)["QUERY_TEXT"][0]


def test_every_finding_carries_the_version_its_subject_was_judged_by():
    """helper-45: only the query text named the version; a reviewer filtering a site's detail by version could not.
    The column is there on a night of one version too, and empty for a finding about no subject."""
    disc = pl.DataFrame([discrepancy("SZ003-101-0001", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT"),
                         discrepancy("SZ003-101-0009", "PC05", "PROCESS", recomputed="AGE=63")], schema=DISCREPANCIES)
    site_gap = {**dict.fromkeys(FINDINGS), "STUDYID": "SZ003", "SITEID": "101", "DOMAIN": "DM", "VARIABLE": "LBTESTCD",
                "EXPECTATION": "expect_column_values_to_be_null", "MESSAGE": "Site 101 delivers no ALB result in LB",
                "SOURCE": "SZ003/101/D1/dm.csv", "FINDING_ID": "V-0000000000000001"}
    subjects = pl.DataFrame({"USUBJID": ["SZ003-101-0001", "SZ003-101-0009"], "TIVERS": ["1.0", "2.0"]})
    queries = build_site_queries(disc, pl.DataFrame([site_gap], schema=FINDINGS), ELIG, subjects=subjects)
    detail = query_detail(queries)
    assert detail.columns.index("TIVERS") == detail.columns.index("USUBJID") + 1
    assert dict(zip(detail["USUBJID"], detail["TIVERS"], strict=True)) == {
        "SZ003-101-0001": "1.0", "SZ003-101-0009": "2.0", None: None}
    one = build_site_queries(disc, pl.DataFrame(schema=FINDINGS), ELIG, subjects=subjects.head(1))
    assert one["TIVERS"].to_list() == ["1.0", None]  # 0009 is no subject of this night's table
