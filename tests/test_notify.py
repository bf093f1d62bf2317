"""The digest's pieces on their own: the study configuration refuses secrets, references resolve on the
worker, failures never quote a secret, the chat payloads, and what is kept for the next run."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from contracts.records import Digest
from flows.config import ConfigError, parse_config
from flows.secrets import SecretError, digest_channels, smtp_settings
from notify import Channels, PendingDigests, SmtpSettings, WebhookError, deliver_digest, post_json
from notify.local_sink import LocalSmtpSink
from notify.webhook import chat_payload
from reporting.digest import build_digest
from storage import LocalStore
from tests.support.published import seal
from tests.support.sample_outputs import make_outputs

BASE = "study: SZ003\nlanding: /tmp/landing\nreports: /tmp/reports\n"


def _digest(as_of: str = "2026-11-28", nothing_new: bool = False) -> Digest:
    return Digest(study="SZ003", as_of=as_of, subject=f"[SZ003] {as_of}", text="t", html="<p>h</p>",
                  facts={"study": "SZ003", "as_of": as_of}, nothing_new=nothing_new)


@pytest.mark.parametrize("digest", [
    "  webhook: https://outlook.office.com/webhook/abc\n",
    "  email_to: [dm@sponsor.example]\n  smtp: smtp://user:pw@relay.example\n",
    "  email_to: [not-an-address]\n",
    "  email_to: []\n",
    "  email_to: [dm@sponsor.example]\n  link_expiry_days: 30\n",
    "  email_to: [dm@sponsor.example]\n  webhook_style: irc\n",
])
def test_the_configuration_never_holds_a_secret_and_refuses_what_cannot_work(digest: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(BASE + "digest:\n" + digest)
    assert "digest" in str(raised.value)
    assert "abc" not in str(raised.value) and "pw" not in str(raised.value)


def test_smtp_settings_come_from_the_environment_and_the_password_is_never_shown() -> None:
    env = {"X_HOST": "relay.sponsor.example", "X_PORT": "2525", "X_STARTTLS": "false", "X_USERNAME": "audit",
           "X_PASSWORD": "s3cret-value", "X_FROM": "audit@sponsor.example"}
    settings = smtp_settings("env:X", env)
    assert (settings.host, settings.port, settings.starttls, settings.sender) == ("relay.sponsor.example", 2525,
                                                                                  False, "audit@sponsor.example")
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in settings.describe()
    with pytest.raises(SecretError, match="X_HOST"):
        smtp_settings("env:X", {"X_PORT": "25"})


def test_a_missing_webhook_variable_names_the_reference_not_a_value() -> None:
    config = {"email_to": [], "webhook": "env:SZ003_TEAMS_WEBHOOK"}
    with pytest.raises(SecretError, match="SZ003_TEAMS_WEBHOOK is not set"):
        digest_channels(config, {})
    channels = digest_channels(config, {"SZ003_TEAMS_WEBHOOK": "https://hooks.example/secret-path"})
    assert channels.names() == ["webhook"] and "secret-path" not in repr(channels)


def test_a_refused_or_unreachable_webhook_names_the_host_only() -> None:
    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(403)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(WebhookError) as raised:
            post_json(f"http://127.0.0.1:{server.server_address[1]}/token-123", {"text": "x"})
        assert "HTTP 403" in str(raised.value) and "token-123" not in str(raised.value)
    finally:
        server.shutdown()
    with pytest.raises(WebhookError) as raised:
        post_json("http://127.0.0.1:9/token-456", {"text": "x"}, timeout=2)
    assert "could not be reached" in str(raised.value) and "token-456" not in str(raised.value)


def test_chat_payloads_for_teams_slack_and_json() -> None:
    digest = _digest()
    assert chat_payload(digest, "teams")["@type"] == "MessageCard"
    assert chat_payload(digest, "slack")["text"].startswith("*[SZ003] 2026-11-28*")
    assert chat_payload(digest, "json") == {"subject": "[SZ003] 2026-11-28", "nothing_new": False, "study": "SZ003",
                                            "as_of": "2026-11-28"}


def _published(store: LocalStore, as_of: str) -> None:
    """A night as a run publishes it: its folder, sealed with its completion marker."""
    store.write_bytes(f"SZ003/{as_of}/report.html", b"<html></html>")
    seal(store, f"SZ003/{as_of}")


def test_a_failed_channel_is_kept_and_only_that_channel_is_retried(tmp_path) -> None:
    pending = PendingDigests(LocalStore(tmp_path), "SZ003")
    _published(pending.store, "2026-11-27")
    down = Channels(email_to=("dm@sponsor.example",), smtp=SmtpSettings(host="127.0.0.1", port=9, starttls=False,
                                                                       timeout=2))
    first = deliver_digest(_digest("2026-11-27"), down, pending)
    assert first[-1].failed and "mail server 127.0.0.1:9" in first[-1].failed["email"]
    assert [(d.as_of, owed) for d, owed in pending.missed(before="2026-11-28")] == [("2026-11-27", ["email"])]
    with LocalSmtpSink() as sink:
        up = Channels(email_to=("dm@sponsor.example",), smtp=SmtpSettings(host="127.0.0.1", port=sink.port,
                                                                         starttls=False))
        outcomes = deliver_digest(_digest("2026-11-28"), up, pending)
        assert [(o.as_of, o.sent) for o in outcomes] == [("2026-11-27", ["email"]), ("2026-11-28", ["email"])]
        assert [m["Subject"] for _, m in sink.messages] == ["[SZ003] 2026-11-27", "[SZ003] 2026-11-28"]
    assert pending.missed(before="2026-12-31") == []


def test_a_missed_digest_waits_while_its_night_is_not_published(tmp_path) -> None:
    """A kept digest goes out only while its night is a published night: a re-run of that night that was
    killed in the middle of its promotion leaves the folder without its marker, and the digest stays kept."""
    store = LocalStore(tmp_path)
    pending = PendingDigests(store, "SZ003")
    _published(store, "2026-11-27")
    pending.keep(_digest("2026-11-27"), ["email"])
    store.delete("SZ003/2026-11-27/_complete.json")  # the night is being replaced: not published now
    assert pending.missed(before="2026-11-28") == []
    with LocalSmtpSink() as sink:
        up = Channels(email_to=("dm@sponsor.example",), smtp=SmtpSettings(host="127.0.0.1", port=sink.port,
                                                                         starttls=False))
        outcomes = deliver_digest(_digest("2026-11-28"), up, pending)
        assert [(o.as_of, o.sent) for o in outcomes] == [("2026-11-28", ["email"])]
        seal(store, "SZ003/2026-11-27")  # the next run completed that promotion
        outcomes = deliver_digest(_digest("2026-11-29"), up, pending)
        assert [(o.as_of, o.sent) for o in outcomes] == [("2026-11-27", ["email"]), ("2026-11-29", ["email"])]
    assert pending.missed(before="2026-12-31") == []


def test_a_digest_owed_before_the_promotion_is_sent_by_the_next_run_when_the_run_died_after_it(tmp_path) -> None:
    """helper-44: a run killed after its promotion, before its send: the next night said "nothing new" and the
    night's nine new important deviations were never told. The run now keeps its digest as owed before it
    promotes (flows.tasks.owe_digest_task); the send clears it, and a run that dies in between leaves it."""
    store = LocalStore(tmp_path)
    pending = PendingDigests(store, "SZ003")
    with LocalSmtpSink() as sink:
        up = Channels(email_to=("dm@sponsor.example",), smtp=SmtpSettings(host="127.0.0.1", port=sink.port,
                                                                         starttls=False))
        pending.keep(_digest("2026-11-27"), ["email"])  # owed, then promoted, then sent: nothing left owed
        _published(store, "2026-11-27")
        deliver_digest(_digest("2026-11-27"), up, pending)
        assert pending.missed(before="2026-12-31") == []
        pending.keep(_digest("2026-11-28"), ["email"])  # owed, promoted, and the run killed before its send
        _published(store, "2026-11-28")
        outcomes = deliver_digest(_digest("2026-11-29"), up, pending)
        assert [(o.as_of, o.sent) for o in outcomes] == [("2026-11-28", ["email"]), ("2026-11-29", ["email"])]
        assert [m["Subject"] for _, m in sink.messages] == ["[SZ003] 2026-11-27", "[SZ003] 2026-11-28",
                                                            "[SZ003] 2026-11-29"]
    assert pending.missed(before="2026-12-31") == []


def test_a_night_with_nothing_new_is_one_line_or_not_sent_at_all(tmp_path) -> None:
    outputs = make_outputs(n_subjects=30, n_sites=2)
    seen_before = outputs.validation.with_columns(pl.lit("2026-11-28").alias("FIRST_SEEN"))
    quiet = outputs.__class__(**{**outputs.__dict__, "as_of": date(2026, 11, 29), "discrepancies":
                                 outputs.discrepancies.with_columns(pl.lit("OPEN").alias("STATUS")),
                                 "validation": seen_before})
    assert quiet.validation.height > 2
    # the previous night had the same site and delivery problems: they continue, they are not news
    digest = build_digest(quiet, {"report.html": "https://example/r.html"}, quiet.run_manifest)
    assert digest.nothing_new and digest.subject == "[SZ003] Screening audit 2026-11-29: nothing new"
    # a night whose only news is data-quality findings is not "nothing new" (a user trial: 45 new ones were)
    first_seen = pl.when(pl.int_range(pl.len()) < 2).then(pl.lit("2026-11-29")).otherwise(pl.col("FIRST_SEEN"))
    news = build_digest(quiet.__class__(**{**quiet.__dict__, "validation": quiet.validation.with_columns(
        first_seen.alias("FIRST_SEEN"))}), {}, quiet.run_manifest)
    assert not news.nothing_new
    assert news.subject.endswith("0 new discrepancy(ies) in all, 2 new data-quality finding(s)")
    assert f"new data-quality finding(s) tonight: 2 of {quiet.validation.height}" in news.text
    assert digest.text.strip().count("\n") <= 1 and "https://example/r.html" in digest.text
    skip = Channels(email_to=("dm@sponsor.example",), smtp=SmtpSettings(host="127.0.0.1", port=9),
                    send_nothing_new=False)
    (outcome,) = deliver_digest(digest, skip, PendingDigests(LocalStore(tmp_path), "SZ003"))
    assert outcome.skipped and not outcome.failed


def test_the_digest_is_json_ready_and_names_subjects_by_usubjid_only() -> None:
    outputs = make_outputs(n_subjects=40, n_sites=2)
    digest = build_digest(outputs.__class__(**{**outputs.__dict__, "discrepancies": outputs.discrepancies
                                               .with_columns(pl.lit("NEW").alias("STATUS"))}), {})
    json.dumps(digest.facts)  # a webhook can post it as it is
    rows = digest.facts["new_important"]
    assert rows and set(rows[0]) == {"SITEID", "USUBJID", "CHECK_ID", "CLASS", "EVIDENCE"}


def test_the_digest_lists_what_was_reopened_tonight_and_the_review_backlog() -> None:
    from dataclasses import replace

    from contracts.records import ReviewResult

    outputs = make_outputs(n_subjects=40, n_sites=2)
    disc = outputs.discrepancies.with_columns(pl.lit("OPEN").alias("STATUS"),
                                              pl.lit("UNREVIEWED").alias("REVIEW_STATE"))
    target = disc.row(0, named=True)
    reopened = pl.DataFrame({"FINDING_ID": [target["FINDING_ID"]], "SEQ": [7], "BY": ["screening-audit"],
                             "AT": ["2026-11-28T02:00:00Z"], "TEXT": ["the evidence changed: PLAT 52 -> 48"]})
    review = ReviewResult(states=pl.DataFrame(), reopened=reopened, ledger={"status": "VERIFIED"})
    digest = build_digest(replace(outputs, discrepancies=disc, review=review), {})
    assert not digest.nothing_new  # a reopened finding is news even on a night without new findings
    assert digest.facts["reopened_total"] == 1
    assert f"- {target['USUBJID']} (site {target['SITEID']}), {target['CHECK_ID']} [{target['CLASS']}], reopened " \
           "by screening-audit: the evidence changed: PLAT 52 -> 48" in digest.text
    (row,) = [r for r in digest.facts["backlog"] if r["REVIEW_STATE"] == "UNREVIEWED"]
    assert row["N"] >= disc.height and f"- UNREVIEWED: {row['N']}" in digest.text


def test_the_digest_counts_an_ineligible_enrolment_the_checklist_hid_once() -> None:
    # a second user trial: "2 new important deviation(s)" for one subject (INELIGIBLE_ENROLLED and its IE_MISMATCH)
    outputs = make_outputs(n_subjects=40, n_sites=2)
    disc = outputs.discrepancies.with_columns(pl.lit("NEW").alias("STATUS"))
    enrolment = disc.filter(pl.col("CLASS") == "INELIGIBLE_ENROLLED").head(1)
    hidden = enrolment.with_columns(pl.col("CHECK_ID").str.split(".").list.first().alias("CHECK_ID"),
                                    pl.lit("IE_MISMATCH").alias("CLASS"), pl.lit("D-hidden").alias("FINDING_ID"))
    digest = build_digest(outputs.__class__(**{**outputs.__dict__, "discrepancies": pl.concat([disc, hidden])}), {})
    assert digest.facts["new_important_total"] == disc.filter(pl.col("SEVERITY") == "IMPORTANT").height
    subject = enrolment["USUBJID"].item()
    assert [r["CLASS"] for r in digest.facts["new_important"] if r["USUBJID"] == subject] == ["INELIGIBLE_ENROLLED"]


def test_a_site_or_delivery_problem_is_news_once_and_then_counted_as_continuing() -> None:
    """A user trial: the digest listed a delivery rejected three weeks earlier every morning, as if new."""
    from dataclasses import replace

    old = {"site": "103", "delivery": "20261120T230000Z", "status": "REJECTED", "reason": "lb.csv: sha256 differs"}
    fresh = {"site": "104", "delivery": "20261128T230000Z", "status": "REJECTED", "reason": "no manifest.json"}
    outputs = make_outputs(n_subjects=30, n_sites=2)
    quiet = replace(outputs, as_of=date(2026, 11, 29),
                    discrepancies=outputs.discrepancies.with_columns(pl.lit("OPEN").alias("STATUS")),
                    validation=outputs.validation.with_columns(pl.lit("2026-11-28").alias("FIRST_SEEN")))
    night = {**quiet.run_manifest, "deliveries": [old, fresh], "sites_not_audited": []}
    previous = {**quiet.run_manifest, "deliveries": [old], "sites_not_audited": []}

    news = build_digest(replace(quiet, run_manifest=night), {}, previous)
    assert not news.nothing_new  # the new rejected delivery is news on a night without new findings
    assert "1 new site/delivery problem(s)" in news.subject
    assert (news.facts["not_audited_total"], news.facts["not_audited_new_total"]) == (2, 1)
    assert "site 104, delivery 20261128T230000Z: REJECTED, no manifest.json" in news.text
    assert "site 103" not in news.text and "site 103" not in news.html
    assert "and 1 from earlier nights that continue" in news.text

    # the next night the same two problems are both old: nothing new, counted in the one line
    later = build_digest(replace(quiet, run_manifest=night), {}, night)
    assert later.nothing_new and "2 site or delivery problem(s) continue" in later.text
    # without a previous night, or with one this version cannot read, every problem is told
    for unknown in (None, {"deliveries": [{"site": "103"}]}):
        first = build_digest(replace(quiet, run_manifest=night), {}, unknown)
        assert first.facts["not_audited_new_total"] == 2 and "site 103, delivery" in first.text


def test_an_upload_in_progress_is_no_news_and_many_new_problems_are_cut_with_a_count() -> None:
    """helper-33: a folder without its manifest yet (an upload in progress at run time) made the night news."""
    from dataclasses import replace

    from reporting.digest import SHOWN

    outputs = make_outputs(n_subjects=30, n_sites=2)
    quiet = replace(outputs, as_of=date(2026, 11, 29),
                    discrepancies=outputs.discrepancies.with_columns(pl.lit("OPEN").alias("STATUS")),
                    validation=outputs.validation.with_columns(pl.lit("2026-11-28").alias("FIRST_SEEN")))
    uploading = {"site": "104", "delivery": "20261129T010000Z", "status": "INCOMPLETE",
                 "reason": "no manifest.json (upload not finished)"}
    night = {**quiet.run_manifest, "deliveries": [uploading], "sites_not_audited": []}
    digest = build_digest(replace(quiet, run_manifest=night), {}, {**night, "deliveries": []})
    assert digest.nothing_new and digest.facts["not_audited_new_total"] == 0

    rejected = [{"site": f"{200 + i}", "delivery": "20261128T230000Z", "status": "REJECTED",
                 "reason": "dm.csv sha256 differs"} for i in range(SHOWN + 3)]
    many = build_digest(replace(quiet, run_manifest={**night, "deliveries": [uploading, *rejected]}), {},
                        {**night, "deliveries": []})
    assert many.facts["not_audited_new_total"] == SHOWN + 3
    assert "- ... and 3 more in the report" in many.text and "… and 3 more in the report." in many.html
    assert "and 1 from earlier nights that continue, or uploads in progress" in many.text


def test_a_rejection_and_the_fallback_it_causes_are_one_problem() -> None:
    """helper-34: one rejected delivery read "2 new site/delivery problem(s)" (its site's fallback counted apart),
    and the one-line message counted 5 problems where the report's summary counted 3."""
    from dataclasses import replace

    outputs = make_outputs(n_subjects=30, n_sites=2)
    manifest = {**outputs.run_manifest, "sites_not_audited": [], "deliveries": [
        {"site": "101", "delivery": "20261127T230000Z", "status": "REJECTED", "reason": "dm.csv sha256 differs"},
        {"site": "101", "delivery": "20261120T230000Z", "status": "USED",
         "reason": "the newer delivery 20261127T230000Z was rejected"}]}
    digest = build_digest(replace(outputs, run_manifest=manifest), {}, None)
    assert (digest.facts["not_audited_total"], digest.facts["not_audited_new_total"]) == (1, 1)
    assert "1 new site/delivery problem(s)" in digest.subject
    assert "FALLBACK" not in digest.text and "20261120T230000Z" not in digest.text


def test_an_ie_mismatch_new_tonight_beside_its_open_enrolment_is_no_new_deviation() -> None:
    """helper-35: the site changed its checklist answer, so the IE_MISMATCH was new while its INELIGIBLE_ENROLLED was
    open: the digest said "1 new important deviation" that neither dv nor the report had."""
    from dataclasses import replace

    outputs = make_outputs(n_subjects=40, n_sites=2)
    disc = outputs.discrepancies.with_columns(pl.lit("OPEN").alias("STATUS"))
    enrolment = disc.filter(pl.col("CLASS") == "INELIGIBLE_ENROLLED").head(1)
    hidden = enrolment.with_columns(pl.col("CHECK_ID").str.split(".").list.first().alias("CHECK_ID"),
                                    pl.lit("IE_MISMATCH").alias("CLASS"), pl.lit("D-hidden").alias("FINDING_ID"),
                                    pl.lit("NEW").alias("STATUS"))
    digest = build_digest(replace(outputs, discrepancies=pl.concat([disc, hidden])), {})
    assert digest.facts["new_important_total"] == 0 and digest.facts["new_important"] == []


def test_an_owed_digest_of_a_night_another_run_published_since_is_dropped_not_sent(tmp_path) -> None:
    """helper-46: a night whose promotion failed, then published by a re-run of the past night (which sends no
    digest), had the failed run's owed digest sent later, out of order and made from outputs no longer the night's."""
    from publication import read_marker

    store = LocalStore(tmp_path)
    pending = PendingDigests(store, "SZ003")
    _published(store, "2026-11-27")
    publishing_run = read_marker(store, "SZ003/2026-11-27").run_id
    pending.keep(_digest("2026-11-27"), ["email"], run_id="the-run-whose-promotion-failed")
    assert pending.missed(before="2026-11-28") == []
    assert list(store.list(pending.folder)) == []  # dropped
    pending.keep(_digest("2026-11-27"), ["email"], run_id=publishing_run)  # the run that published it
    assert [d.as_of for d, _ in pending.missed(before="2026-11-28")] == ["2026-11-27"]
