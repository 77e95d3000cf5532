"""TLS for the native protocol: the broker's SSL context.

``--tls-cert`` and ``--tls-key`` (PEM) turn TLS on; ``--tls-client-ca`` also requires every
client to present a certificate signed by that CA (mutual TLS). TLS 1.2 is the minimum.
Clients connect with ``tidings+tls://host:port`` or ``tidings://host:port?tls=true`` (see
docs/security.md).
"""

from __future__ import annotations

import asyncio
import ssl

from ..errors import BadRequest


def server_context(
    cert: str, key: str | None = None, client_ca: str | None = None
) -> ssl.SSLContext:
    """An SSLContext for the listener; BadRequest naming the file when one cannot be used."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise BadRequest(f"cannot load the TLS certificate {cert} / key {key}: {exc}") from exc
    if client_ca:
        try:
            ctx.load_verify_locations(client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise BadRequest(f"cannot load the client CA {client_ca}: {exc}") from exc
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_subject(transport: asyncio.BaseTransport | None) -> str | None:
    """The common name of the client's certificate (mutual TLS), for the logs."""
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None
