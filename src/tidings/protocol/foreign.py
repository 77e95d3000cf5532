"""Naming the server on the other end when it is not a tidings broker.

A ``tidings://`` URL pointed at the wrong port reaches some other server: an HTTP server
answers the HELLO with ``HTTP/1.1 400``, a NATS server greets with ``INFO {...}``. Decoding
those bytes as frames gives absurd lengths (``INFO`` reads as a 1.2 GB frame); this module
turns the first bytes the server sent into words a user recognises. Pure functions, no I/O.
"""

from __future__ import annotations

# Openings of the replies that common servers send to a client (or to our HELLO), and the
# name to say. Checked in order, on the first bytes only.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"HTTP/", "HTTP"),
    (b"INFO {", "NATS"),
    (b"AMQP", "AMQP (RabbitMQ)"),
    (b"-ERR", "Redis"),
    (b"-NOAUTH", "Redis"),
    (b"+OK", "Redis"),
    (b"SSH-", "SSH"),
    (b"\x15\x03", "TLS"),  # an alert: the server expected a TLS ClientHello
    (b"\x16\x03", "TLS"),
    (b"220 ", "SMTP/FTP"),
    (b"* OK", "IMAP"),
)

SHOWN_BYTES = 40  # how much of the answer the message quotes


def protocol_of(answer: bytes) -> str | None:
    """The protocol ``answer`` (a server's first bytes) looks like, or None if unknown."""
    for opening, name in _SIGNATURES:
        if answer.startswith(opening):
            return name
    return None


def quote(answer: bytes) -> str:
    """The start of ``answer`` for an error message: its first line as text when it is
    printable, else its bytes."""
    head = answer[:SHOWN_BYTES]
    line = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    if line and all(32 <= b < 127 for b in line):
        more = "..." if len(line) < len(answer.rstrip(b"\r\n")) else ""
        return repr(line.decode("ascii") + more)
    return repr(head)


def describe(address: str, answer: bytes) -> str:
    """The message for a server at ``address`` that answered ``answer``, not a tidings
    broker."""
    if not answer:
        return (
            f"not a tidings broker at {address} (it closed the connection without answering "
            "the tidings HELLO). Check the host and port: the broker's default port is 7420"
        )
    like = protocol_of(answer)
    if like == "TLS":
        return (
            f"{address} speaks TLS (it answered the plain-text HELLO with a TLS record): if it "
            "is a tidings broker started with --tls-cert, connect with tidings+tls://"
        )
    said = f"it answered like {like}: {quote(answer)}" if like else f"it answered {quote(answer)}"
    return (
        f"not a tidings broker at {address} ({said}). Check the host and port: the broker's "
        "default port is 7420"
    )
