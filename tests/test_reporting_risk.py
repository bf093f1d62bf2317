"""Site risk indicators and their funnel-plot (z-score) flags, on hand-computed values."""

from __future__ import annotations

import polars as pl
import pytest

from reporting.risk import funnel_limits, inputs_table, older_delivery_notes, site_risk


def subjects() -> pl.DataFrame:
    rows = []
    # site A: 10 screened, 8 screen failures; B: 10 screened, 2 SF; C: 100 screened, 30 SF; D: 2 screened, 2 SF
    for site, n, sf in (("A", 10, 8), ("B", 10, 2), ("C", 100, 30), ("D", 2, 2)):
        for i in range(n):
            decision = "SCREEN FAILURE" if i < sf else "ENROLLED"
            recomputed = "INELIGIBLE" if (site == "B" and i == n - 1) else "ELIGIBLE"
            rows.append({"SITEID": site, "USUBJID": f"{site}-{i}", "SITE_DECISION": decision,
                         "RECOMPUTED": recomputed})
    return pl.DataFrame(rows)


def validation() -> pl.DataFrame:
    rows = [("A", "LBORRESU")] * 30 + [("B", "LBORRES")] * 5 + [("C", "VSORRESU")] * 10
    return pl.DataFrame({"SITEID": [s for s, _ in rows], "VARIABLE": [v for _, v in rows],
                         "USUBJID": [f"{s}-0" for s, _ in rows]})


def inputs() -> pl.DataFrame:
    manifest = {"inputs": [{"site": s, "domain": "LB", "rows_read": 1000} for s in "ABC"]
                + [{"site": s, "domain": "DM", "rows_read": 5} for s in "ABCD"]}
    return inputs_table(manifest)


@pytest.fixture(scope="module")
def risk() -> dict[tuple[str, str], dict]:
    tables = {"subjects": subjects(), "discrepancies": pl.DataFrame(schema={"SITEID": pl.String,
                                                                          "USUBJID": pl.String,
                                                                          "SEVERITY": pl.String}),
              "validation": validation(), "inputs": inputs()}
    frame = site_risk(tables, ["A", "B", "C", "D", "E"])
    return {(r["SITEID"], r["INDICATOR"]): r for r in frame.iter_rows(named=True)}


def test_screen_failure_z_scores(risk):
    # p0 = 42 / 122; A: (0.8 - p0) / sqrt(p0 (1 - p0) / 10) = 3.03
    a = risk[("A", "SCREEN_FAILURE")]
    assert (a["NUMERATOR"], a["DENOMINATOR"], a["RATE"], a["STUDY_RATE"]) == (8, 10, 0.8, 0.3443)
    assert a["Z"] == pytest.approx(3.03, abs=0.005) and a["FLAG"] == 2
    b = risk[("B", "SCREEN_FAILURE")]
    assert b["Z"] == pytest.approx(-0.96, abs=0.005) and b["FLAG"] == 0


def test_small_sites_are_not_flagged_and_empty_sites_have_no_rate(risk):
    # D: 2 screened, both failures: rate 1.0 but the denominator is below the minimum
    assert risk[("D", "SCREEN_FAILURE")]["RATE"] == 1.0 and risk[("D", "SCREEN_FAILURE")]["FLAG"] == 0
    e = risk[("E", "SCREEN_FAILURE")]
    assert (e["DENOMINATOR"], e["RATE"], e["Z"], e["FLAG"]) == (0, None, None, 0)


def test_ineligible_enrolment_uses_enrolled_subjects_as_denominator(risk):
    b = risk[("B", "INELIGIBLE_ENROLMENT")]
    assert (b["NUMERATOR"], b["DENOMINATOR"]) == (1, 8)


def test_poisson_data_and_unit_error_rates(risk):
    # data errors per 100 rows received: p0 = 45 / 3020; A: 30 / 1005
    a = risk[("A", "DATA_ERROR")]
    assert (a["NUMERATOR"], a["DENOMINATOR"]) == (30, 1005)
    p0 = 45 / 3020
    assert a["Z"] == pytest.approx(round((30 / 1005 - p0) / (p0 / 1005) ** 0.5, 2))
    assert a["FLAG"] == 2 and a["RATE"] == pytest.approx(2.9851, abs=1e-4)
    assert risk[("B", "DATA_ERROR")]["FLAG"] == -1  # fewer errors than expected: a signal too
    # unit errors: only *ORRESU findings over LB/VS/TR/FA rows
    assert (risk[("A", "UNIT_ERROR")]["NUMERATOR"], risk[("A", "UNIT_ERROR")]["DENOMINATOR"]) == (30, 1000)
    assert risk[("B", "UNIT_ERROR")]["NUMERATOR"] == 0
    assert risk[("C", "UNIT_ERROR")]["NUMERATOR"] == 10


def test_funnel_limits_narrow_with_n():
    low10, high10 = funnel_limits(0.3, 10, 2.0, "binomial")
    low100, high100 = funnel_limits(0.3, 100, 2.0, "binomial")
    assert high10 - low10 > high100 - low100
    assert high100 == pytest.approx(0.3 + 2 * (0.21 / 100) ** 0.5)
    assert funnel_limits(0.5, 1, 3.0, "binomial") == (0.0, 1.0)


def test_the_rows_of_a_rejected_delivery_are_no_exposure():
    """A site whose newer delivery was rejected and whose older one was used is exposed by the older one only."""
    used = {"site": "A", "domain": "LB", "rows_read": 1000, "rows_rejected": 4,
            "rejected_reasons": {"unit_unknown": 4}}
    rejected = {"site": "A", "domain": "LB", "rows_read": 1000, "rows_rejected": 1000,
                "rejected_reasons": {"delivery_rejected": 1000}}
    assert inputs_table({"inputs": [used, rejected]})["ROWS"].to_list() == [1000, 0]
    tables = {"subjects": subjects(), "discrepancies": pl.DataFrame(schema={"SITEID": pl.String,
                                                                          "USUBJID": pl.String,
                                                                          "SEVERITY": pl.String}),
              "validation": validation(), "inputs": inputs_table({"inputs": [used, rejected]})}
    row = site_risk(tables, ["A"]).filter(pl.col("INDICATOR") == "DATA_ERROR").row(0, named=True)
    assert (row["NUMERATOR"], row["DENOMINATOR"]) == (30, 1000)


def test_a_site_audited_on_an_older_delivery_is_noted_on_every_indicator():
    """Its rates are those of the older delivery (its newest was rejected): a data-error rate far below its peers'
    read as a clean site in a user trial. Each of its rows says what it was measured on; the flags stay."""
    deliveries = [
        {"site": "B", "delivery": "D2", "status": "REJECTED", "reason": "sha256 mismatch"},
        {"site": "B", "delivery": "D1", "status": "USED", "reason": "fallback: newer delivery D2 rejected"},
        {"site": "A", "delivery": "D9", "status": "USED", "reason": ""},
        {"site": "C", "delivery": "D7", "status": "SUPERSEDED", "reason": "older than D8"},
    ]
    notes = older_delivery_notes(deliveries)
    assert notes == {"B": "audited on its older delivery D1 (fallback: newer delivery D2 rejected)"}
    tables = {"subjects": subjects(), "discrepancies": pl.DataFrame(schema={"SITEID": pl.String,
                                                                          "USUBJID": pl.String,
                                                                          "SEVERITY": pl.String}),
              "validation": validation(), "inputs": inputs()}
    plain = site_risk(tables, ["A", "B", "C"])
    frame = site_risk(tables, ["A", "B", "C"], notes)
    assert frame.drop("NOTE").equals(plain.drop("NOTE")) and plain["NOTE"].null_count() == plain.height
    assert set(frame.filter(pl.col("SITEID") == "B")["NOTE"]) == {notes["B"]}
    assert frame.filter(pl.col("SITEID") != "B")["NOTE"].null_count() == frame.height - 5
    assert frame.filter((pl.col("SITEID") == "B") & (pl.col("INDICATOR") == "DATA_ERROR"))["FLAG"].item() == -1


def test_the_rows_of_a_file_rejected_as_a_whole_are_no_exposure():
    """A rejected lb.csv (no LBORRESU column) was read but not audited: counted as exposure, its rows lowered the
    site's data-error rate by the lab findings nobody looked for. Rows rejected one by one stay exposure."""
    whole = {"site": "A", "domain": "LB", "rows_read": 800, "rows_rejected": 800,
             "rejected_reasons": {"missing_column": 800}}
    rows = {"site": "A", "domain": "VS", "rows_read": 100, "rows_rejected": 3, "rejected_reasons": {"bad_date": 3}}
    assert inputs_table({"inputs": [whole, rows]})["ROWS"].to_list() == [0, 100]


def test_a_site_audited_without_a_rejected_file_is_noted_beside_its_rates():
    from dataclasses import replace

    from reporting.summary import risk_table
    from tests.support.sample_outputs import make_outputs

    base = make_outputs(n_subjects=6, n_sites=2)
    site = base.subjects["SITEID"][0]
    deliveries = [{"site": site, "delivery": "D9", "status": "USED", "reason": ""}]
    rejected = base.validation.head(1).with_columns(
        pl.lit(site).alias("SITEID"), pl.lit(None, pl.String).alias("USUBJID"),
        pl.lit("ingest.file_rejected.missing_column").alias("EXPECTATION"),
        pl.lit(f"SZ003/{site}/D9/lb.csv").alias("SOURCE"))
    run = replace(base, validation=pl.concat([base.validation, rejected]),
                  run_manifest={**base.run_manifest, "deliveries": deliveries})
    notes = set(risk_table(run).filter(pl.col("SITEID") == site)["NOTE"])
    assert notes == {"audited without its rejected file(s) lb.csv: what they hold was not read"}
