"""The error-code table of docs/design/protocol.md, generated from :mod:`tidings.errors`.

``python -m tidings.protocol.errortable`` prints it; a test keeps the document equal to it.
"""

from __future__ import annotations

from ..errors import TidingsError, _catalogue


def error_table() -> str:
    rows = ["| code | error | kind of | meaning |", "| ---: | --- | --- | --- |"]
    for code, cls in sorted(_catalogue().items()):
        parent = "-" if cls is TidingsError else cls.__mro__[1].__name__
        meaning = cls.default_message.split(":")[0].replace("|", "/")
        rows.append(f"| {code} | `{cls.__name__}` | {parent} | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(error_table())
