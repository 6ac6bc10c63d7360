"""URLs with secrets in them (a Slack webhook's tokens, a ping's UUID), said without them."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit


def masked_url(url: str) -> str:
    """``scheme://host[:port]/***``: the scheme and the host say where; the user, password, path
    and query (where services keep their tokens) are left out."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<an invalid URL>"
    scheme = parts.scheme or "?"
    hidden = "/***" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{scheme}://{host}{port}{hidden}"


class _Redact(logging.Filter):
    """Takes the secret parts of known URLs out of a library's log records (httpx logs every
    request's URL at INFO, which ``-vv`` shows)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            for secret in sorted(self.secrets, key=len, reverse=True):
                text = text.replace(secret, "***")
            record.msg, record.args = text, ()
        return True


_REDACT = _Redact()
_LIBRARIES = ("httpx", "httpcore", "apprise")


def redact(urls: list[str | None]) -> None:
    """From now on, the secret parts of ``urls`` (user, password, path, query) are left out of
    what the HTTP libraries log."""
    for url in urls:
        if not url:
            continue
        try:
            parts = urlsplit(url)
        except ValueError:
            _REDACT.secrets.add(url)
            continue
        for piece in (parts.username, parts.password, parts.query):
            if piece:
                _REDACT.secrets.add(piece)
        if parts.path not in ("", "/"):
            _REDACT.secrets.add(parts.path.strip("/"))
    for name in _LIBRARIES:
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)
