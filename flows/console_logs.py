"""Operator-facing console logs: one line per problem, tracebacks kept for the Prefect API only.

A night that fails (an endpoint down, a lock held) must tell the operator what happened in one
line; the full traceback still reaches the Prefect API's logs, where the platform team looks.
"""

from __future__ import annotations

import copy
import logging


class OneLineExceptions(logging.Formatter):
    """Wraps a formatter: an exception becomes `ExceptionType: message` at the end of the line."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if not record.exc_info:
            return self.inner.format(record)
        error = record.exc_info[1]
        quiet = copy.copy(record)
        quiet.exc_info = None
        quiet.exc_text = None
        quiet.stack_info = None
        text = self.inner.format(quiet).split("\nTraceback", 1)[0]
        return f"{text} [{type(error).__name__}: {error}]" if error is not None else text


def quiet_console_tracebacks() -> None:
    """Make every Prefect console handler print exceptions as one line (the API handler keeps them)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler) and not isinstance(handler.formatter, OneLineExceptions):
                handler.setFormatter(OneLineExceptions(handler.formatter))
