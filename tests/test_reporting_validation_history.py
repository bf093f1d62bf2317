"""Data-quality findings across nights: FIRST_SEEN carried by FINDING_ID, and the previous run's findings that
are gone tonight listed as resolved, only where tonight looked again (a site audited tonight).

A site monitor who corrected a file wants to see the audit agree the next morning; a site whose delivery was
rejected tonight has not been looked at, so its problems are not "resolved".
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import date

import polars as pl
import pytest

from contracts.tables import FINDING_ID
from generator import generate
from ingestion.codes import NOTE_PREFIX
from reporting import validation_history
from reporting.digest import build_digest
from reporting.history import MEMORY_NIGHTS, RESOLVED_VALIDATION_COLUMNS
from reporting.html import RESOLVED_SUBJECTS_SHOWN, resolved_quality
from reporting.publish import render_outputs
from reporting.tables import parquet_bytes
from storage import LocalStore, S3Store
from tests.support.published import seal
from tests.support.sample_outputs import make_outputs

STUDY = "SZ003"
NIGHT1, NIGHT2 = date(2026, 11, 27), date(2026, 11, 28)


def finding(site: str, subject: str | None, check: str, ident: str, expectation: str = "expect_x",
            first_seen: str | None = None) -> dict:
    domain, _, variable = check.split(".", 2)
    return {"STUDYID": STUDY, "SITEID": site, "USUBJID": subject, "DOMAIN": domain, "VARIABLE": variable,
            "EXPECTATION": expectation, "OBSERVED": "x", "MESSAGE": f"{check} problem of {subject}",
            "SOURCE": f"{STUDY}/{site}/d/lb.csv:3", FINDING_ID: ident, "CHECK": check, "FIRST_SEEN": first_seen}


def table(*rows: dict) -> pl.DataFrame:
    schema = {name: pl.String for name in finding("101", "s", "LB.a.B", "V-0")}
    return pl.DataFrame(list(rows), schema=schema)


def publish_validation(store, night: date, frame: pl.DataFrame | None, audited: dict[str, str] | None = None) -> None:
    """A published night with `frame` as its validation table (None: without one) and, with `audited`, a run
    manifest saying which sites it audited on which delivery status ("USED", or "FALLBACK": an older delivery
    after a rejected newer one)."""
    prefix = f"{STUDY}/{night.isoformat()}"
    if frame is not None:
        store.write_bytes(f"{prefix}/validation.parquet", parquet_bytes(frame))
    if audited is not None:
        deliveries = [{"site": site, "delivery": "20261101T000000Z", "status": "USED",
                       "reason": "the newer delivery was rejected" if how == "FALLBACK" else ""}
                      for site, how in audited.items() if how in ("USED", "FALLBACK")]
        manifest = {"sites_audited": [site for site, how in audited.items() if how in ("USED", "FALLBACK")],
                    "sites_not_audited": [{"site": site, "reason": "every delivery rejected"}
                                          for site, how in audited.items() if how == "NOT AUDITED"],
                    "deliveries": deliveries}
        store.write_bytes(f"{prefix}/run_manifest.json", json.dumps(manifest).encode("utf-8"))
    seal(store, prefix)


FIXED = finding("101", "SZ003-101-0001", "LB.iso_date.LBDTC", "V-fixed", first_seen="2026-11-20")
STILL = finding("101", "SZ003-101-0002", "LB.iso_date.LBDTC", "V-still")
UNSEEN = finding("102", "SZ003-102-0001", "LB.iso_date.LBDTC", "V-unseen")  # site 102 not audited tonight
NOTE = finding("101", None, "LB.note.LBORRESU", "V-note", expectation=NOTE_PREFIX + "encoding_ignored")
OLD = finding("101", "SZ003-101-0003", "LB.iso_date.LBDTC", None)  # published before findings had an identity


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        store = LocalStore(tmp_path / "reports")
    else:
        store = S3Store(f"s3://{request.getfixturevalue('s3_bucket')}/reports",
                        endpoint_url=request.getfixturevalue("s3_endpoint"))
    publish_validation(store, NIGHT1, table(FIXED, STILL, UNSEEN, NOTE, OLD))
    return store


def test_a_finding_gone_at_a_site_audited_tonight_is_resolved_once_with_its_history(store):
    tonight = table(finding("101", "SZ003-101-0002", "LB.iso_date.LBDTC", "V-still"),
                    finding("101", "SZ003-101-0009", "LB.iso_date.LBDTC", "V-new")).drop("FIRST_SEEN")
    history = validation_history(tonight, store, study=STUDY, as_of=NIGHT2, looked_again=["101"])
    resolved = history.resolved
    assert resolved.schema == pl.Schema(RESOLVED_VALIDATION_COLUMNS)
    # the note was no problem, the finding without an identity cannot be followed, site 102 was not looked at
    assert resolved[FINDING_ID].to_list() == ["V-fixed"]
    row = resolved.row(0, named=True)
    assert (row["FIRST_SEEN"], row["RESOLVED_ON"], row["USUBJID"]) == ("2026-11-20", "2026-11-28", "SZ003-101-0001")
    first = dict(zip(history.findings[FINDING_ID], history.findings["FIRST_SEEN"], strict=True))
    assert first == {"V-still": NIGHT1.isoformat(), "V-new": NIGHT2.isoformat()}

    # the next night compares with tonight's table: what was resolved is not resolved again
    publish_validation(store, NIGHT2, history.findings)
    later = validation_history(tonight, store, study=STUDY, as_of=date(2026, 11, 29), looked_again=["101"])
    assert later.resolved.height == 0


def test_a_site_audited_again_has_its_findings_resolved(store):
    history = validation_history(table().drop("FIRST_SEEN"), store, study=STUDY, as_of=NIGHT2,
                                 looked_again=["101", "102"])
    assert sorted(history.resolved[FINDING_ID].to_list()) == ["V-fixed", "V-still", "V-unseen"]


def test_without_an_earlier_run_or_a_site_looked_at_again_nothing_is_resolved(tmp_path, store):
    tonight = table(STILL).drop("FIRST_SEEN")
    empty = validation_history(tonight, LocalStore(tmp_path / "none"), study=STUDY, as_of=NIGHT2,
                               looked_again=["101"])
    assert empty.resolved.height == 0 and empty.resolved.schema == pl.Schema(RESOLVED_VALIDATION_COLUMNS)
    assert empty.findings["FIRST_SEEN"].to_list() == [NIGHT2.isoformat()]
    nobody = validation_history(tonight, store, study=STUDY, as_of=NIGHT2, looked_again=())
    assert nobody.resolved.height == 0 and nobody.findings["FIRST_SEEN"].to_list() == [NIGHT1.isoformat()]
    # which sites are looked at again changes what is resolved, not tonight's findings' history
    assert nobody.findings.equals(
        validation_history(tonight, store, study=STUDY, as_of=NIGHT2, looked_again=["101"]).findings)


NIGHTS = [date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 28)]
X = finding("102", "SZ003-102-0001", "LB.iso_date.LBDTC", "V-x")
Y = finding("102", "SZ003-102-0002", "LB.iso_date.LBDTC", "V-y")
REJECTED = finding("102", None, "ingest.delivery.rejected", "V-rejected")


def test_a_site_not_audited_last_night_is_compared_with_the_night_it_was(tmp_path):
    """helper-33: each night compared only with the night before, a site not audited that night had no findings
    there: its fix was never listed, and what it still had started again as new."""
    store = LocalStore(tmp_path / "reports")
    publish_validation(store, NIGHTS[0], table({**X, "FIRST_SEEN": "2026-11-20"}, Y), {"101": "USED", "102": "USED"})
    publish_validation(store, NIGHTS[1], table(REJECTED), {"101": "USED", "102": "NOT AUDITED"})
    tonight = table(Y).drop("FIRST_SEEN")
    history = validation_history(tonight, store, study=STUDY, as_of=NIGHTS[2], looked_again={"101", "102"})
    # X was fixed, and the rejection of the night between is gone too
    assert sorted(history.resolved[FINDING_ID].to_list()) == ["V-rejected", "V-x"]
    assert history.resolved.filter(pl.col(FINDING_ID) == "V-x")["FIRST_SEEN"].to_list() == ["2026-11-20"]
    assert history.findings["FIRST_SEEN"].to_list() == [NIGHTS[0].isoformat()]  # Y is not new again


def test_a_site_audited_on_an_older_delivery_resolves_nothing_until_it_is_looked_at_again(tmp_path):
    """helper-33: audited on a fallback delivery, what only the rejected newer one had looks fixed; it is not."""
    from reporting.history import looked_at_again

    store = LocalStore(tmp_path / "reports")
    publish_validation(store, NIGHTS[0], table(X, Y), {"102": "USED"})
    manifest = {"sites_audited": ["101", "102"], "deliveries": [
        {"site": "101", "status": "USED", "reason": ""},
        {"site": "102", "status": "USED", "reason": "the newer delivery 20261127T230000Z was rejected"},
        {"site": "102", "status": "REJECTED", "reason": "lb.csv sha256 differs"}]}
    assert looked_at_again(manifest["sites_audited"], manifest["deliveries"]) == {"101"}
    fallback = validation_history(table(Y).drop("FIRST_SEEN"), store, study=STUDY, as_of=NIGHTS[1],
                                  looked_again={"101"})
    assert fallback.resolved.height == 0
    publish_validation(store, NIGHTS[1], fallback.findings, {"102": "FALLBACK"})
    # the next night audits its newest delivery again: compared with the night before the fallback, and what the
    # fallback night still had
    back = validation_history(table().drop("FIRST_SEEN"), store, study=STUDY, as_of=NIGHTS[2], looked_again={"102"})
    assert sorted(back.resolved[FINDING_ID].to_list()) == ["V-x", "V-y"]


def test_a_site_never_looked_at_before_resolves_what_every_night_of_the_study_told_it(tmp_path):
    """helper-36: a site rejected (audited on an older delivery) since the study's first night had its rejection
    vanish, unlisted, the night its corrected delivery was audited: with no night that had looked at it, its memory
    was unknown. Every night of the study was read, so it is all the site was ever told; a night without its
    table still leaves it unknown."""
    store = LocalStore(tmp_path / "reports")
    publish_validation(store, NIGHTS[0], table(REJECTED, X), {"101": "USED", "102": "FALLBACK"})
    publish_validation(store, NIGHTS[1], table(REJECTED, X), {"101": "USED", "102": "FALLBACK"})
    back = validation_history(table(X).drop("FIRST_SEEN"), store, study=STUDY, as_of=NIGHTS[2], looked_again={"102"})
    assert back.resolved.select(FINDING_ID, "FIRST_SEEN", "RESOLVED_ON").rows() == [
        ("V-rejected", NIGHTS[0].isoformat(), NIGHTS[2].isoformat())]
    assert back.findings["FIRST_SEEN"].to_list() == [NIGHTS[0].isoformat()]
    gap = LocalStore(tmp_path / "gap")
    publish_validation(gap, NIGHTS[0], None, {"101": "USED", "102": "FALLBACK"})
    publish_validation(gap, NIGHTS[1], table(REJECTED, X), {"101": "USED", "102": "FALLBACK"})
    assert validation_history(table(X).drop("FIRST_SEEN"), gap, study=STUDY, as_of=NIGHTS[2],
                              looked_again={"102"}).resolved.height == 0


def test_a_night_that_read_a_site_without_its_rejected_file_is_no_memory_of_that_site(tmp_path):
    """helper-39: the night a site's lb.csv was rejected has none of its lab findings; taken as the site's memory,
    the next night listed them as NEW (FIRST_SEEN restarted). The walk goes on to the night that read everything."""
    store = LocalStore(tmp_path / "reports")
    publish_validation(store, NIGHTS[0], table({**X, "FIRST_SEEN": "2026-11-20"}), {"101": "USED", "102": "USED"})
    rejected_file = {**finding("102", None, "LB.file.LB", "V-file", expectation="ingest.file_rejected.missing_column"),
                     "SOURCE": f"{STUDY}/102/20261101T000000Z/lb.csv"}
    publish_validation(store, NIGHTS[1], table(rejected_file), {"101": "USED", "102": "USED"})
    back = validation_history(table(X).drop("FIRST_SEEN"), store, study=STUDY, as_of=NIGHTS[2],
                              looked_again={"101", "102"})
    assert back.findings["FIRST_SEEN"].to_list() == ["2026-11-20"]
    assert back.resolved[FINDING_ID].to_list() == ["V-file"]  # the file is read again tonight


@pytest.mark.parametrize("earlier", [MEMORY_NIGHTS - 1, MEMORY_NIGHTS, MEMORY_NIGHTS + 1])
def test_a_site_never_looked_at_is_compared_with_the_whole_study_only_when_it_was_all_read(tmp_path, earlier):
    """helper-38: with exactly MEMORY_NIGHTS earlier nights the walk read them all, yet took the study as longer."""
    store = LocalStore(tmp_path / "reports")
    first = date(2026, 10, 1)
    for n in range(earlier):
        night = date.fromordinal(first.toordinal() + n)
        publish_validation(store, night, table(REJECTED) if n == 0 else table(), {"101": "USED", "102": "NOT AUDITED"})
    tonight = date.fromordinal(first.toordinal() + earlier)
    resolved = validation_history(table().drop("FIRST_SEEN"), store, study=STUDY, as_of=tonight,
                                  looked_again={"101", "102"}).resolved
    assert resolved[FINDING_ID].to_list() == (["V-rejected"] if earlier <= MEMORY_NIGHTS else [])


def test_a_night_that_looked_again_without_its_table_resolves_nothing_twice(tmp_path):
    """helper-33: a night folder without validation.parquet made the next night compare with an older night and
    list again what that night had already listed as resolved."""
    store = LocalStore(tmp_path / "reports")
    publish_validation(store, NIGHTS[0], table(X, Y), {"102": "USED"})
    publish_validation(store, NIGHTS[1], None, {"102": "USED"})
    history = validation_history(table().drop("FIRST_SEEN"), store, study=STUDY, as_of=NIGHTS[2],
                                 looked_again={"102"})
    assert history.resolved.height == 0


def test_ingestion_findings_resolve_under_their_expectation_not_a_blank_check(tmp_path):
    """helper-34: a repaired rejected delivery and its fallback, both without CHECK, were one row with a blank check."""
    store = LocalStore(tmp_path / "reports")
    rejected = {**REJECTED, "CHECK": None, "EXPECTATION": "ingest.delivery_rejected.checksum"}
    fallback = {**REJECTED, FINDING_ID: "V-fallback", "CHECK": None, "EXPECTATION": "ingest.delivery_fallback"}
    publish_validation(store, NIGHTS[0], table(Y), {"102": "USED"})
    publish_validation(store, NIGHTS[1], table(Y, rejected, fallback), {"102": "FALLBACK"})
    history = validation_history(table(Y).drop("FIRST_SEEN"), store, study=STUDY, as_of=NIGHTS[2],
                                 looked_again={"102"})
    assert sorted(history.resolved["CHECK"].to_list()) == ["ingest.delivery_fallback",
                                                           "ingest.delivery_rejected.checksum"]
    assert resolved_quality(history.resolved).height == 2


def test_a_finding_listed_twice_resolves_once_with_its_earliest_date(tmp_path):
    store = LocalStore(tmp_path / "reports")
    publish_validation(store, NIGHTS[0], table({**X, "FIRST_SEEN": "2026-11-24"}, {**X, "FIRST_SEEN": "2026-11-02"}))
    history = validation_history(table().drop("FIRST_SEEN"), store, study=STUDY, as_of=NIGHTS[1],
                                 looked_again={"102"})
    assert history.resolved.select(FINDING_ID, "FIRST_SEEN").rows() == [("V-x", "2026-11-02")]


def test_an_earlier_table_of_another_shape_is_a_history_error_naming_it(tmp_path):
    from reporting.history import HistoryError

    store = LocalStore(tmp_path / "reports")
    store.write_bytes(f"{STUDY}/{NIGHTS[0].isoformat()}/validation.parquet",
                      parquet_bytes(pl.DataFrame({"SITEID": [[1]], FINDING_ID: ["V-x"]})))
    seal(store, f"{STUDY}/{NIGHTS[0].isoformat()}")
    with pytest.raises(HistoryError, match=r"validation\.parquet"):
        validation_history(table().drop("FIRST_SEEN"), store, study=STUDY, as_of=NIGHTS[1], looked_again={"102"})


def test_a_site_that_never_delivered_does_not_make_the_night_read_every_earlier_one(tmp_path):
    """helper-35: a site never audited (its SITE NOT AUDITED finding tonight) made every one of 31 earlier nights be
    read, a seventh of publication; only the sites looked at again are followed back."""
    store = LocalStore(tmp_path / "reports")
    never = {**REJECTED, "SITEID": "104", FINDING_ID: "V-never", "FIRST_SEEN": "2026-11-01"}
    days = [date(2026, 11, day) for day in range(1, 11)]
    for day in days:  # each night carried FIRST_SEEN from the first
        publish_validation(store, day, table({**Y, "FIRST_SEEN": "2026-11-01"}, never),
                           {"102": "USED", "104": "NOT AUDITED"})
    read = []

    class Counting(LocalStore):
        def read_bytes(self, key: str) -> bytes:
            read.append(key)
            return super().read_bytes(key)

    tonight = table(Y, never).drop("FIRST_SEEN")
    history = validation_history(tonight, Counting(store.root), study=STUDY, as_of=date(2026, 11, 11),
                                 looked_again={"102"})
    assert [key for key in read if key.endswith("validation.parquet")] == [f"{STUDY}/2026-11-10/validation.parquet"]
    assert history.resolved.height == 0
    assert dict(zip(history.findings[FINDING_ID], history.findings["FIRST_SEEN"], strict=True)) == {
        "V-y": "2026-11-01", "V-never": "2026-11-01"}


def test_the_report_groups_them_by_site_and_check_and_the_digest_counts_them():
    rows = [finding("101", f"SZ003-101-{i:04d}", "LB.iso_date.LBDTC", f"V-{i}", first_seen=f"2026-11-{10 + i}")
            for i in range(RESOLVED_SUBJECTS_SHOWN + 2)]
    rows.append(finding("103", "SZ003-103-0001", "VS.unique_key.VSTESTCD", "V-vs", first_seen="2026-11-25"))
    resolved = table(*rows).with_columns(pl.lit(NIGHT2.isoformat()).alias("RESOLVED_ON"),
                                         pl.lit(None, pl.String).alias("REVIEW_STATE")).select(
        list(RESOLVED_VALIDATION_COLUMNS))
    grouped = resolved_quality(resolved)
    assert grouped.select("SITEID", "CHECK", "FINDINGS", "FIRST_SEEN").rows() == [
        ("101", "LB.iso_date.LBDTC", RESOLVED_SUBJECTS_SHOWN + 2, "2026-11-10"),
        ("103", "VS.unique_key.VSTESTCD", 1, "2026-11-25")]
    assert grouped["SUBJECTS"][0] == ", ".join(f"SZ003-101-{i:04d}" for i in range(RESOLVED_SUBJECTS_SHOWN)) \
        + " and 2 more"
    assert grouped["SUBJECTS"][1] == "SZ003-103-0001"  # fewer than shown: no "and 4294967292 more" (helper-34)

    outputs = replace(make_outputs(n_subjects=8, n_sites=2, as_of=NIGHT2), validation_resolved=resolved)
    files = {f.key: f.data for f in render_outputs(outputs, previous_run=NIGHT1)}
    html = files["report.html"].decode()
    assert re.search(r'id="n-resolved-data">8<', html)
    section = html[html.index("Data-quality findings resolved tonight"):html.index("Open the longest")]
    assert "VS.unique_key.VSTESTCD" in section and "and 2 more" in section

    import fastexcel

    sheet = fastexcel.read_excel(files["report.xlsx"]).load_sheet("Resolved data quality", dtypes="string")
    assert sorted(sheet.to_polars()[FINDING_ID].to_list()) == sorted(resolved[FINDING_ID].to_list())

    digest = build_digest(outputs, {})
    assert "resolved tonight: 8" in digest.text
    assert digest.facts["headline"]["resolved_data_findings"] == 8


def test_a_first_night_says_nothing_about_resolved_data_findings():
    files = {f.key: f.data for f in render_outputs(make_outputs(n_subjects=8, n_sites=2, as_of=NIGHT2))}
    html = files["report.html"].decode()
    assert "n-resolved-data" not in html and "Data-quality findings resolved tonight" not in html


def _rewrite(landing: LocalStore, folder: str, name: str, data: bytes | None = None, sha256: str | None = None) -> None:
    """Replace a delivered file (`data`) and put its sha256 in the delivery's manifest, or only put `sha256`
    there (a wrong one: the delivery is then rejected)."""
    if data is not None:
        landing.write_bytes(f"{folder}/{name}", data)
    manifest = json.loads(landing.read_bytes(f"{folder}/manifest.json"))
    for entry in manifest["files"]:
        if entry["name"] == name:
            entry["sha256"] = sha256 or hashlib.sha256(data).hexdigest()
    landing.write_bytes(f"{folder}/manifest.json", json.dumps(manifest).encode("utf-8"))


def _study(tmp_path) -> tuple[LocalStore, LocalStore, Callable[[date], None]]:
    """A generated three-site study's landing and reports folders, and a nightly run of it on a date (the flow)."""
    from flows.nightly import nightly_audit

    landing, reports = LocalStore(tmp_path / "landing"), LocalStore(tmp_path / "reports")
    generate(landing, study=STUDY, sites=3, subjects=40, seed=9, as_of=NIGHT1, formats="csv")

    def night(as_of: date) -> None:
        nightly_audit(landing=str(landing.root), reports=str(reports.root), study=STUDY, as_of=as_of.isoformat())

    return landing, reports, night


def test_two_nights_list_the_data_problem_a_site_fixed_and_not_a_rejected_sites(tmp_path, prefect_harness):
    """Night 1 finds the generator's planted problems. Before night 2 site 102 corrects its non-ISO CMSTDTC
    (03/12/2019, the site knows it is 3 December) and every delivery of site 101 fails its checksum, so
    site 101 is not audited: night 2 lists the date as resolved, and none of site 101's findings."""
    landing, reports, night = _study(tmp_path)
    night(NIGHT1)
    first = pl.read_parquet(io.BytesIO(reports.read_bytes(f"{STUDY}/{NIGHT1.isoformat()}/validation.parquet")))
    dated = first.filter(pl.col("CHECK") == "CM.iso_date.CMSTDTC")
    assert dated.select("SITEID", "OBSERVED").rows() == [("102", "03/12/2019")]
    key, row = dated["SOURCE"][0].rsplit(":", 1)
    folder = key.rsplit("/", 1)[0]
    lines = landing.read_bytes(key).decode("utf-8").split("\n")
    lines[int(row)] = lines[int(row)].replace("03/12/2019", "2019-12-03")
    _rewrite(landing, folder, "cm.csv", "\n".join(lines).encode("utf-8"))
    for info in landing.list(f"{STUDY}/101"):
        if info.key.endswith("/manifest.json"):
            _rewrite(landing, info.key.rsplit("/", 1)[0], "dm.csv", sha256="0" * 64)
    assert first.filter(pl.col("SITEID") == "101").height > 0

    night(NIGHT2)
    published = f"{STUDY}/{NIGHT2.isoformat()}"
    assert json.loads(reports.read_bytes(f"{published}/run_manifest.json"))["sites_audited"] == ["102", "103"]
    import fastexcel

    book = fastexcel.read_excel(reports.read_bytes(f"{published}/report.xlsx"))
    resolved = book.load_sheet("Resolved data quality", dtypes="string").to_polars()
    assert resolved.select(FINDING_ID, "CHECK", "FIRST_SEEN", "RESOLVED_ON").rows() == [
        (dated[FINDING_ID][0], "CM.iso_date.CMSTDTC", NIGHT1.isoformat(), NIGHT2.isoformat())]
    html = reports.read_bytes(f"{published}/report.html").decode()
    assert re.search(r'id="n-resolved-data">1<', html)
    # the discrepancies follow the same rule through the flow: site 101, not audited tonight, resolves none of its
    # findings; they are carried as night 1 found them (helper-36: all 23 of such a site's findings resolved)
    before = pl.read_parquet(io.BytesIO(reports.read_bytes(f"{STUDY}/{NIGHT1.isoformat()}/discrepancies.parquet")))
    after = pl.read_parquet(io.BytesIO(reports.read_bytes(f"{published}/discrepancies.parquet")))
    site = pl.col("SITEID") == "101"
    assert before.filter(site).height > 0
    carried = after.filter(site)
    assert carried.select(FINDING_ID, "FIRST_SEEN", "EVIDENCE").sort(FINDING_ID).equals(
        before.filter(site).select(FINDING_ID, "FIRST_SEEN", "EVIDENCE").sort(FINDING_ID))
    assert set(carried["STATUS"]) == {"OPEN"} and set(carried["CARRIED"]) == {"site 101 not audited tonight"}
    assert set(carried["EVALUATED_ON"]) == {NIGHT1.isoformat()}
    assert set(after.filter(~site)["EVALUATED_ON"]) == {NIGHT2.isoformat()}
    assert "101" in book.load_sheet("Sites", dtypes="string").to_polars()["SITEID"].to_list()


def test_a_site_audited_without_its_rejected_lab_file_resolves_nothing(tmp_path, prefect_harness):
    """helper-39, through the flow: a site's newest delivery is used but its lb.csv is rejected (no LBORRESU
    column). Night 2 resolves none of the site's findings, discrepancies or data-quality: what the lab file would
    show was not read; they are carried, as night 1 found them."""
    landing, reports, night = _study(tmp_path)
    night(NIGHT1)
    before = pl.read_parquet(io.BytesIO(reports.read_bytes(f"{STUDY}/{NIGHT1.isoformat()}/discrepancies.parquet")))
    target = before.group_by("SITEID").len().sort("len", "SITEID")["SITEID"][-1]  # the site with most findings
    lab = next(info.key for info in sorted(landing.list(f"{STUDY}/{target}"), key=lambda i: i.key)[::-1]
               if info.key.endswith("/lb.csv"))
    folder = lab.rsplit("/", 1)[0]
    frame = pl.read_csv(io.BytesIO(landing.read_bytes(lab)), infer_schema=False)
    buffer = io.BytesIO()
    frame.drop("LBORRESU").write_csv(buffer)
    _rewrite(landing, folder, "lb.csv", buffer.getvalue())
    night(NIGHT2)
    site = pl.col("SITEID") == target
    after = pl.read_parquet(io.BytesIO(reports.read_bytes(f"{STUDY}/{NIGHT2.isoformat()}/discrepancies.parquet")))
    assert before.filter(site).height > 0
    assert after.filter(site & (pl.col("STATUS") == "RESOLVED")).height == 0
    kept = after.filter(site & pl.col(FINDING_ID).is_in(before.filter(site)[FINDING_ID].implode()))
    assert kept.height == before.filter(site).height
    assert set(kept["CARRIED"]) == {f"site {target} audited without its rejected file(s) lb.csv: what they hold was "
                                    "not read"}
    assert kept.select(FINDING_ID, "EVIDENCE_HASH").sort(FINDING_ID).equals(
        before.filter(site).select(FINDING_ID, "EVIDENCE_HASH").sort(FINDING_ID))
    import fastexcel

    book = fastexcel.read_excel(reports.read_bytes(f"{STUDY}/{NIGHT2.isoformat()}/report.xlsx"))
    resolved = book.load_sheet("Resolved data quality", dtypes="string").to_polars()
    assert target not in resolved["SITEID"].to_list()
