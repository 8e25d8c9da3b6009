"""The request pool a load generator cycles through, and its file format.

Both generators read the same file: wrk through ``wrk_report.lua`` and the
Python fallback through :func:`read`. One line per item, so Lua needs no JSON
parser::

    METHOD POST
    HEADER Content-Type: application/json
    REQUEST /api/v1/cases/search<TAB>{"document_number":"P1234"}

Bodies are compact ASCII JSON, which never contains a raw tab or newline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FORBIDDEN = ("\t", "\r", "\n")


class RequestFileError(ValueError):
    """A method, header, path or body that cannot travel in the one-line format."""


@dataclass(frozen=True)
class RequestPool:
    """One method and header set; one or more (path, body) items, cycled in order."""

    method: str
    headers: Mapping[str, str]
    items: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.items:
            raise RequestFileError("a request pool needs at least one request")


def json_body(value: Any) -> str:
    """Compact ASCII JSON: byte length equals string length, no raw control characters."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def write(path: Path, pool: RequestPool) -> None:
    """Write ``pool`` in the one-line format; raises :class:`RequestFileError` on bad input."""
    lines = [f"METHOD {_checked(pool.method, 'method')}"]
    for name, value in pool.headers.items():
        lines.append(f"HEADER {_checked(name, 'header name')}: {_checked(value, 'header value')}")
    for request_path, body in pool.items:
        if not request_path.startswith("/"):
            raise RequestFileError("a request path must start with '/'")
        lines.append(f"REQUEST {_checked(request_path, 'path')}\t{_checked(body, 'body')}")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def read(path: Path) -> RequestPool:
    """Parse a file written by :func:`write`."""
    method = "GET"
    headers: dict[str, str] = {}
    items: list[tuple[str, str]] = []
    for line in path.read_text(encoding="ascii").splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "METHOD":
            method = rest
        elif kind == "HEADER":
            name, _, value = rest.partition(": ")
            headers[name] = value
        elif kind == "REQUEST":
            request_path, _, body = rest.partition("\t")
            items.append((request_path, body))
        elif line:
            raise RequestFileError(f"unknown line kind {kind!r}")
    return RequestPool(method=method, headers=headers, items=tuple(items))


def _checked(text: str, what: str) -> str:
    if any(char in text for char in _FORBIDDEN) or not text.isascii():
        raise RequestFileError(f"the {what} must be ASCII without tabs or line breaks")
    return text
