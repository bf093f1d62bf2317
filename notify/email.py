"""Email over SMTP (STARTTLS when the server offers it and the settings ask for it).

The password never appears in a repr, a log line or an exception message: a failed login names the
server and the SMTP error class only.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail; filled from the environment or a Prefect Secret block by the flows."""

    host: str
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "screening-audit@localhost"
    timeout: float = 30.0

    def describe(self) -> str:
        """The server in words, for logs and warnings (no credentials)."""
        return f"{self.host}:{self.port}{' (STARTTLS)' if self.starttls else ''}"


def build_email(*, sender: str, recipients: list[str], subject: str, text: str, html: str) -> EmailMessage:
    """A multipart/alternative message: the plain-text part first, the HTML part for mail readers."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="screening-audit")
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def send_email(message: EmailMessage, settings: SmtpSettings) -> None:
    """Send `message` to its To: recipients; raises OSError or smtplib.SMTPException on failure."""
    with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
        smtp.ehlo()
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        smtp.send_message(message)
