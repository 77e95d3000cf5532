"""docs/design/protocol.md stays consistent with the constants and the error catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from tidings.protocol import constants
from tidings.protocol.errortable import error_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "design" / "protocol.md"


def test_error_table_matches_the_catalogue():
    text = DOC.read_text()
    match = re.search(r"<!-- error-table:.*?-->\n(.*?)\n<!-- /error-table -->", text, re.S)
    assert match, "the error table markers are missing from protocol.md"
    assert match.group(1).strip() == error_table(), (
        "protocol.md's error table is stale: replace it with the output of "
        "`python -m tidings.protocol.errortable`"
    )


def test_every_frame_type_is_documented_with_its_number():
    text = DOC.read_text()
    for number, name in constants.FRAME_NAMES.items():
        if name.endswith("_REPLY"):
            continue
        assert re.search(rf"\| 0x{number:02X} \| {name} \|", text), f"{name} missing"


def test_documented_constants():
    text = DOC.read_text()
    assert f'`"{constants.MAGIC}"`' in text
    assert f"port **{constants.DEFAULT_PORT}**" in text
    assert f"**{constants.HANDSHAKE_MAX_FRAME_SIZE:,}**" in text
    assert constants.HEADER_SIZE == 9 and "9-byte header" in text


def test_a_subclass_that_keeps_its_parents_code_does_not_take_it_over():
    """An error class made elsewhere (e.g. the MQTT codec's) without a code of its own must
    not replace its parent in the catalogue once imported: the table and error_for_code
    would then depend on what a process happened to import."""
    from tidings.errors import ProtocolError, error_for_code

    class LocalProtocolError(ProtocolError):
        pass

    assert type(error_for_code(ProtocolError.code)) is ProtocolError
    assert "LocalProtocolError" not in error_table()
    del LocalProtocolError
