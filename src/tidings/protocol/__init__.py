"""The tidings wire protocol, sans-IO: frames, payload Structs and the handshake rules.

No asyncio here: the broker server and the ``tidings://`` transport both drive these pure
functions from their own I/O loops. The byte layout is specified in docs/design/protocol.md.
"""

from . import constants
from .framing import Frame, FrameDecoder, decode_body, encode_frame, frame_bytes, raw_frame
from .handshake import hello, negotiate

__all__ = [
    "Frame",
    "FrameDecoder",
    "constants",
    "decode_body",
    "encode_frame",
    "frame_bytes",
    "hello",
    "negotiate",
    "raw_frame",
]
