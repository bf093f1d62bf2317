"""Deliver a night's digest on its channels, the missed nights first; never raise for a failed send.

Each channel (email, webhook) succeeds or fails on its own; what failed is kept for the next run
(notify.pending) and reported back as a short, secret-free reason for the run's log and artifact.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field

from contracts.records import Digest
from notify.email import SmtpSettings, build_email, send_email
from notify.pending import PendingDigests
from notify.webhook import WebhookError, chat_payload, post_json

EMAIL, WEBHOOK = "email", "webhook"


@dataclass(frozen=True)
class Channels:
    """Where a study's digest goes, with every secret already resolved (never logged)."""

    email_to: tuple[str, ...] = ()
    smtp: SmtpSettings | None = None
    webhook_url: str | None = field(default=None, repr=False)
    webhook_style: str = "teams"
    send_nothing_new: bool = True

    def names(self) -> list[str]:
        return ([EMAIL] if self.email_to else []) + ([WEBHOOK] if self.webhook_url else [])


@dataclass(frozen=True)
class NightDelivery:
    """What happened to one night's digest: the channels it reached, and why the others failed."""

    as_of: str
    sent: list[str]
    failed: dict[str, str]  # channel -> reason (server or host and error class; no secret, no content)
    skipped: bool = False  # a night with nothing new, and the study does not send those


def _send(digest: Digest, channel: str, channels: Channels) -> None:
    if channel == EMAIL:
        if channels.smtp is None:
            raise ValueError("no SMTP server is configured")
        message = build_email(sender=channels.smtp.sender, recipients=list(channels.email_to),
                              subject=digest.subject, text=digest.text, html=digest.html)
        send_email(message, channels.smtp)
    else:
        post_json(str(channels.webhook_url), chat_payload(digest, channels.webhook_style))


def _reason(channel: str, error: Exception, channels: Channels) -> str:
    if channel == EMAIL and channels.smtp is not None and isinstance(error, OSError | smtplib.SMTPException):
        return f"mail server {channels.smtp.describe()} failed ({type(error).__name__})"
    if isinstance(error, WebhookError | ValueError):
        return str(error)
    return type(error).__name__


def send_on(digest: Digest, wanted: list[str], channels: Channels) -> NightDelivery:
    """Try every channel of `wanted` once; collect the failures instead of raising."""
    sent, failed = [], {}
    for channel in wanted:
        try:
            _send(digest, channel, channels)
        except Exception as error:
            failed[channel] = _reason(channel, error, channels)
        else:
            sent.append(channel)
    return NightDelivery(digest.as_of, sent, failed)


def deliver_digest(digest: Digest, channels: Channels, pending: PendingDigests) -> list[NightDelivery]:
    """The missed nights first (oldest first, on the channels that missed them), then tonight's; each
    failure is kept in `pending` for the next run. Returns what happened to every night tried."""
    outcomes = []
    for missed, owed in pending.missed(before=digest.as_of):
        result = send_on(missed, [c for c in owed if c in channels.names()], channels)
        if result.failed:
            pending.keep(missed, list(result.failed))
        else:
            pending.delivered(missed.as_of)
        outcomes.append(result)
    if digest.nothing_new and not channels.send_nothing_new:
        pending.delivered(digest.as_of)  # nothing owed: the study sends no "nothing new"
        return [*outcomes, NightDelivery(digest.as_of, [], {}, skipped=True)]
    tonight = send_on(digest, channels.names(), channels)
    if tonight.failed:
        pending.keep(digest, list(tonight.failed))
    else:  # tonight's was kept as owed before the promotion (flows.tasks.owe_digest_task)
        pending.delivered(digest.as_of)
    return [*outcomes, tonight]
