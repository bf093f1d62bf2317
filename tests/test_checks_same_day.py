"""Several measurements of one test on the latest day: `same_day_measurements` of the protocol (latest | mean)."""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path

import polars as pl
import pytest

from checks.evaluation import evaluate
from contracts.protocol import load_protocol
from tests.support.sample_subject import frames, subject_rows

AS_OF = date(2025, 6, 1)
SCREEN = "2025-02-22"  # the sample subject's screening day (7 days before treatment start)


def _protocol(tmp_path: Path, same_day: str | None):
    """The bundled SZ003 protocol, with `same_day_measurements` set (None: left to its default)."""
    text = resources.files("contracts").joinpath("protocols", "sz003.yaml").read_text(encoding="utf-8")
    path = tmp_path / "sz003.yaml"
    path.write_text(text if same_day is None else f"same_day_measurements: {same_day}\n{text}", encoding="utf-8")
    return load_protocol(path)


def _with_platelets(*rows: dict) -> dict[str, pl.DataFrame]:
    """The eligible sample subject with its platelet rows replaced by `rows` (in this source order)."""
    subject = subject_rows()
    template = next(r for r in subject["lb"] if r["LBTESTCD"] == "PLAT")
    others = [r for r in subject["lb"] if r["LBTESTCD"] != "PLAT"]
    subject["lb"] = others + [{**template, "LBDTC": SCREEN, **row} for row in rows]
    return frames(subject)


def _platelets(domains: dict[str, pl.DataFrame], protocol) -> dict:
    result = evaluate(domains, protocol, AS_OF)
    return result.eligibility.filter(pl.col("CHECK_ID") == "IN10.PLT").row(0, named=True)


def test_latest_takes_the_latest_time_point_not_the_last_row(tmp_path) -> None:
    domains = _with_platelets({"LBORRES": "65", "LBTPTNUM": "3"}, {"LBORRES": "55", "LBTPTNUM": "1"})
    row = _platelets(domains, _protocol(tmp_path, None))  # the default is `latest`
    assert (row["OUTCOME"], row["VALUE"]) == ("MET", "65")
    assert row["SOURCE"].endswith(f"lb.csv:{domains['lb'].height - 1}")  # the first of the two rows


def test_mean_averages_the_measurements_of_the_latest_day(tmp_path) -> None:
    domains = _with_platelets({"LBORRES": "20", "LBDTC": "2025-02-20"},  # an earlier day: not a replicate
                              {"LBORRES": "75", "LBTPTNUM": "1"}, {"LBORRES": "70", "LBTPTNUM": "2"},
                              {"LBORRES": "50", "LBTPTNUM": "3"})
    latest = _platelets(domains, _protocol(tmp_path, "latest"))
    assert (latest["OUTCOME"], latest["VALUE"]) == ("NOT_MET", "50")
    mean = _platelets(domains, _protocol(tmp_path, "mean"))
    assert (mean["OUTCOME"], mean["VALUE"], mean["DTC"]) == ("MET", "65", SCREEN)
    n = domains["lb"].height
    assert mean["SOURCE"] == "; ".join(f"SZ003/101/20250301T000000Z/lb.csv:{r}" for r in (n - 2, n - 1, n))


def test_mean_reads_decimal_commas_and_converts_like_any_value(tmp_path) -> None:
    domains = _with_platelets({"LBORRES": "61,5", "LBORRESU": "GI/L", "DECIMAL": ","},
                              {"LBORRES": "58,5", "LBORRESU": "GI/L", "DECIMAL": ","})
    row = _platelets(domains, _protocol(tmp_path, "mean"))
    assert (row["OUTCOME"], row["VALUE"], row["UNIT"]) == ("MET", "60", "10^9/L")
    assert row["DELIVERED"] == "mean of 2 measurements: 61,5; 58,5 GI/L"  # as written, each figure apart


def test_a_mean_quotes_the_figures_the_site_wrote(tmp_path) -> None:
    """60 is no figure the site wrote, nor is either replicate alone: DELIVERED (which the evidence and the query
    quote) names the mean and its measurements as delivered (a user trial: "Value used: 58.5 10^9/L ... Please
    confirm this value against the source document" named no figure a site could find)."""
    domains = _with_platelets({"LBORRES": "61", "LBORRESU": "10^3/uL", "LBTPTNUM": "1"},
                              {"LBORRES": "59", "LBORRESU": "10^3/uL", "LBTPTNUM": "2"})
    latest = _platelets(domains, _protocol(tmp_path, "latest"))
    assert (latest["VALUE"], latest["UNIT"], latest["DELIVERED"]) == ("59", "10^9/L", "59 10^3/uL")
    mean = _platelets(domains, _protocol(tmp_path, "mean"))
    assert (mean["VALUE"], mean["DELIVERED"]) == ("60", "mean of 2 measurements: 61; 59 10^3/uL")
    # in the protocol unit too: the mean is still no figure of the site's
    same_unit = _with_platelets({"LBORRES": "61", "LBORRESU": "10^9/L", "LBTPTNUM": "1"},
                                {"LBORRES": "58", "LBORRESU": "10^9/L", "LBTPTNUM": "2"})
    mean = _platelets(same_unit, _protocol(tmp_path, "mean"))
    assert (mean["VALUE"], mean["DELIVERED"]) == ("59.5", "mean of 2 measurements: 61; 58 10^9/L")


@pytest.mark.parametrize("second", [{"LBORRES": "<100"}, {"LBORRES": "120000", "LBORRESU": "/uL"},
                                    {"LBORRES": "n/a"}])
def test_replicates_that_cannot_be_averaged_are_not_guessed(tmp_path, second) -> None:
    domains = _with_platelets({"LBORRES": "120"}, second)
    row = _platelets(domains, _protocol(tmp_path, "mean"))
    assert (row["OUTCOME"], row["REASON_CODE"]) == ("UNVERIFIABLE", "REPLICATES_NOT_AVERAGED")
    assert row["REASON"] == (f"PLAT 2 measurements on {SCREEN} cannot be averaged (the protocol uses their mean): "
                             "not all are plain numbers in one unit")


def test_one_measurement_on_the_day_is_used_as_it_is_under_mean(tmp_path) -> None:
    domains = _with_platelets({"LBORRES": "<100", "LBDTC": "2025-02-20"}, {"LBORRES": "150"})
    row = _platelets(domains, _protocol(tmp_path, "mean"))
    assert (row["OUTCOME"], row["VALUE"]) == ("MET", "150")


def test_coded_results_are_never_averaged(tmp_path) -> None:
    subject = subject_rows()
    template = next(r for r in subject["lb"] if r["LBTESTCD"] == "HBSAG")
    subject["lb"] = [r for r in subject["lb"] if r["LBTESTCD"] != "HBSAG"] + [
        {**template, "LBORRES": "POSITIVE", "LBDTC": SCREEN}, {**template, "LBORRES": "NEGATIVE", "LBDTC": SCREEN}]
    result = evaluate(frames(subject), _protocol(tmp_path, "mean"), AS_OF)
    rows = result.eligibility.filter(pl.col("REASON_CODE") == "REPLICATES_NOT_AVERAGED")
    assert rows.height == 0  # the latest (NEGATIVE) is read, as under `latest`
    assert result.eligibility.filter(pl.col("CHECK_ID") == "EX05.HBV")["OUTCOME"].to_list() == ["NOT_APPLICABLE"]


def _validated_platelets(domains: dict[str, pl.DataFrame], protocol) -> tuple[dict, dict]:
    """The platelet component evaluated with validation's exclusions and rejections, and the LB key finding."""
    from expectations import validate_domain

    part = validate_domain("lb", domains, study="SZ003")
    result = evaluate(domains, protocol, AS_OF, exclusions=part.exclusions, rejected=part.rejected)
    row = result.eligibility.filter(pl.col("CHECK_ID") == "IN10.PLT").row(0, named=True)
    key = part.findings.filter(pl.col("CHECK").str.contains("unique_key"))
    return row, key.row(0, named=True)


def test_a_replicate_duplicated_with_conflicting_values_leaves_no_mean(tmp_path) -> None:
    """A user trial: replicate 2 delivered twice (40 and 42) was dropped and the mean of replicate 1 alone (75)
    was MET, where the day's mean was 57.5 or 58.5, NOT_MET. The day's mean is not known: UNVERIFIABLE, and the
    duplicated record is what the site is asked to correct (the component names it, as the key finding does)."""
    domains = _with_platelets({"LBORRES": "75", "LBREPNUM": "1"}, {"LBORRES": "40", "LBREPNUM": "2"},
                              {"LBORRES": "42", "LBREPNUM": "2"})
    row, key = _validated_platelets(domains, _protocol(tmp_path, "mean"))
    assert (row["OUTCOME"], row["REASON_CODE"], row["VALUE"], row["DTC"]) == (
        "UNVERIFIABLE", "EXCLUDED_BY_VALIDATION", None, None)
    n = domains["lb"].height
    assert row["SOURCE"] == key["SOURCE"] == f"SZ003/101/20250301T000000Z/lb.csv:{n - 1}"
    assert row["REASON"].startswith(f"PLAT on {SCREEN}: the protocol uses the mean of the day's measurements and "
                                    "one of them is not used (USUBJID=")
    # identical copies are one measurement: the first is used, and the mean is formed
    copies = _with_platelets({"LBORRES": "75", "LBREPNUM": "1"}, {"LBORRES": "41", "LBREPNUM": "2"},
                             {"LBORRES": "41", "LBREPNUM": "2"})
    row, _ = _validated_platelets(copies, _protocol(tmp_path, "mean"))
    assert (row["OUTCOME"], row["VALUE"]) == ("NOT_MET", "58")


def test_a_result_delivered_twice_with_conflicting_values_is_excluded_not_missing(tmp_path) -> None:
    """A user trial: ALB 3.8 and 2.9 on one date was also queried as "no ALB result; please deliver the missing
    result", beside the duplicate's own query. The component now names the duplicated record (its first row, where
    the key finding is), so that the one query asks for the correction (reporting/covered.py: same record)."""
    domains = _with_platelets({"LBORRES": "75"}, {"LBORRES": "55"})
    row, key = _validated_platelets(domains, _protocol(tmp_path, None))
    assert (row["OUTCOME"], row["REASON_CODE"]) == ("UNVERIFIABLE", "EXCLUDED_BY_VALIDATION")
    assert row["SOURCE"] == key["SOURCE"]
    assert "occurs 2 times in LB (conflicting values" in row["REASON"]


@pytest.mark.parametrize("same_day", ["latest", "mean"])
def test_an_excluded_latest_result_is_not_replaced_by_an_earlier_one(tmp_path, same_day) -> None:
    """A review: PLAT 180 on 02-20, then PLAT delivered twice on 02-22 (40 and 42, conflicting): the count of 180
    decided (MET) where the latest count, either copy, is NOT_MET. The latest result is not known: UNVERIFIABLE,
    naming the duplicated record."""
    domains = _with_platelets({"LBORRES": "180", "LBDTC": "2025-02-20"}, {"LBORRES": "40"}, {"LBORRES": "42"})
    row, key = _validated_platelets(domains, _protocol(tmp_path, same_day))
    assert (row["OUTCOME"], row["REASON_CODE"], row["VALUE"]) == ("UNVERIFIABLE", "EXCLUDED_BY_VALIDATION", None)
    assert row["SOURCE"] == key["SOURCE"]
    # no result is used, so none has a date (a user trial: the unused 02-20's date was in the evidence, and a CLOSE
    # reopened when only that record moved)
    assert row["DTC"] is None
    assert row["REASON"].startswith("PLAT: the latest result in the screening window is not used, and an earlier "
                                    "one does not stand in for it (USUBJID=")
    # an excluded result before the one used changes nothing
    earlier = _with_platelets({"LBORRES": "40", "LBDTC": "2025-02-20"}, {"LBORRES": "42", "LBDTC": "2025-02-20"},
                              {"LBORRES": "180"})
    row, _ = _validated_platelets(earlier, _protocol(tmp_path, same_day))
    assert (row["OUTCOME"], row["VALUE"], row["REASON_CODE"]) == ("MET", "180", None)


def test_coded_results_read_alike_under_mean_and_latest_when_one_is_excluded(tmp_path) -> None:
    """A review: an unknown code at the later time point made a coded test UNVERIFIABLE under `mean` only; coded
    results are never averaged, so both choices read them the same way."""
    from expectations import validate_domain

    subject = subject_rows()
    template = next(r for r in subject["lb"] if r["LBTESTCD"] == "HBSAG")
    subject["lb"] = [r for r in subject["lb"] if r["LBTESTCD"] != "HBSAG"] + [
        {**template, "LBORRES": "NEGATIVE", "LBDTC": SCREEN, "LBTPTNUM": "1"},
        {**template, "LBORRES": "WEAK", "LBDTC": SCREEN, "LBTPTNUM": "2"}]
    domains = frames(subject)
    part = validate_domain("lb", domains, study="SZ003")
    outcomes = [evaluate(domains, _protocol(tmp_path, choice), AS_OF, exclusions=part.exclusions,
                         rejected=part.rejected).eligibility.filter(pl.col("CHECK_ID") == "EX05.HBV")
                .select("OUTCOME", "REASON_CODE").row(0) for choice in ("latest", "mean")]
    assert outcomes[0] == outcomes[1] == ("UNVERIFIABLE", "EXCLUDED_BY_VALIDATION")
