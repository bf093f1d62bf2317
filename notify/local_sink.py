"""A local SMTP server that keeps what it receives, for the demo and the tests (aiosmtpd, the `demo`
extra): a real SMTP conversation over loopback, so the audit's mail code runs exactly as against a
sponsor's relay. It binds port 0 and reports the port it got."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any


class _Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class LocalSmtpSink:
    """`with LocalSmtpSink() as sink:` then send to 127.0.0.1:`sink.port` (no STARTTLS, no login)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self._handler = _Collect()

        class _Loopback(Controller):
            def _trigger_server(self) -> None:  # learn the port the OS gave before the self-test connects
                if self.port == 0 and self.server is not None:
                    self.port = self.server.sockets[0].getsockname()[1]
                super()._trigger_server()

        self._controller = _Loopback(self._handler, hostname="127.0.0.1", port=0)

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        """(envelope recipients, message) of everything received, in order."""
        return list(self._handler.messages)

    def __enter__(self) -> LocalSmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
