"""The parts of validation that need no Great Expectations run: configuration, generation, preparation."""

from __future__ import annotations

import polars as pl
import pytest
import yaml

from contracts.domains import DOMAINS
from contracts.units import load_units
from core.values import parse_number, to_protocol_unit
from expectations.checks import build, convert
from expectations.mapping import template_columns, with_rows_text
from expectations.prepare import ge_frame, prepare, text_columns, with_texts
from expectations.protocol_needs import needs_of
from expectations.spec import SuiteConfigError, load_suites, parse_suites
from expectations.subjects import decisions, missing_criteria
from expectations.validate import domain_context
from tests.test_expectations import STUDY, FakeProtocol, clean_trial, frame, ie_rows, planted_trial


def _raw() -> dict:
    from importlib import resources

    return yaml.safe_load(resources.files("expectations").joinpath("suites.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("edit", [
    lambda raw: raw.update(unknown=1),
    lambda raw: raw["checks"]["required"].update(colour="red"),
    lambda raw: raw["checks"].pop("study"),
    lambda raw: raw["checks"]["study"].update(action="ignore"),
    lambda raw: raw["results"]["LB"].update(unitt="LBORRESU"),
    lambda raw: raw.update(conditional_needs={"LB.HCG": {"sex": ["F"]}}),  # the protocol's to say now
    lambda raw: raw["reference_limits"]["LB"].update(ALT=[10, 5]),
])
def test_suites_file_rejects_unknown_or_wrong_entries(edit) -> None:
    raw = _raw()
    edit(raw)
    with pytest.raises(SuiteConfigError):
        parse_suites(raw)


@pytest.mark.parametrize("trial", [clean_trial, planted_trial])
@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_every_template_reads_columns_of_the_prepared_frame(trial, domain: str) -> None:
    """A template naming a missing column would only fail when a row fails: check them all up front."""
    domains = trial()
    ctx = domain_context(domain, study=STUDY, protocol=FakeProtocol(),
                         columns=frozenset(domains[domain].columns) if domain in domains else frozenset())
    pieces = build(ctx)
    prepared = prepare(domains, ctx, pieces)
    texts = text_columns(pieces)
    for piece in pieces:
        check = piece.check
        rows = prepared
        if check.explode:
            assert prepared.schema[check.explode] == pl.List(pl.String)
            parallel = dict(check.explode_with)
            rows = rows.with_columns(pl.col(check.explode).alias("X_ITEM"),
                                     *(pl.col(c).alias(a) for c, a in parallel.items())).explode("X_ITEM",
                                                                                                *parallel.values())
        needed = template_columns(check.message, check) | template_columns(check.observed, check)
        rows = with_texts(rows, {name: expr for name, expr in texts.items() if name in needed})
        if check.one_per:  # the mapping names every row of the group
            rows = with_rows_text(rows, check.one_per)
        assert needed <= set(rows.columns), (check.id, needed - set(rows.columns))
    assert ge_frame(prepared, pieces).height == prepared.height


def test_check_ids_are_unique_and_stable() -> None:
    ids = [piece.check.id for d in DOMAINS
           for piece in build(domain_context(d, study=STUDY, protocol=FakeProtocol()))]
    assert len(ids) == len(set(ids))
    assert {"LB.unit_known.LBORRESU", "DM.unique_key.USUBJID", "IE.unique_key.USUBJID+IETESTCD"} <= set(ids)


@pytest.mark.parametrize(("test", "text", "unit"), [
    ("HGB", "135", "g/L"), ("HGB", "8.2", "mmol/L"), ("PLAT", "250000", "/uL"), ("HBVDNA", "3.5", "log10 IU/mL"),
    ("HBA1C", "53", "mmol/mol"), ("CREAT", "<44", "umol/L"), ("ALT", "0.5", "ukat/L"), ("HGB", "13", "furlongs"),
])
def test_joined_conversion_equals_the_evaluation_conversion(test: str, text: str, unit: str) -> None:
    """Validation converts with joined catalog columns; it must agree with core.values exactly."""
    catalog = load_units()
    data = pl.DataFrame({"LBTESTCD": [test], "LBORRES": [text], "LBORRESU": [unit], "DECIMAL": ["."]})
    ctx = domain_context("lb", study=STUDY)
    from expectations.checks import result_columns

    columns = result_columns(ctx)
    prepared = data.with_columns(**{k: v for k, v in columns.items() if k.startswith("X_CONV_")},
                                 X_NUMBER=parse_number("LBORRES", "DECIMAL").struct.field("number"))
    ours = prepared.select(convert(pl.col("X_NUMBER"), "X_CONV_")).item()
    theirs = data.select(to_protocol_unit(parse_number("LBORRES", "DECIMAL").struct.field("number"), "LBTESTCD",
                                          "LBORRESU", catalog, "LB")).item()
    assert ours == theirs


def test_needs_follow_the_protocol_and_the_alternatives() -> None:
    from contracts.protocol import load_protocol

    needs = needs_of(load_protocol(), load_suites())
    assert ("LYM", "LYMLE") in needs["LB"] and ("LDIAM", "LPERP") in needs["TR"]
    assert ("WEIGHT",) in needs["VS"]  # Cockcroft-Gault needs creatinine and weight
    assert ("UNSTABLE ANGINA",) in needs["MH"]
    assert "DS" not in needs and "CM" not in needs  # no test-code variable: presence is the evaluation's


def test_ie_checklist_follows_the_delivery_style() -> None:
    """FULL subjects miss what is absent; NOT_MET_ONLY subjects miss nothing; empty ones depend on the site."""
    criteria = {"IN06": "INCLUSION", "IN10": "INCLUSION", "EX15": "EXCLUSION"}
    dm = pl.concat([
        frame("dm", [{"USUBJID": s, "RFXSTDTC": "2026-02-01"} for s in ("A-1", "A-2", "A-3")], site="101"),
        frame("dm", [{"USUBJID": s, "RFXSTDTC": "2026-02-01"} for s in ("B-1", "B-2")], site="102"),
    ])
    ie = pl.concat([
        frame("ie", [*ie_rows("A-1", {"IN06": "Y", "EX15": "N"}), *ie_rows("A-2", {"IN10": "N"})], site="101"),
        frame("ie", ie_rows("B-1", {"IN10": "N"}), site="102"),
    ])
    domains = {"dm": dm, "ie": ie}
    missing = missing_criteria(domains, criteria, load_suites(), decisions(domains))
    got = dict(missing.select("USUBJID", "X_MISSING_IE").iter_rows())
    assert got == {"A-1": ["IN10"],  # full checklist, IN10 absent
                   "A-2": [],  # only a failing answer: not-met-only style
                   "A-3": ["IN06", "IN10", "EX15"],  # no rows at a site with full checklists
                   "B-1": [],
                   "B-2": []}  # no rows at a not-met-only site: all met by the site


def test_checklist_and_needs_follow_each_subjects_protocol_version(tmp_path) -> None:
    """With SZ003 1.0 and 2.0 (IN13 HbA1c added, effective 2025-03-15): a 1.0 subject's full checklist is not
    asked for IN13 and its HbA1c is needed only with a diabetes history (1.0's EX06.DM); a 2.0 subject's is
    asked for IN13 and HbA1c always; a consent spanning the amendment is asked for what both versions ask."""
    from contracts.protocol import load_protocol
    from expectations.protocol_needs import criteria_of, demands_of
    from expectations.subjects import missing_results
    from tests.support import amended

    protocol = load_protocol(amended.write_protocol(tmp_path / "sz003"))
    consents = {"V1": "2025-02-01", "V2": "2025-04-01", "SPAN": "2025-03"}
    dm = frame("dm", [{"USUBJID": s, "RFXSTDTC": "2025-05-01", "RFICDTC": c} for s, c in consents.items()])
    ie = frame("ie", [row for s in consents for row in ie_rows(s, dict.fromkeys(amended.V1_CRITERIA, "Y"))])
    domains = {"dm": dm, "ie": ie}
    demands = demands_of(protocol)
    missing = missing_criteria(domains, criteria_of(protocol), load_suites(), decisions(domains), demands)
    assert dict(missing.select("USUBJID", "X_MISSING_IE").iter_rows()) == {"V1": [], "V2": ["IN13"], "SPAN": []}
    needs = {"LB": (("HBA1C",),)}
    results, _ = missing_results(domains, needs, load_suites(), load_units(), decisions(domains), demands)
    assert dict(results.select("USUBJID", "X_MISSING_LB").iter_rows()) == {"V1": None, "V2": ["HBA1C"],
                                                                          "SPAN": None}


def test_data_docs_upload_to_s3_with_content_types(tmp_path, s3_endpoint: str, s3_bucket: str) -> None:
    import boto3

    from expectations import publish_data_docs
    from storage import S3Store

    files = {"index.html": b"<html></html>", "static/styles/site.css": b"body{}",
             "static/images/logo.png": b"\x89PNG", "static/fonts/HKGrotesk-Bold.otf": b"OTTO",
             "validations/screening_lb/SZ003/run/lb.html": b"<html></html>"}
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    store = S3Store(f"s3://{s3_bucket}/reports", endpoint_url=s3_endpoint)
    keys = publish_data_docs(tmp_path, store, "SZ003/2026-11-28/data_docs")
    assert keys == sorted(f"SZ003/2026-11-28/data_docs/{name}" for name in files)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    types = {key.rsplit("/", 1)[-1]: client.head_object(Bucket=s3_bucket, Key=f"reports/{key}")["ContentType"]
             for key in keys}
    assert types == {"index.html": "text/html; charset=utf-8", "site.css": "text/css; charset=utf-8",
                     "logo.png": "image/png", "HKGrotesk-Bold.otf": "font/otf", "lb.html": "text/html; charset=utf-8"}


def test_the_rows_of_a_duplicated_key_are_named_as_a_site_finds_them_in_each_file() -> None:
    # a site monitor read "lb.csv rows 33, 34" as the file's lines; a spreadsheet's rows are counted below its
    # header (blank ones included), a CSV's blank lines are no records, a Parquet file has no header
    keys = ["S/1/D/lb.csv", "S/1/D/lb.csv", "S/1/D/vs.xlsx", "S/1/D/vs.xlsx", "S/1/D/fa.parquet"]
    rows = pl.DataFrame({"K": ["a"] * 5, "SOURCE_KEY": keys, "SOURCE_ROW": [34, 33, 9, 12, 5]})
    assert with_rows_text(rows, ("K",))["X_ROWS_TEXT"].unique().to_list() == [  # files in key order
        "S/1/D/fa.parquet record 5; S/1/D/lb.csv records 33, 34 after the header; S/1/D/vs.xlsx rows 9, 12 below "
        "the header"]
