"""The nightly flow under injected S3 faults (moto behind the fault proxy, the real flow).

What the issue asks: throttling and timeouts while listing, downloading and uploading are retried
and the run completes with the same tables as an undisturbed run; a site whose reads keep failing
is reported as not audited while the others are audited; a reports endpoint that fails half way
through publishing leaves no partial report folder.

Retry delays (2, 10, 30 s in flows/retries.py: Prefect's task retries, and ingestion's per-site retries
inside its batched tasks) are set to zero here so the suite stays fast; boto3's own retries are kept
small with SCREENING_AUDIT_S3_ATTEMPTS. boto3's timeouts are generous (a busy machine must not turn a
slow answer into a fault) except in the test of injected timeouts, where the read timeout is what is
tested and the proxy holds the connection well past it.
"""

from __future__ import annotations

import io
from datetime import date

import boto3
import polars as pl
import pytest
from botocore.exceptions import ClientError
from faults import Action, FaultProxy, Rule, S3Request

import flows.retries
import flows.tasks
from generator import generate
from publication import is_complete
from storage import S3Store, StorageUnavailable

AS_OF = "2026-11-28"
PREFIX = f"SZ003/{AS_OF}"
TABLES = ("subjects", "eligibility", "discrepancies", "validation", "validation_resolved", "dv")


#: the read timeout where timeouts are injected, and how long the proxy then holds a connection
INJECTED_READ_TIMEOUT, HELD = 3, 8


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCREENING_AUDIT_S3_READ_TIMEOUT", "60")
    monkeypatch.setenv("SCREENING_AUDIT_S3_CONNECT_TIMEOUT", "10")
    monkeypatch.setenv("SCREENING_AUDIT_S3_ATTEMPTS", "2")
    for name in dir(flows.tasks):
        task = getattr(flows.tasks, name)
        if getattr(task, "retries", 0):
            monkeypatch.setattr(task, "retry_delay_seconds", 0)
    monkeypatch.setattr(flows.retries, "IO_RETRY_DELAYS", [0] * len(flows.retries.IO_RETRY_DELAYS))


@pytest.fixture(scope="module")
def landing(s3_endpoint: str) -> str:
    """3 sites, 40 subjects, generated once straight into moto (not through the proxy)."""
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="faults-landing")
    generate(S3Store("s3://faults-landing/in", endpoint_url=s3_endpoint), study="SZ003", sites=3, subjects=40,
             seed=3, as_of=date.fromisoformat(AS_OF), formats="csv")
    return "s3://faults-landing/in"


@pytest.fixture
def proxy(s3_endpoint: str):
    with FaultProxy(s3_endpoint) as running:
        yield running


def _reports(s3_endpoint: str, name: str) -> S3Store:
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return S3Store(f"s3://{name}/out", endpoint_url=s3_endpoint)


def _audit(landing: str, reports: S3Store, endpoint: str):
    from flows.nightly import nightly_audit

    return nightly_audit(landing=landing, reports=reports.uri, study="SZ003", as_of=AS_OF, endpoint_url=endpoint)


def _tables(reports: S3Store) -> dict[str, bytes]:
    return {name: reports.read_bytes(f"{PREFIX}/{name}.csv") for name in TABLES}


@pytest.fixture(scope="module")
def recorded(landing: str, s3_endpoint: str, prefect_harness: None) -> tuple[dict[str, bytes], list[S3Request]]:
    """An undisturbed run through the proxy (no rules): its tables, and every request it made."""
    reports = _reports(s3_endpoint, "faults-baseline")
    with FaultProxy(s3_endpoint) as watching:
        summary = _audit(landing, reports, watching.url)
    assert summary.sites_audited == 3
    return _tables(reports), watching.seen()


@pytest.fixture(scope="module")
def undisturbed(recorded: tuple[dict[str, bytes], list[S3Request]]) -> dict[str, bytes]:
    return recorded[0]


#: test buckets/prefixes -> the buckets of deploy/iam-policy.json
POLICY_BUCKETS = {"faults-landing": ("in/", "sz003-landing"), "faults-baseline": ("out/", "sz003-reports")}
POLICY_ACTIONS = {"list": ["s3:ListBucket"], "get": ["s3:GetObject"], "head": ["s3:GetObject"],
                  "put": ["s3:PutObject"], "copy": ["s3:PutObject"], "delete": ["s3:DeleteObject"]}


def test_the_iam_policy_allows_every_request_a_run_makes(recorded: tuple[dict[str, bytes], list[S3Request]]) -> None:
    from test_privacy_iam import allowed

    requests = recorded[1]
    assert {r.operation for r in requests} >= {"list", "get", "put"}
    refused = []
    for request in requests:
        strip, bucket = POLICY_BUCKETS[request.bucket]
        for action in POLICY_ACTIONS[request.operation]:
            if action == "s3:ListBucket":
                ok = allowed(action, f"arn:aws:s3:::{bucket}", prefix=request.prefix.removeprefix(strip))
            else:
                key = request.key.removeprefix(strip)
                ok = allowed(action, f"arn:aws:s3:::{bucket}/{key}",
                             sse=request.headers.get("x-amz-server-side-encryption"))
            if not ok:
                refused.append((request.operation, request.bucket, request.key or request.prefix))
    assert refused == []


def test_transient_faults_are_retried_and_the_run_gives_the_same_tables(
        landing: str, s3_endpoint: str, proxy: FaultProxy, undisturbed: dict[str, bytes],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCREENING_AUDIT_S3_READ_TIMEOUT", str(INJECTED_READ_TIMEOUT))
    rules = [
        proxy.add(Rule(Action.SLOWDOWN, operation="list", count=2)),
        proxy.add(Rule(Action.TIMEOUT, operation="get", key=r"SZ003/101/.*/lb\.csv$", delay=HELD)),
        proxy.add(Rule(Action.DROP, operation="get", key=r"SZ003/102/.*/manifest\.json$")),
        proxy.add(Rule(Action.SLOWDOWN, operation="get", key=r"SZ003/103/.*/dm\.csv$", count=2)),
        proxy.add(Rule(Action.SLOWDOWN, operation="put", count=2)),
        proxy.add(Rule(Action.TIMEOUT, operation="put", key=r"report\.html$", delay=HELD)),
        proxy.add(Rule(Action.DROP, operation="put", key=r"subjects\.parquet$")),
    ]
    reports = _reports(s3_endpoint, "faults-transient")
    summary = _audit(landing, reports, proxy.url)

    assert [rule.hits for rule in rules] == [rule.count for rule in rules]  # every fault was injected
    assert summary.sites_audited == 3 and summary.sites_not_audited == {}
    assert _tables(reports) == undisturbed
    assert reports.head(f"{PREFIX}/report.html") is not None
    assert is_complete(reports, PREFIX)


def test_a_site_whose_reads_keep_failing_is_not_audited_and_the_others_are(
        landing: str, s3_endpoint: str, proxy: FaultProxy, undisturbed: dict[str, bytes]) -> None:
    proxy.add(Rule(Action.SLOWDOWN, operation="get", key=r"SZ003/102/", count=None))
    reports = _reports(s3_endpoint, "faults-site-down")
    summary = _audit(landing, reports, proxy.url)

    assert summary.sites_audited == 2
    assert list(summary.sites_not_audited) == ["102"]
    assert "102" in summary.sites_not_audited["102"] or summary.sites_not_audited["102"]
    subjects = pl.read_parquet(io.BytesIO(reports.read_bytes(f"{PREFIX}/subjects.parquet")))
    assert sorted(subjects["SITEID"].unique().to_list()) == ["101", "103"]
    baseline = pl.read_csv(io.BytesIO(undisturbed["subjects"]), infer_schema=False)
    expected = baseline.filter(pl.col("SITEID") != "102").drop("N_DISCREPANCIES")
    got = pl.read_csv(io.BytesIO(reports.read_bytes(f"{PREFIX}/subjects.csv")), infer_schema=False)
    assert got.drop("N_DISCREPANCIES").equals(expected)  # the other sites' audit is unaffected
    findings = pl.read_parquet(io.BytesIO(reports.read_bytes(f"{PREFIX}/validation.parquet")))
    site_rows = findings.filter(pl.col("SITEID") == "102")
    assert site_rows.height >= 1
    assert any("not audited" in message for message in site_rows["MESSAGE"].to_list())


def test_reports_endpoint_failing_half_way_leaves_no_partial_report_folder(
        landing: str, s3_endpoint: str, proxy: FaultProxy) -> None:
    # the first writes are the conditional-writes probe (3) and the lease (1): break after a few outputs
    proxy.add(Rule(Action.DROP, operation="put", count=None, after=10))
    proxy.add(Rule(Action.DROP, operation="copy", count=None, after=3))
    reports = _reports(s3_endpoint, "faults-publish-down")
    with pytest.raises(StorageUnavailable):
        _audit(landing, reports, proxy.url)

    staged = [r for r in proxy.seen("put", outcome="forwarded") if "/staging/" in r.key]
    assert staged  # some outputs were written before the endpoint broke
    published = [obj.key for obj in reports.list(PREFIX)]
    assert published == []  # nothing a reader could take for the night's report


def test_an_unreadable_site_is_one_not_audited_finding_without_error_text() -> None:
    from flows.nightly import unreadable_site
    from ingestion import combine_sites

    error = ClientError({"Error": {"Code": "SlowDown", "Message": "key SZ003/102/x/dm.csv"}}, "GetObject")
    site = unreadable_site("SZ003", "102", error)
    combined = combine_sites("SZ003", [site])
    assert combined.sites_not_audited == {"102": "its storage could not be read after every retry "
                                                 "(ClientError SlowDown)"}
    row = site.findings.row(0, named=True)
    assert (row["SITEID"], row["EXPECTATION"]) == ("102", "ingest.site_not_audited")
    assert "dm.csv" not in row["MESSAGE"]  # the error's own text (which may quote keys) is not repeated
