"""TLS for ``tidings+tls://`` (or ``?tls=true``): the client's SSL context from its options."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from ...errors import BadRequest

if TYPE_CHECKING:
    from .options import NativeOptions


def client_context(opts: NativeOptions) -> ssl.SSLContext | None:
    """None without TLS; else ``opts.ssl_context`` or one built from the tls_* options:
    verify the broker against ``tls_ca`` (default: the system's CAs) unless ``tls_verify`` is
    off, and present ``tls_cert``/``tls_key`` when the broker requires client certificates."""
    if opts.ssl_context is not None:
        return opts.ssl_context
    if not opts.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=opts.tls_ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if not opts.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if opts.tls_cert:
            ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise BadRequest(f"cannot set up TLS for the tidings:// transport: {exc}") from exc
    return ctx
