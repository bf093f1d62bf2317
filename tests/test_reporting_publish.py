"""publish(): every output under the prefix, byte-identical tables on rerun, Data Docs content types."""

from __future__ import annotations

import importlib
import io
import json
from dataclasses import replace

import boto3
import polars as pl
import pytest

from reporting import publish, render_outputs
from reporting.tables import DV
from storage import LocalStore, S3Store
from tests.support.sample_outputs import make_outputs

PREFIX = "SZ003/2026-11-28"
TABLE_FILES = [f"{name}.{ext}"
               for name in ("subjects", "eligibility", "discrepancies", "validation", "validation_resolved", "dv")
               for ext in ("csv", "parquet")]


@pytest.fixture(scope="module")
def outputs():
    return make_outputs(n_subjects=60, n_sites=3)


@pytest.fixture
def data_docs(tmp_path):
    root = tmp_path / "docs"
    (root / "static" / "styles").mkdir(parents=True)
    (root / "index.html").write_text("<html>docs</html>")
    (root / "static" / "styles" / "a.css").write_text("body{}")
    (root / "static" / "app.js").write_text("1;")
    (root / "static" / "logo.png").write_bytes(b"\x89PNG\r\n")
    return root


def test_publish_writes_every_output(tmp_path, outputs, data_docs):
    store = LocalStore(tmp_path / "reports")
    keys = publish(replace(outputs, data_docs=data_docs), store, PREFIX)
    rel = [k.removeprefix(PREFIX + "/") for k in keys]
    for name in [*TABLE_FILES, "dv.xpt", "report.html", "report.xlsx", "run_manifest.json",
                 "data_docs/index.html", "data_docs/static/styles/a.css", "data_docs/static/app.js",
                 "data_docs/static/logo.png", "site_queries/101.csv", "site_queries/101.xlsx",
                 "site_queries/103.xlsx"]:
        assert name in rel, name
    assert rel[-1] == "run_manifest.json"  # written last: its presence means the run is complete
    assert all((tmp_path / "reports" / k).is_file() for k in keys)
    manifest = json.loads((tmp_path / "reports" / PREFIX / "run_manifest.json").read_text())
    assert manifest["as_of"] == "2026-11-28"
    html = (tmp_path / "reports" / PREFIX / "report.html").read_text()
    assert 'href="data_docs/index.html"' in html and 'href="report.xlsx"' in html
    # every table has the same columns in CSV and Parquet
    for name in ("subjects", "eligibility", "discrepancies", "validation", "validation_resolved", "dv"):
        csv = pl.read_csv(tmp_path / "reports" / PREFIX / f"{name}.csv", infer_schema=False)
        parquet = pl.read_parquet(tmp_path / "reports" / PREFIX / f"{name}.parquet")
        assert csv.columns == parquet.columns and csv.height == parquet.height
    assert pl.read_parquet(tmp_path / "reports" / PREFIX / "dv.parquet").columns == list(DV)


def test_site_query_files_hold_only_their_site(tmp_path, outputs):
    store = LocalStore(tmp_path)
    publish(outputs, store, PREFIX)
    for site in ("101", "102", "103"):
        frame = pl.read_csv(tmp_path / PREFIX / "site_queries" / f"{site}.csv", infer_schema=False)
        assert frame["SITEID"].unique().to_list() == [site]
        assert frame["QUERY_TEXT"].str.contains("Please").all()
        expected = outputs.validation.filter(pl.col("SITEID") == site)
        listed = frame.filter(pl.col("ORIGIN") == "VALIDATION")  # one query per problem, listing its findings
        assert listed["N_FINDINGS"].cast(pl.Int64).sum() == expected.height
        assert sorted(listed["FINDING_IDS"].str.split(" ").explode().to_list()) == sorted(expected["FINDING_ID"])


def test_rerun_gives_byte_identical_tables(outputs):
    first = {f.key: f.data for f in render_outputs(outputs)}
    again = {f.key: f.data for f in render_outputs(replace(outputs, run_manifest=dict(outputs.run_manifest)))}
    for name in [*TABLE_FILES, "dv.xpt", "site_queries/101.csv"]:
        assert first[name] == again[name], name
    # shuffled input rows and columns give the same bytes too
    shuffled = replace(outputs,
                       eligibility=outputs.eligibility.sample(fraction=1.0, shuffle=True, seed=1)
                       .select(list(reversed(outputs.eligibility.columns))),
                       subjects=outputs.subjects.reverse())
    third = {f.key: f.data for f in render_outputs(shuffled)}
    assert third["eligibility.parquet"] == first["eligibility.parquet"]
    assert third["subjects.csv"] == first["subjects.csv"]


def test_publish_to_s3_with_content_types(s3_endpoint, s3_bucket, outputs, data_docs):
    store = S3Store(f"s3://{s3_bucket}/reports", endpoint_url=s3_endpoint)
    keys = publish(replace(outputs, data_docs=data_docs), store, PREFIX)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")

    def content_type(rel: str) -> str:
        return client.head_object(Bucket=s3_bucket, Key=f"reports/{PREFIX}/{rel}")["ContentType"]

    assert content_type("report.html").startswith("text/html")
    assert content_type("data_docs/index.html").startswith("text/html")
    assert content_type("data_docs/static/styles/a.css") == "text/css; charset=utf-8"
    assert content_type("data_docs/static/app.js") == "application/javascript; charset=utf-8"
    assert content_type("data_docs/static/logo.png") == "image/png"
    assert content_type("subjects.csv").startswith("text/csv")
    body = client.get_object(Bucket=s3_bucket, Key=f"reports/{PREFIX}/subjects.parquet")["Body"].read()
    assert pl.read_parquet(io.BytesIO(body)).height == outputs.subjects.height
    assert len(keys) == len(set(keys))


def test_a_run_with_no_findings_still_publishes_everything(tmp_path):
    from contracts import DISCREPANCIES
    from reporting.tables import PUBLISHED_VALIDATION

    quiet = make_outputs(n_subjects=6, n_sites=2)
    quiet = replace(quiet, discrepancies=pl.DataFrame(schema=DISCREPANCIES), validation=pl.DataFrame())
    files = {f.key: f.data for f in render_outputs(quiet)}
    assert not any(key.startswith("site_queries/") for key in files)
    assert pl.read_csv(io.BytesIO(files["dv.csv"])).columns == list(DV)
    assert pl.read_csv(io.BytesIO(files["validation.csv"])).columns == list(PUBLISHED_VALIDATION)
    html = files["report.html"].decode()
    assert 'id="n-important">0<' in html and 'id="n-queries">0<' in html
    assert "No earlier run of this study was found" in html


def test_tables_are_byte_identical_across_processes(outputs):
    """Polars seeds its hashing per process: a fresh interpreter must still write the same bytes."""
    import hashlib
    import subprocess
    import sys

    script = ("import hashlib\nfrom tests.support.sample_outputs import make_outputs\n"
              "from reporting import render_outputs\n"
              "for f in render_outputs(make_outputs(n_subjects=60, n_sites=3)):\n"
              "    print(f.key, hashlib.sha256(f.data).hexdigest())\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    other = dict(line.split(" ") for line in result.stdout.splitlines())
    here = {f.key: hashlib.sha256(f.data).hexdigest() for f in render_outputs(outputs)}
    for name in [*TABLE_FILES, "dv.xpt", "site_queries/101.csv"]:
        assert other[name] == here[name], name


def test_site_text_is_escaped_in_the_report(outputs):
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    disc = outputs.discrepancies.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(hostile)).otherwise(pl.col("EVIDENCE")).alias("EVIDENCE"))
    files = {f.key: f.data for f in render_outputs(replace(outputs, discrepancies=disc))}
    html = files["report.html"].decode()
    assert hostile not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # only the report's own filter script


def test_discrepancies_straight_from_compare_without_history_columns_still_publish(outputs):
    raw = outputs.discrepancies.drop("STATUS", "FIRST_SEEN", "DAYS_OPEN")
    files = {f.key: f.data for f in render_outputs(replace(outputs, discrepancies=raw))}
    dv = pl.read_csv(io.BytesIO(files["dv.csv"]))
    assert dv.height == outputs.discrepancies.filter(pl.col("SEVERITY") == "IMPORTANT").height > 0


def test_workbook_sheets(outputs):
    import fastexcel

    files = {f.key: f.data for f in render_outputs(outputs)}
    book = fastexcel.read_excel(files["report.xlsx"])
    assert book.sheet_names == ["Summary", "Review", "Sites", "Protocol versions", "Subjects",
                                "Important deviations", "Queries", "Query detail", "Discrepancies",
                                "Validation findings", "Resolved data quality", "Eligibility matrix", "Site risk",
                                "Reconciliation", "Not audited", "DV"]
    subjects = book.load_sheet("Subjects", dtypes="string").to_polars()
    assert subjects.height == outputs.subjects.height
    matrix = book.load_sheet("Eligibility matrix", dtypes="string").to_polars()
    assert matrix.height == outputs.subjects.height and "IN10" in matrix.columns
    summary = dict(book.load_sheet("Summary", dtypes="string").to_polars().rows())
    assert summary["SUBJECTS SCREENED"] == str(outputs.subjects.height)


def test_each_site_gets_every_finding_in_its_detail_csv_and_the_detail_sheet_lists_a_querys_first(
        outputs, monkeypatch):
    import functools
    import importlib

    import fastexcel

    from reporting.queries import capped_detail

    publishing = importlib.import_module("reporting.publish")  # the module (the package exports its function)
    limit = 1  # the real limit (DETAIL_SHEET_FINDINGS) is above this small study's queries
    monkeypatch.setattr(publishing, "capped_detail", functools.partial(capped_detail, limit=limit))
    files = {f.key: f.data for f in render_outputs(outputs)}
    capped = 0
    for site in ("101", "102", "103"):
        queries = pl.read_csv(io.BytesIO(files[f"site_queries/{site}.csv"]), infer_schema=False)
        detail = pl.read_csv(io.BytesIO(files[f"site_queries/detail/{site}.csv"]), infer_schema=False)
        assert sorted(detail["FINDING_ID"]) == sorted(queries["FINDING_IDS"].str.split(" ").explode())
        assert set(detail["SITEID"]) == {site}
        sheet = fastexcel.read_excel(files[f"site_queries/{site}.xlsx"]).load_sheet(
            "Detail", dtypes="string").to_polars()
        assert sheet.columns == detail.columns
        listed = sheet.filter(pl.col("FINDING_ID").is_not_null())
        first = detail.filter(pl.int_range(pl.len()).over("QUERY_ID") < limit)
        assert listed.equals(first)  # the first findings of each query, as in the CSV, in its order
        notes = sheet.filter(pl.col("FINDING_ID").is_null())
        longer = detail.group_by("QUERY_ID").len().filter(pl.col("len") > limit)
        assert sorted(notes["QUERY_ID"]) == sorted(longer["QUERY_ID"])
        assert notes["DETAIL"].str.contains(f"site_queries/detail/{site}.csv lists all", literal=True).all()
        capped += notes.height
    assert capped > 0


class _Recording(LocalStore):
    """A folder store that remembers how each object reached it."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.moved: list[str] = []
        self.as_bytes: list[str] = []

    def move_file(self, key, path, content_type=None) -> None:
        assert path.parent.parent == self._path(PREFIX)  # rendered in a scratch folder beside the outputs
        self.moved.append(key.removeprefix(PREFIX + "/"))
        super().move_file(key, path, content_type)

    def write_bytes(self, key, data, content_type=None) -> None:
        self.as_bytes.append(key.removeprefix(PREFIX + "/"))
        super().write_bytes(key, data, content_type)


def test_tables_and_site_csvs_are_rendered_into_files_the_store_takes(tmp_path, outputs):
    """The large outputs (every table, the site query and detail CSVs) are written by polars into files
    that a folder store renames into place: their bytes never pass through Python memory and are written
    once (docs/benchmarks.md). Their bytes are those of the in-memory writers, and no scratch folder is
    left behind."""
    from reporting.publish import published_tables
    from reporting.tables import csv_bytes, parquet_bytes

    store = _Recording(tmp_path / "reports")
    publish(outputs, store, PREFIX)
    sites = [k.removeprefix("site_queries/").removesuffix(".xlsx") for k in store.as_bytes
             if k.startswith("site_queries/") and k.endswith(".xlsx")]
    assert sites == sorted(sites) and len(sites) == 3
    site_csvs = [key for site in sites for key in (f"site_queries/{site}.csv", f"site_queries/detail/{site}.csv")]
    assert sorted(store.moved) == sorted([*TABLE_FILES, *site_csvs])
    assert not set(store.moved) & set(store.as_bytes)
    for name, table in published_tables(outputs).items():
        assert store.read_bytes(f"{PREFIX}/{name}.csv") == csv_bytes(table), name
        assert store.read_bytes(f"{PREFIX}/{name}.parquet") == parquet_bytes(table), name
    for site in sites:
        detail = pl.read_csv(io.BytesIO(store.read_bytes(f"{PREFIX}/site_queries/detail/{site}.csv")),
                             infer_schema=False)
        assert detail.height and detail["SITEID"].unique().to_list() == [site]
    assert [p.name for p in (store.root / PREFIX).iterdir() if p.name.startswith(".")] == []


def test_a_failed_rendering_reaches_the_caller_and_leaves_no_scratch(tmp_path, outputs, monkeypatch):
    """The site queries are built on a pool thread that other jobs wait for: when building them fails,
    the error reaches the caller (with one thread as with several) and the scratch folder is removed."""
    published = importlib.import_module("reporting.publish")  # the module: `reporting.publish` is the function

    def broken(queries):
        raise RuntimeError("consolidation failed")

    monkeypatch.setattr(published, "consolidate_queries", broken)
    for threads in (1, 4):
        monkeypatch.setattr(published, "PUBLISH_THREADS", threads)
        store = LocalStore(tmp_path / f"reports-{threads}")
        with pytest.raises(RuntimeError, match="consolidation failed"):
            publish(outputs, store, PREFIX)
        assert not any(p.name.startswith(".screening-audit-scratch-") for p in store.root.rglob("*"))


def test_a_staged_publication_is_sealed_with_the_sha256_of_every_moved_file(tmp_path, outputs):
    from publication import StagingWriter, check_complete

    store = LocalStore(tmp_path / "reports")
    staging = "_audit/SZ003/staging/2026-11-28/run-1"
    writer = StagingWriter(store, staging)
    publish(outputs, writer, staging)
    writer.seal(study="SZ003", as_of="2026-11-28", run_id="run-1")
    assert check_complete(store, staging, deep=True) == []
    assert {"eligibility.csv", "validation.parquet", "site_queries/detail/101.csv"} <= set(writer.written)


def test_the_report_says_a_site_far_below_the_study_rate_is_a_signal_too(outputs):
    # a negative Z is flagged as well: the page says why, not only the plots
    html = " ".join(next(f.data for f in render_outputs(outputs) if f.key == "report.html").decode().split())
    assert "one far below it (a negative Z) is unusual too" in html
