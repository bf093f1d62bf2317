"""A JSON POST to a chat webhook (Microsoft Teams or Slack incoming webhooks, or any JSON endpoint).

The URL is a secret (whoever has it can post into the channel): it is never logged or shown; a
failure names only the host and the HTTP status.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

from contracts.records import Digest


def chat_payload(digest: Digest, style: str) -> dict[str, Any]:
    """The webhook body: `teams` (an Office 365 connector card), `slack` (an incoming-webhook message) or
    `json` (the digest's facts as they are, for a custom endpoint)."""
    if style == "teams":
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": digest.subject,
                "title": digest.subject, "text": digest.text.replace("\n", "  \n")}
    if style == "slack":
        return {"text": f"*{digest.subject}*\n{digest.text}"}
    if style == "json":
        return {"subject": digest.subject, "nothing_new": digest.nothing_new, **digest.facts}
    raise ValueError(f"unknown chat style {style!r} (teams, slack or json)")


class WebhookError(RuntimeError):
    """The webhook did not accept the message; the message names the host and status, never the URL."""


def post_json(url: str, payload: dict[str, Any], *, timeout: float = 30.0) -> int:
    """POST `payload` as JSON to `url`; the HTTP status on success (2xx), WebhookError otherwise."""
    parsed = urlparse(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise WebhookError("the webhook setting is not an http(s) URL")
    host = parsed.hostname
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=json.dumps(payload, ensure_ascii=False).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        raise WebhookError(f"webhook on {host} refused the message (HTTP {error.code})") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise WebhookError(f"webhook on {host} could not be reached ({type(reason).__name__})") from None
