"""Secrets named in a study configuration, resolved on the worker at run time: `env:NAME` reads the
worker's environment, `secret:NAME` a Prefect Secret block. Values are returned, never logged; an error
names the reference (`env:SZ003_TEAMS_WEBHOOK`), never a value."""

from __future__ import annotations

import json
import os
from typing import Any

from notify import Channels, SmtpSettings


class SecretError(ValueError):
    """A secret reference that cannot be resolved (unset variable, unknown block, wrong shape)."""


def resolve(reference: str, environ: dict[str, str] | None = None) -> Any:
    """The value behind `env:NAME` or `secret:NAME` (a Prefect Secret block: text or JSON)."""
    kind, _, name = reference.partition(":")
    if kind == "env":
        env = os.environ if environ is None else environ
        if name not in env:
            raise SecretError(f"environment variable {name} is not set ({reference})")
        return env[name]
    if kind == "secret":
        from prefect.blocks.system import Secret

        try:
            return Secret.load(name).get()
        except (ValueError, KeyError) as error:
            raise SecretError(f"Prefect Secret block {name!r} cannot be loaded ({type(error).__name__})") from None
    raise SecretError(f"not a secret reference: {reference!r} (env:NAME or secret:NAME)")


def _flag(value: Any) -> bool:
    return str(value).strip().lower() not in ("0", "false", "no", "off", "")


def smtp_settings(reference: str, environ: dict[str, str] | None = None) -> SmtpSettings:
    """SMTP settings from `env:PREFIX` (PREFIX_HOST, PREFIX_PORT, PREFIX_STARTTLS, PREFIX_USERNAME,
    PREFIX_PASSWORD, PREFIX_FROM) or from `secret:BLOCK` (a JSON block with host, port, starttls,
    username, password, sender)."""
    kind, _, name = reference.partition(":")
    if kind == "env":
        env = os.environ if environ is None else environ
        values = {key: env.get(f"{name}_{key.upper()}") for key in ("host", "port", "starttls", "username",
                                                                      "password", "from")}
        values["sender"] = values.pop("from")
    else:
        raw = resolve(reference, environ)
        values = json.loads(raw) if isinstance(raw, str) else dict(raw)
    if not values.get("host"):
        raise SecretError(f"no SMTP host in {reference} ({name}_HOST)" if kind == "env" else
                          f"no SMTP host in {reference}")
    try:
        port = int(values.get("port") or 587)
    except ValueError:
        raise SecretError(f"the SMTP port in {reference} is not a number") from None
    return SmtpSettings(host=str(values["host"]), port=port,
                        starttls=_flag(values["starttls"]) if values.get("starttls") is not None else True,
                        username=values.get("username") or None, password=values.get("password") or None,
                        sender=str(values.get("sender") or "screening-audit@localhost"))


def digest_channels(config: dict[str, Any], environ: dict[str, str] | None = None) -> Channels:
    """The resolved channels of a study's `digest:` settings (flows.config.DigestConfig, as a dict)."""
    email_to = tuple(config.get("email_to") or ())
    return Channels(
        email_to=email_to,
        smtp=smtp_settings(config.get("smtp") or "env:SCREENING_AUDIT_SMTP", environ) if email_to else None,
        webhook_url=str(resolve(config["webhook"], environ)) if config.get("webhook") else None,
        webhook_style=str(config.get("webhook_style") or "teams"),
        send_nothing_new=config.get("nothing_new", "send") == "send",
    )
