"""Sending what a night produced to the people who need it: an email over SMTP and a chat webhook.

The messages themselves (the morning digest) are written by reporting; this package only delivers
them, keeps a digest that could not be delivered for the next run to retry, and never logs a
credential, a webhook URL or a message body. Settings arrive already resolved (the flows read
environment variables and Prefect Secret blocks).
"""

from notify.deliver import Channels, NightDelivery, deliver_digest
from notify.email import SmtpSettings, build_email, send_email
from notify.pending import PendingDigests
from notify.webhook import WebhookError, post_json

__all__ = ["Channels", "NightDelivery", "PendingDigests", "SmtpSettings", "WebhookError", "build_email",
           "deliver_digest", "post_json", "send_email"]
