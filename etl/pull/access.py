"""Where ``chatsell pull`` connects and with which token.

Tokens, first found wins: ``CHATSELL_CHAT_TOKEN`` / ``CHATSELL_SELL_TOKEN``; a file named by
``CHATSELL_CHAT_TOKEN_FILE`` / ``CHATSELL_SELL_TOKEN_FILE`` (a mounted secret); ``[chat] token`` /
``[sell] token`` from the settings (TOML or ``CHATSELL_CHAT__TOKEN``). Messages name the source,
never the value.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

import httpx
from pydantic import SecretStr

from etl.config import Settings
from etl.errors import ConfigError

log = logging.getLogger("chatsell.pull")

TOKEN_ENV = {"chat": "CHATSELL_CHAT_TOKEN", "sell": "CHATSELL_SELL_TOKEN"}
API_NAMES = {"chat": "Zendesk Chat", "sell": "Zendesk Sell"}


def resolve_token(settings: Settings, source: str) -> tuple[SecretStr, str]:
    """The API token for ``source`` (chat | sell) and where it came from."""
    env = TOKEN_ENV[source]
    candidates: list[tuple[str, str | None]] = [(env, os.environ.get(env))]
    if not candidates[0][1] and os.environ.get(f"{env}_FILE"):
        path = Path(os.environ[f"{env}_FILE"])
        try:
            candidates.append((f"{env}_FILE", path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise ConfigError(f"cannot read the token file named by {env}_FILE: {reason}") from None
    configured = getattr(settings, source).token
    candidates.append(
        (f"[{source}] token", configured.get_secret_value() if configured is not None else None)
    )
    for where, value in candidates:
        token = (value or "").strip()
        if token:
            if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
                raise ConfigError(
                    f"the {API_NAMES[source]} token from {where} has characters no token has"
                )
            return SecretStr(token), where
    raise ConfigError(
        f"no {API_NAMES[source]} token: set {env} (or {env}_FILE, or [{source}] token)"
    )


def chat_base_url(settings: Settings, override: str | None = None) -> str:
    """``--base-url``, else the account's Zendesk host from ``[chat] subdomain``."""
    if override:
        return _checked(override, "--base-url")
    subdomain = settings.chat.subdomain.strip()
    if not subdomain:
        raise ConfigError("no Zendesk Chat host: set [chat] subdomain or pass --base-url")
    if "://" in subdomain:
        return _checked(subdomain, "[chat] subdomain")
    host = subdomain if "." in subdomain else f"{subdomain}.zendesk.com"
    return _checked(f"https://{host}", "[chat] subdomain")


def sell_base_url(settings: Settings, override: str | None = None) -> str:
    """``--base-url``, else ``[sell] base_url`` (https://api.getbase.com by default)."""
    if override:
        return _checked(override, "--base-url")
    return _checked(settings.sell.base_url, "[sell] base_url")


def _checked(url: str, where: str) -> str:
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError):
        raise ConfigError(f"{where} is not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{where} must be an http:// or https:// URL with a host")
    if parsed.scheme == "http" and not _loopback(parsed.host):
        log.warning(
            "%s is plain http: the token would cross the network unencrypted", where,
            extra={"event": "pull_insecure_url"},
        )  # fmt: skip
    return str(parsed.copy_with(query=None, fragment=None)).rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
