"""The morning digest and the site outbox, as an operator runs them: the installed CLI with a study
configuration, generated deliveries on a moto S3 server, a real SMTP server on loopback (aiosmtpd) and a
real HTTP server standing in for a chat webhook.

Three nights on the same deliveries:
1. both channels up: the mail and the webhook carry the headline and the NEW important deviations, the
   presigned links fetch the report from the S3 server, no birth date is in any message, and every site
   finds its own query files (only its own subjects) in the outbox;
2. the mail server is down: the audit still completes (exit 0), says so, and keeps the night's digest
   for the mail channel only (the webhook got it);
3. the mail server is back: the missed night's mail goes first, then tonight's one-line "nothing new",
   and nothing is pending any more; the webhook does not get night 2 twice.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.request
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import polars as pl
import pytest

from generator import generate
from notify.local_sink import LocalSmtpSink
from storage import S3Store

NIGHTS = ["2026-11-28", "2026-11-29", "2026-11-30"]
CLI = str(Path(sys.executable).with_name("screening-audit"))
RECIPIENTS = ["dm-team@sponsor.example", "monitor@sponsor.example"]


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"1")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def webhook() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.posts = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as sock:  # a port nothing listens on once this closes
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(config: Path, night: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "run", "--config", str(config), "--as-of", night], env=env, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, webhook: ThreadingHTTPServer) -> dict:
    root = tmp_path_factory.mktemp("digest")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    for bucket in ("digest-landing", "digest-reports", "digest-outbox"):
        client.create_bucket(Bucket=bucket)
    generate(S3Store("s3://digest-landing", endpoint_url=s3_endpoint), study="SZ003", sites=3, subjects=60,
             seed=11, as_of=date.fromisoformat(NIGHTS[0]))
    config = root / "sz003.yaml"
    config.write_text(
        "study: SZ003\nlanding: s3://digest-landing\nreports: s3://digest-reports\n"
        "endpoint_url: ${TEST_S3_ENDPOINT}\noutbox: s3://digest-outbox\ntimezone: UTC\n"
        f"digest:\n  email_to: {json.dumps(RECIPIENTS)}\n  webhook: env:TEST_DIGEST_WEBHOOK\n"
        "  webhook_style: json\n", encoding="utf-8")
    env = dict(os.environ)
    env.update(PREFECT_HOME=str(root / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               TEST_S3_ENDPOINT=s3_endpoint, COLUMNS="160", SCREENING_AUDIT_SMTP_HOST="127.0.0.1",
               SCREENING_AUDIT_SMTP_STARTTLS="false", SCREENING_AUDIT_SMTP_FROM="audit@sponsor.example",
               TEST_DIGEST_WEBHOOK=f"http://127.0.0.1:{webhook.server_address[1]}/hook")
    runs, mail = [], []
    with LocalSmtpSink() as sink:
        env["SCREENING_AUDIT_SMTP_PORT"] = str(sink.port)
        runs.append(_run(config, NIGHTS[0], env))
        mail.append(sink.messages)
    posts_after_1 = len(webhook.posts)
    env["SCREENING_AUDIT_SMTP_PORT"] = str(_closed_port())
    runs.append(_run(config, NIGHTS[1], env))
    reports = S3Store("s3://digest-reports", endpoint_url=s3_endpoint)
    pending_after_2 = {o.key: json.loads(reports.read_bytes(o.key)) for o in reports.list("_audit/SZ003/digest")}
    posts_after_2 = len(webhook.posts)
    with LocalSmtpSink() as sink:
        env["SCREENING_AUDIT_SMTP_PORT"] = str(sink.port)
        runs.append(_run(config, NIGHTS[2], env))
        mail.append(sink.messages)
    return {"runs": runs, "mail": mail, "posts": list(webhook.posts), "posts_after": (posts_after_1, posts_after_2),
            "pending_after_2": pending_after_2, "reports": reports, "endpoint": s3_endpoint,
            "pending_after_3": [o.key for o in reports.list("_audit/SZ003/digest")],
            "landing": S3Store("s3://digest-landing", endpoint_url=s3_endpoint),
            "outbox": S3Store("s3://digest-outbox", endpoint_url=s3_endpoint)}


def _body(message, kind: str) -> str:
    return message.get_body((kind,)).get_content().replace("\r\n", "\n")  # as received over SMTP: CRLF


def test_every_night_completes_whatever_the_mail_server_does(nights: dict) -> None:
    for run in nights["runs"]:
        assert run.returncode == 0, run.stderr[-3000:]


def test_the_first_mail_reaches_the_recipients_with_the_headline_and_the_new_deviations(nights: dict) -> None:
    (recipients, message), = nights["mail"][0]
    assert sorted(recipients) == sorted(RECIPIENTS)
    assert message["From"] == "audit@sponsor.example"
    assert message["Subject"].startswith(f"[SZ003] Screening audit {NIGHTS[0]}: ")
    text, html = _body(message, "plain"), _body(message, "html")
    published = nights["reports"].read_bytes(f"SZ003/{NIGHTS[0]}/discrepancies.parquet")
    discrepancies = pl.read_parquet(io.BytesIO(published))
    new = discrepancies.filter((pl.col("STATUS") == "NEW") & (pl.col("SEVERITY") == "IMPORTANT"))
    assert new.height > 0
    # an ineligible enrolment the checklist hid once (its IE_MISMATCH left out, as in dv); the generator plants such
    # enrolments, so the count is the published dv's, not the important rows'
    dv = pl.read_parquet(io.BytesIO(nights["reports"].read_bytes(f"SZ003/{NIGHTS[0]}/dv.parquet")))
    listed = new.filter(pl.col("FINDING_ID").is_in(dv["FINDING_ID"].implode()))
    assert 0 < listed.height < new.height
    assert f"{listed.height} new important deviation(s)" in message["Subject"]
    for row in listed.head(25).iter_rows(named=True):
        assert f"- {row['USUBJID']} (site {row['SITEID']}), {row['CHECK_ID']} [{row['CLASS']}]" in text
        assert row["USUBJID"] in html
    subjects = pl.read_parquet(io.BytesIO(nights["reports"].read_bytes(f"SZ003/{NIGHTS[0]}/subjects.parquet")))
    assert f"Subjects screened: {subjects.height}" in text
    # each headline fact on its own line (helper-45: "ineligible but enrolled: 2Open: 6 important deviation(s)")
    lines = text.splitlines()
    screened = next(i for i, line in enumerate(lines) if line.startswith("Subjects screened:"))
    headline = r"Subjects screened: \d+, enrolled: \d+, ineligible but enrolled: \d+( \(and \d+ carried .*\))?"
    assert re.fullmatch(headline, lines[screened])
    assert lines[screened + 1].startswith("Open: ")


def test_the_presigned_links_open_the_published_report(nights: dict) -> None:
    (_, message), = nights["mail"][0]
    links = dict(re.findall(r"^(report\.(?:html|xlsx)): (\S+)$", _body(message, "plain"), re.MULTILINE))
    assert set(links) == {"report.html", "report.xlsx"}
    for name, url in links.items():
        assert url.startswith(nights["endpoint"]) and "Signature" in url  # a presigned URL of that server
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read() == nights["reports"].read_bytes(f"SZ003/{NIGHTS[0]}/{name}")


def test_no_birth_date_or_identifying_data_in_any_message(nights: dict) -> None:
    dm = pl.concat([pl.read_csv(io.BytesIO(nights["landing"].read_bytes(o.key)), infer_schema=False)
                    for o in nights["landing"].list("SZ003") if o.key.endswith("/dm.csv")], how="diagonal")
    births = set(dm["BRTHDTC"].drop_nulls().to_list())
    assert births
    texts = [_body(m, "plain") + _body(m, "html") for night in nights["mail"] for _, m in night]
    texts += [json.dumps(post) for post in nights["posts"]]
    for text in texts:
        # a birth date as a value of its own (a year-only one, "1996", is not one inside a signature's hex)
        assert not [b for b in births if re.search(rf"(?<![0-9A-Za-z]){re.escape(b)}(?![0-9A-Za-z])", text)]
        assert "BRTHDTC" not in text


def test_the_webhook_gets_each_night_once_as_json(nights: dict) -> None:
    posts = nights["posts"]
    assert [p["as_of"] for p in posts] == NIGHTS  # night 2 reached the webhook; it is not posted again
    first = posts[0]
    assert (first["headline"]["new"] > 0 and first["new_important_total"] == len(first["new_important"])) or \
        first["new_important_total"] > 25
    assert set(first["links"]) == {"report.html", "report.xlsx"}
    assert posts[1]["nothing_new"] and posts[2]["nothing_new"]


def test_a_failed_send_is_a_warning_and_is_kept_for_the_next_run(nights: dict) -> None:
    second = nights["runs"][1]
    assert "digest of 2026-11-29 not delivered on email" in second.stderr + second.stdout
    (key, record), = nights["pending_after_2"].items()
    assert key.endswith(f"pending/{NIGHTS[1]}.json") and record["channels"] == ["email"]
    assert nights["posts_after"][1] == nights["posts_after"][0] + 1


def test_the_next_run_sends_the_missed_night_first_then_a_one_line_nothing_new(nights: dict) -> None:
    subjects = [message["Subject"] for _, message in nights["mail"][1]]
    assert subjects == [f"[SZ003] Screening audit {NIGHTS[1]}: nothing new",
                        f"[SZ003] Screening audit {NIGHTS[2]}: nothing new"]
    last = _body(nights["mail"][1][-1][1], "plain").strip().splitlines()
    assert last[0].startswith(f"SZ003 screening audit as of {NIGHTS[2]}: nothing new since the last run")
    assert nights["pending_after_3"] == []


def test_each_site_reads_only_its_own_subjects_in_the_outbox(nights: dict) -> None:
    outbox = nights["outbox"]
    keys = [o.key for o in outbox.list("SZ003")]
    sites = sorted({key.split("/")[1] for key in keys})
    assert len(sites) == 3
    for night in NIGHTS:
        for site in sites:
            stem = f"SZ003/{site}/{night}/SZ003_{site}_queries_{night}"
            assert {f"{stem}.csv", f"{stem}.xlsx"} <= set(keys)
            queries = pl.read_csv(io.BytesIO(outbox.read_bytes(f"{stem}.csv")), infer_schema=False)
            assert queries.height > 0 and set(queries["SITEID"].to_list()) == {site}
            subjects = queries["SUBJECTS"].str.split(", ").explode().drop_nulls().to_list()
            assert all(u.startswith(f"SZ003-{site}-") for u in subjects)
            published = nights["reports"].read_bytes(f"SZ003/{night}/site_queries/{site}.csv")
            assert outbox.read_bytes(f"{stem}.csv") == published
            # every finding its queries list, in its own file (never in place of the queries CSV)
            detail_key = f"SZ003/{site}/{night}/SZ003_{site}_query_detail_{night}.csv"
            detail = pl.read_csv(io.BytesIO(outbox.read_bytes(detail_key)), infer_schema=False)
            assert set(detail["SITEID"].to_list()) == {site}
            assert sorted(detail["FINDING_ID"].to_list()) == sorted(queries["FINDING_IDS"].str.split(" ").explode()
                                                                    .to_list())
            assert outbox.read_bytes(detail_key) == nights["reports"].read_bytes(
                f"SZ003/{night}/site_queries/detail/{site}.csv")


def test_a_site_receives_its_queries_their_detail_and_the_findings_answered_through_them(tmp_path: Path) -> None:
    from reporting.outbox import deliver_site_queries
    from storage import LocalStore

    reports, outbox = LocalStore(tmp_path / "reports"), LocalStore(tmp_path / "outbox")
    night = "SZ003/2026-11-28"
    files = {"site_queries/104.csv": b"q", "site_queries/104.xlsx": b"x", "site_queries/detail/104.csv": b"d",
             "site_queries/also_answered/104.csv": b"a", "site_queries/105.csv": b"q5",
             "site_queries/detail/105.csv": b"d5", "site_queries/other/104.csv": b"never sent"}
    for key, data in files.items():
        reports.write_bytes(f"{night}/{key}", data)
    written = deliver_site_queries(reports, night, outbox, study="SZ003", as_of=date(2026, 11, 28))
    stem = "SZ003/{site}/2026-11-28/SZ003_{site}_{kind}_2026-11-28.{ext}"
    assert written == sorted(stem.format(site=site, kind=kind, ext=ext) for site, kind, ext in [
        ("104", "queries", "csv"), ("104", "queries", "xlsx"), ("104", "query_detail", "csv"),
        ("104", "also_answered", "csv"), ("105", "queries", "csv"), ("105", "query_detail", "csv")])
    assert outbox.read_bytes(stem.format(site="104", kind="also_answered", ext="csv")) == b"a"


# ------------------------------------------------------------------ the site and sponsor IAM policies

POLICY_DIR = Path(__file__).parents[1] / "deploy"
ACTIONS = {"list": "s3:ListBucket", "get": "s3:GetObject", "head": "s3:GetObject", "put": "s3:PutObject",
           "delete": "s3:DeleteObject"}


def _policy(name: str, **values: str) -> dict:
    text = (POLICY_DIR / name).read_text(encoding="utf-8")
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return json.loads(text)


def _replay(requests: list, policy: dict) -> list[tuple[str, str]]:
    """The recorded requests the policy refuses (operation, bucket/key-or-prefix)."""
    from test_privacy_iam import allowed

    refused = []
    for request in requests:
        action = ACTIONS[request.operation]
        if action == "s3:ListBucket":
            ok = allowed(action, f"arn:aws:s3:::{request.bucket}", prefix=request.prefix, policy=policy)
        else:
            ok = allowed(action, f"arn:aws:s3:::{request.bucket}/{request.key}", policy=policy,
                         sse=request.headers.get("x-amz-server-side-encryption"))
        if not ok:
            refused.append((request.operation, f"{request.bucket}/{request.key or request.prefix}"))
    return refused


def _recorded(endpoint: str, act) -> list:
    from faults import FaultProxy

    with FaultProxy(endpoint) as proxy:
        act(proxy.url)
        return [r for r in proxy.seen() if r.operation in ACTIONS]


def test_a_site_policy_lets_a_site_read_its_own_outbox_and_nothing_else(nights: dict) -> None:
    sites = sorted({o.key.split("/")[1] for o in nights["outbox"].list("SZ003")})

    def read_own(site: str):
        def act(url: str) -> None:
            store = S3Store("s3://digest-outbox", endpoint_url=url)
            for obj in store.list(f"SZ003/{site}"):
                store.read_bytes(obj.key)
        return act

    for site in sites:
        requests = _recorded(nights["endpoint"], read_own(site))
        assert {r.operation for r in requests} == {"list", "get"} and len(requests) >= 7
        own = _policy("iam-site-policy.json", **{"OUTBOX-BUCKET": "digest-outbox", "STUDYID": "SZ003",
                                                 "SITEID": site})
        assert _replay(requests, own) == []
        for other in sites:
            if other != site:  # another site's principal is refused every one of these requests
                theirs = _policy("iam-site-policy.json", **{"OUTBOX-BUCKET": "digest-outbox", "STUDYID": "SZ003",
                                                            "SITEID": other})
                assert len(_replay(requests, theirs)) == len(requests)
    # nor may a site list the study's folder, where the other sites' folders are named
    listing = _recorded(nights["endpoint"],
                        lambda url: S3Store("s3://digest-outbox", endpoint_url=url).list_dirs("SZ003"))
    assert _replay(listing, own) == [("list", "digest-outbox/SZ003/")]


def test_the_sponsor_policy_reads_reports_and_outboxes_and_writes_only_the_review_inbox(nights: dict) -> None:
    def act(url: str) -> None:
        reports = S3Store("s3://digest-reports", endpoint_url=url)
        for obj in reports.list(f"SZ003/{NIGHTS[0]}"):
            reports.read_bytes(obj.key)
        outbox = S3Store("s3://digest-outbox", endpoint_url=url)
        for obj in outbox.list("SZ003"):
            outbox.read_bytes(obj.key)
        reports.write_bytes("SZ003/_review/inbox/review-2026-11-28.xlsx", b"PK")

    requests = _recorded(nights["endpoint"], act)
    sponsor = _policy("iam-sponsor-policy.json", **{"REPORTS-BUCKET": "digest-reports",
                                                    "OUTBOX-BUCKET": "digest-outbox", "STUDYID": "SZ003"})
    assert {r.operation for r in requests} == {"list", "get", "put"}
    assert _replay(requests, sponsor) == []

    def overreach(url: str) -> None:
        reports = S3Store("s3://digest-reports", endpoint_url=url)
        reports.write_bytes(f"SZ003/{NIGHTS[0]}/report.html", b"tampered")  # put back below
        reports.delete("SZ003/_review/inbox/review-2026-11-28.xlsx")

    original = nights["reports"].read_bytes(f"SZ003/{NIGHTS[0]}/report.html")
    refused = _replay(_recorded(nights["endpoint"], overreach), sponsor)
    nights["reports"].write_bytes(f"SZ003/{NIGHTS[0]}/report.html", original)
    assert [op for op, _ in refused] == ["put", "delete"]
