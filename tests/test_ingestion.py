"""Delivery rules of DTS section 1 and the public API, on a local folder and on S3 (moto server)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import polars as pl
import pytest
from test_ingestion_support import (
    D1,
    D2,
    D3,
    NOW,
    STUDY,
    assert_balanced,
    codes,
    deliver,
    delivered,
    sample,
    sources,
    store,  # noqa: F401 - fixture
)

from contracts import DOMAINS, FINDINGS, check_table
from ingestion import Code, DeliveryStatus, combine_sites, ingest_site, list_sites
from ingestion.delivery_ids import parse_delivery_id
from tests.support.delivery_writer import DeliveryFile, encode, manifest_bytes, write_delivery


def _statuses(result) -> dict[str, str]:
    return {d.delivery: str(d.status) for d in result.deliveries}


def test_clean_delivery_every_domain_read_as_text(store) -> None:  # noqa: F811
    tables = {domain: sample(domain) for domain in DOMAINS}
    deliver(store, "101", D3, tables)
    result = ingest_site(store, STUDY, "101", now=NOW)

    assert result.delivery == D3 and result.audited
    assert sorted(result.frames) == sorted(DOMAINS)
    for domain, frame in tables.items():
        got = result.frames[domain]
        assert all(dtype == pl.String for dtype in delivered(got).dtypes)  # values stay text; SOURCE_ROW is a number
        assert delivered(got).equals(frame)
        assert sources(got) == [f"{STUDY}/101/{D3}/{domain}.csv:{i}" for i in (1, 2, 3)]
        assert got["DELIVERY_SITEID"].to_list() == ["101"] * 3
        assert got["DECIMAL"].to_list() == ["."] * 3
    assert result.findings.height == 0
    assert _statuses(result) == {D3: "USED"}
    check_table(result.findings, FINDINGS, "findings")
    assert_balanced(result)
    lb = next(i for i in result.inputs if i.key.endswith("lb.csv"))
    assert (lb.rows_read, lb.rows_rejected, lb.domain) == (3, 0, "lb")
    assert lb.sha256 == hashlib.sha256(store.read_bytes(lb.key)).hexdigest()
    if hasattr(store, "bucket"):
        assert lb.etag  # S3 reports an ETag for every object read


def test_header_names_upper_cased_and_extra_columns_kept(store) -> None:  # noqa: F811
    lb = sample("lb").rename(str.lower).with_columns(pl.lit("x").alias("MyExtra"),
                                                     pl.lit("9.1").alias("lbstresn"))
    deliver(store, "101", D3, {"lb": lb})
    frame = ingest_site(store, STUDY, "101", now=NOW).frames["lb"]
    assert "MYEXTRA" in frame.columns and "LBSTRESN" in frame.columns
    assert frame["LBSTRESN"].to_list() == ["9.1"] * 3


def test_newest_complete_delivery_is_used_older_superseded(store) -> None:  # noqa: F811
    deliver(store, "101", D1, {"dm": sample("dm", n=1)})
    deliver(store, "101", D2, {"dm": sample("dm", n=2)})
    deliver(store, "101", D3, {"dm": sample("dm", n=3)}, manifest=False)  # still uploading
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.delivery == D2
    assert result.frames["dm"].height == 2
    assert _statuses(result) == {D3: "INCOMPLETE", D2: "USED", D1: "SUPERSEDED"}
    assert result.findings.height == 0  # D3 is only 4 hours old: no finding yet
    assert [i.key for i in result.inputs] == [f"{STUDY}/101/{D2}/manifest.json", f"{STUDY}/101/{D2}/dm.csv"]


def test_incomplete_delivery_older_than_24h_is_reported(store) -> None:  # noqa: F811
    deliver(store, "101", D1, {"dm": sample("dm")})
    deliver(store, "101", D2, {"dm": sample("dm")}, manifest=False)  # 28 hours before NOW
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.delivery == D1
    assert codes(result.findings) == [Code.DELIVERY_INCOMPLETE]
    message = result.findings["MESSAGE"][0]
    assert "Site 101" in message and D2 in message and "28 hours" in message


def test_an_unfinished_folder_older_than_the_audited_delivery_is_reported_as_abandoned(store) -> None:  # noqa: F811
    # a site-monitor trial: site 119 was asked to "complete the upload" of a folder older than the complete
    # delivery audited, which would only make a delivery that is never read
    deliver(store, "101", D1, {"dm": sample("dm")}, manifest=False)  # 52 hours before NOW, never finished
    deliver(store, "101", D2, {"dm": sample("dm", n=2)})
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.delivery == D2 and _statuses(result) == {D2: "USED", D1: "INCOMPLETE"}
    assert codes(result.findings) == [Code.DELIVERY_ABANDONED]
    assert result.findings["MESSAGE"][0].endswith(
        f"the upload never finished; the newer complete delivery {D2} is audited, so nothing of this folder is "
        "used or missing.")


def _tamper_manifest(landing, site: str, delivery: str, edit) -> None:
    key = f"{STUDY}/{site}/{delivery}/manifest.json"
    body = json.loads(landing.read_bytes(key))
    edit(body)
    landing.write_bytes(key, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("edit", "code", "variable"),
    [
        (lambda m: m["files"][0].update(sha256="0" * 64), Code.CHECKSUM, "sha256"),
        (lambda m: m["files"][0].update(rows=99), Code.ROW_COUNT, "rows"),
        (lambda m: m["files"].append({"name": "vs.csv", "sha256": "a" * 64, "rows": 1}), Code.MISSING_FILE,
         "files"),
        (lambda m: m.update(study="SZ999"), Code.MANIFEST_MISMATCH, "study"),
        (lambda m: m.update(site="999"), Code.MANIFEST_MISMATCH, "site"),
        (lambda m: m.update(delivery=D1), Code.MANIFEST_MISMATCH, "delivery"),
        (lambda m: m.update(generated_by="edc"), Code.MANIFEST_INVALID, "generated_by"),
        (lambda m: m["files"][0].update(encoding="ebcdic"), Code.MANIFEST_INVALID, "encoding"),
        (lambda m: m["files"][0].update(decimal=";"), Code.MANIFEST_INVALID, "decimal"),
        (lambda m: m["files"][0].update(rows="3"), Code.MANIFEST_INVALID, "rows"),
        (lambda m: m["files"][0].update(name="../dm.csv"), Code.MANIFEST_INVALID, "name"),
    ],
)
def test_rejected_delivery_falls_back_to_previous(store, edit, code, variable) -> None:  # noqa: F811
    deliver(store, "101", D2, {"dm": sample("dm", n=2)})
    deliver(store, "101", D3, {"dm": sample("dm", n=3)})
    _tamper_manifest(store, "101", D3, edit)

    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.delivery == D2 and result.frames["dm"].height == 2
    statuses = _statuses(result)
    assert statuses == {D3: "REJECTED", D2: "USED"}
    used = next(d for d in result.deliveries if d.status == DeliveryStatus.USED)
    assert D3 in used.reason
    found = codes(result.findings)
    assert found.count(str(code)) == 1 and Code.DELIVERY_FALLBACK in found
    row = result.findings.filter(pl.col("EXPECTATION") == str(code)).row(0, named=True)
    assert row["VARIABLE"] == variable
    assert "Site 101" in row["MESSAGE"] and "rejected" in row["MESSAGE"]
    assert_balanced(result)


def test_a_site_not_audited_names_each_rejected_delivery_and_why(store) -> None:  # noqa: F811
    # the site's one query (reporting/data/queries.yaml covered_by) must say what to correct in each delivery
    deliver(store, "101", D2, {"dm": sample("dm", n=2)})
    deliver(store, "101", D3, {"dm": sample("dm", n=3)})
    _tamper_manifest(store, "101", D2, lambda m: m["files"][0].update(rows=99))
    _tamper_manifest(store, "101", D3, lambda m: m["files"].append({"name": "vs.csv", "sha256": "a" * 64, "rows": 1}))
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.delivery is None
    assert combine_sites(STUDY, [result]).sites_not_audited == {"101": (
        f"every complete delivery was rejected ({D3}: manifest.json lists vs.csv, not in the delivery folder; "
        f"{D2}: dm.csv has 2 data rows but manifest.json says 99)")}
    assert _statuses(result) == {D3: "REJECTED", D2: "REJECTED"}


def test_a_rerun_never_uses_a_folder_the_night_rejected_even_when_it_reads_well_now(store) -> None:  # noqa: F811
    # helper-28: the night rejected D3 (its dm.csv still uploading, so a wrong row count), the upload finished, a
    # later night used D3; the re-run of the first night then used D3 too, and its tables changed
    from ingestion import finish_sites, read_site

    deliver(store, "101", D2, {"dm": sample("dm", n=2)})
    deliver(store, "101", D3, {"dm": sample("dm", n=3)})  # complete and correct now
    night = {D3: "REJECTED", D2: "USED"}
    rerun = finish_sites(STUDY, [read_site(store, STUDY, "101", now=NOW, seen=night)])[0]
    assert rerun.delivery == D2 and rerun.frames["dm"].height == 2
    assert _statuses(rerun) == {D3: "REJECTED", D2: "USED"}
    reason = next(d.reason for d in rerun.deliveries if d.delivery == D3)
    assert reason.startswith("the published night did not use it (REJECTED) and its files have changed since")
    assert_balanced(rerun)  # D3's rows are read and accounted for as rejected
    # tonight's run (no past night to follow) uses it
    assert ingest_site(store, STUDY, "101", now=NOW).delivery == D3


def test_unparseable_manifest(store) -> None:  # noqa: F811
    deliver(store, "101", D2, {"dm": sample("dm", n=2)})
    deliver(store, "101", D3, {"dm": sample("dm", n=3)})
    store.write_bytes(f"{STUDY}/101/{D3}/manifest.json", b'{"study": "SZ003", "files": [')
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.delivery == D2
    assert codes(result.findings) == [Code.MANIFEST_UNPARSEABLE, Code.DELIVERY_FALLBACK]
    assert "line 1" in result.findings["MESSAGE"][0]


def test_checksum_mismatch_counts_rows_of_rejected_delivery_as_rejected(store) -> None:  # noqa: F811
    deliver(store, "101", D3, {"dm": sample("dm"), "lb": sample("lb")})
    store.write_bytes(f"{STUDY}/101/{D3}/lb.csv", encode(sample("lb", n=4), "csv"))  # replaced after manifest
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.delivery is None and result.frames == {}
    lb = next(i for i in result.inputs if i.key.endswith("lb.csv"))
    assert lb.rows_read == lb.rows_rejected == 3 and lb.rejected_reasons == {"delivery_rejected": 3}
    assert lb.domain == "lb"
    assert codes(result.findings) == [Code.CHECKSUM, Code.SITE_NOT_AUDITED]
    summary = combine_sites(STUDY, [result])
    # the reason names the delivery and what was wrong with it: the site's one query asks to correct it
    reason = summary.sites_not_audited["101"]
    assert reason.startswith(f"every complete delivery was rejected ({D3}: the SHA-256 of lb.csv is {lb.sha256} "
                             "but manifest.json says ") and reason.endswith(")")
    assert_balanced(result)


def test_site_without_complete_delivery_is_not_audited(store) -> None:  # noqa: F811
    deliver(store, "102", D3, {"dm": sample("dm", site="102")}, manifest=False)
    result = ingest_site(store, STUDY, "102", now=NOW)
    assert result.delivery is None and result.frames == {} and not result.audited
    assert codes(result.findings) == [Code.SITE_NOT_AUDITED]
    assert "no complete delivery" in result.findings["MESSAGE"][0]


def test_folder_names_that_are_not_delivery_ids_are_flagged(store) -> None:  # noqa: F811
    deliver(store, "101", D3, {"dm": sample("dm")})
    deliver(store, "101", "latest", {"dm": sample("dm", n=5)})
    deliver(store, "101", "20261399T250000Z", {"dm": sample("dm", n=5)})
    store.write_bytes(f"{STUDY}/101/readme.txt", b"hello")
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.delivery == D3 and result.frames["dm"].height == 3
    assert sorted(codes(result.findings)) == sorted([Code.DELIVERY_BAD_NAME, Code.DELIVERY_BAD_NAME,
                                                     Code.OBJECT_IGNORED])
    assert _statuses(result)["latest"] == "REJECTED"


def test_files_not_in_manifest_are_ignored_with_a_finding(store) -> None:  # noqa: F811
    deliver(store, "101", D3, {"dm": sample("dm")})
    store.write_bytes(f"{STUDY}/101/{D3}/lb.csv", encode(sample("lb"), "csv"))
    store.write_bytes(f"{STUDY}/101/{D3}/extra/vs.csv", encode(sample("vs"), "csv"))
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert sorted(result.frames) == ["dm"]
    assert codes(result.findings) == [Code.OBJECT_IGNORED, Code.OBJECT_IGNORED]
    assert all(not i.key.endswith(("lb.csv", "vs.csv")) for i in result.inputs)


def test_list_sites_ignores_objects_directly_under_the_study(store) -> None:  # noqa: F811
    deliver(store, "102", D3, {"dm": sample("dm", site="102")})
    deliver(store, "101", D3, {"dm": sample("dm")})
    store.write_bytes(f"{STUDY}/ground_truth.json", b"{}")
    deliver(store, "201", D3, {"dm": sample("dm", site="201", study="OTHER")}, study="OTHER")
    assert list_sites(store, STUDY) == ["101", "102"]


def test_combine_sites_is_deterministic_and_diagonal(store) -> None:  # noqa: F811
    lb_101 = pl.concat([sample("lb", n=3)] * 4)  # 12 rows: row 10 must sort after row 9
    lb_102 = sample("lb", site="102", n=2).with_columns(pl.lit("kept").alias("LBEXTRA"))
    deliver(store, "101", D3, {"lb": lb_101, "dm": sample("dm")})
    deliver(store, "102", D2, {"lb": lb_102})
    deliver(store, "103", D3, {"dm": sample("dm", site="103")}, manifest=False)
    sites = [ingest_site(store, STUDY, s, now=NOW) for s in list_sites(store, STUDY)]

    result = combine_sites(STUDY, sites)
    again = combine_sites(STUDY, list(reversed([ingest_site(store, STUDY, s, now=NOW)
                                                for s in list_sites(store, STUDY)])))
    lb = result.domains["lb"]
    assert lb.height == 14 and lb.columns[-4:] == ["SOURCE_KEY", "SOURCE_ROW", "DELIVERY_SITEID", "DECIMAL"]
    assert lb.schema["SOURCE_ROW"] == pl.Int64
    assert sources(lb)[:12] == [f"{STUDY}/101/{D3}/lb.csv:{i}" for i in range(1, 13)]
    assert lb["LBEXTRA"].to_list() == [None] * 12 + ["kept", "kept"]
    assert all(dtype == pl.String for dtype in delivered(lb).dtypes)
    for domain in result.domains:
        assert result.domains[domain].write_csv() == again.domains[domain].write_csv()
    assert result.findings.write_csv() == again.findings.write_csv()
    assert result.sites_audited == ["101", "102"]
    assert list(result.sites_not_audited) == ["103"]
    assert [i.key for i in result.inputs] == [i.key for i in again.inputs]


def test_manifest_written_by_writer_matches_reader_row_count(store) -> None:  # noqa: F811
    frame = sample("lb").with_columns(pl.lit("line one\nline two").alias("LBCOMMENT"))
    data = encode(frame, "csv")
    assert data.count(b"\n") > frame.height + 1  # quoted newlines make more lines than rows
    write_delivery(store, STUDY, "101", D3, [DeliveryFile("lb.csv", data, frame.height)])
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert result.delivery == D3
    assert result.frames["lb"]["LBCOMMENT"].to_list() == ["line one\nline two"] * 3
    manifest = json.loads(manifest_bytes(STUDY, "101", D3, [DeliveryFile("lb.csv", data, 3)]))
    assert manifest["files"][0] == {"name": "lb.csv", "sha256": hashlib.sha256(data).hexdigest(), "rows": 3}


def test_two_files_for_one_domain_are_both_rejected(store) -> None:  # noqa: F811
    lb = sample("lb")
    write_delivery(store, STUDY, "101", D3, [
        DeliveryFile("dm.csv", encode(sample("dm"), "csv"), 3),
        DeliveryFile("lb.csv", encode(lb, "csv"), 3),
        DeliveryFile("LB.xlsx", encode(lb, "xlsx"), 3),
    ])
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert sorted(result.frames) == ["dm"]
    assert codes(result.findings) == [Code.FILE_DUPLICATE_DOMAIN, Code.FILE_DUPLICATE_DOMAIN]
    assert_balanced(result)


def test_upper_case_file_name_is_its_domain(store) -> None:  # noqa: F811
    write_delivery(store, STUDY, "101", D3, [DeliveryFile("VS.CSV", encode(sample("vs"), "csv"), 3)])
    result = ingest_site(store, STUDY, "101", now=NOW)
    assert sorted(result.frames) == ["vs"] and result.findings.height == 0
    assert sources(result.frames["vs"])[0] == f"{STUDY}/101/{D3}/VS.CSV:1"


def test_unsafe_object_key_makes_the_site_unlistable_not_the_run(store, tmp_path) -> None:  # noqa: F811
    deliver(store, "101", D3, {"dm": sample("dm")})
    deliver(store, "102", D3, {"dm": sample("dm", site="102")})
    if hasattr(store, "bucket"):
        store.client.put_object(Bucket=store.bucket, Key=f"landing/{STUDY}/102/{D3}/lb\\x.csv", Body=b"x")
    else:
        (store.root / STUDY / "102" / D3 / "lb\x01.csv").write_bytes(b"x")
    clean, bad = (ingest_site(store, STUDY, site, now=NOW) for site in ("101", "102"))
    assert clean.audited and clean.findings.height == 0
    assert not bad.audited
    assert codes(bad.findings) == [Code.SITE_UNLISTABLE, Code.SITE_NOT_AUDITED]
    result = combine_sites(STUDY, [clean, bad])
    assert result.sites_not_audited == {"102": "its folder cannot be listed safely"}


def test_naive_now_is_utc_and_limits_are_options(store) -> None:  # noqa: F811
    from datetime import timedelta

    from ingestion import IngestOptions

    lb = sample("lb").with_columns(pl.Series("LBTEST", ["x" * 30, "short", "y" * 31]))
    deliver(store, "101", D1, {"lb": lb})
    deliver(store, "101", D3, {"dm": sample("dm")}, manifest=False)  # 4 hours before NOW
    options = IngestOptions(max_field_chars=30, incomplete_after=timedelta(hours=3))
    result = ingest_site(store, STUDY, "101", now=datetime(2026, 11, 28, 3, 0), options=options)
    assert sorted(codes(result.findings)) == sorted([Code.DELIVERY_INCOMPLETE, Code.ROW_FIELD_TOO_LONG])
    assert result.frames["lb"]["LBTEST"].to_list() == ["x" * 30, "short"]
    row = result.findings.filter(pl.col("EXPECTATION") == str(Code.ROW_FIELD_TOO_LONG)).row(0, named=True)
    assert (row["VARIABLE"], row["OBSERVED"], row["USUBJID"]) == ("LBTEST", "31 characters", "SZ003-101-003")
    assert row["SOURCE"] == f"{STUDY}/101/{D1}/lb.csv:3"
    assert_balanced(result)


def test_deliveries_after_the_cutoff_are_not_considered(store) -> None:  # noqa: F811
    """A re-run of a past night audits what that night saw, not a delivery made since."""
    deliver(store, "101", D1, {"dm": sample("dm", n=1)})
    deliver(store, "101", D2, {"dm": sample("dm", n=2)})
    d2 = parse_delivery_id(D2)
    before = ingest_site(store, STUDY, "101", now=NOW, cutoff=d2)  # D2 stamped exactly at the cut-off
    assert before.delivery == D1 and before.frames["dm"].height == 1
    assert _statuses(before) == {D2: "AFTER_AS_OF", D1: "USED"}
    assert before.findings.height == 0  # not a site problem: no finding
    assert [d.reason for d in before.deliveries if d.delivery == D2] == [
        "made after the audit's as-of date (cut-off 2026-11-26T23:00:00Z)"]
    after = ingest_site(store, STUDY, "101", now=NOW, cutoff=d2 + timedelta(seconds=1))
    assert after.delivery == D2 and _statuses(after) == {D2: "USED", D1: "SUPERSEDED"}


def test_a_site_whose_only_delivery_is_after_the_cutoff_is_not_audited_and_says_why(store) -> None:  # noqa: F811
    deliver(store, "102", D2, {"dm": sample("dm", site="102")})
    result = ingest_site(store, STUDY, "102", now=NOW, cutoff=parse_delivery_id(D1))
    assert not result.audited and codes(result.findings) == [Code.SITE_NOT_AUDITED]
    assert "no delivery made by the audit's as-of date" in result.findings["MESSAGE"][0]
