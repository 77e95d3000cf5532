"""The lines a service logs at its lifecycle events: connected and listening (with what it
handles), stopping, stopped. One line each, at INFO, on the ``tidings.service`` logger."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from .handlers import Handler

MAX_LISTED = 6  # handlers named in the start line; the rest are counted


def safe_url(url: str) -> str:
    """``url`` without its password or token (``tidings://alice@host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    creds, host = parts.netloc.rsplit("@", 1)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def handler_summary(handlers: list[Handler]) -> str:
    """``orders (group billing, shared), refund.status (replies)`` for the start line."""
    shown = []
    for hd in handlers[:MAX_LISTED]:
        if hd.responder:
            shown.append(f"{hd.topic} (replies)")
        else:
            shown.append(f"{hd.topic} (group {hd.group}, {hd.mode})")
    more = len(handlers) - MAX_LISTED
    if more > 0:
        shown.append(f"and {more} more")
    return ", ".join(shown)


def started_line(name: str, url: str, handlers: list[Handler]) -> str:
    count = len(handlers)
    if not count:
        return f"service {name} connected to {safe_url(url)}; no handlers (publishing only)"
    noun = "handler" if count == 1 else "handlers"
    return (
        f"service {name} connected to {safe_url(url)}; {count} {noun} listening: "
        f"{handler_summary(handlers)}"
    )
