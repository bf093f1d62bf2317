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


def test_a_mean_of_converted_replicates_quotes_no_delivered_figure(tmp_path) -> None:
    domains = _with_platelets({"LBORRES": "61", "LBORRESU": "10^3/uL", "LBTPTNUM": "1"},
                              {"LBORRES": "59", "LBORRESU": "10^3/uL", "LBTPTNUM": "2"})
    latest = _platelets(domains, _protocol(tmp_path, "latest"))
    assert (latest["VALUE"], latest["UNIT"], latest["DELIVERED"]) == ("59", "10^9/L", "59 10^3/uL")
    mean = _platelets(domains, _protocol(tmp_path, "mean"))  # 60 is no figure the site wrote
    assert (mean["VALUE"], mean["DELIVERED"]) == ("60", None)


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
