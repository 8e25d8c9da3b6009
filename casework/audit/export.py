"""The access log's export format: JSON Lines that an auditor verifies offline.

One JSON object per line, each line ending in ``\\n``; the writer escapes every
non-ASCII character (``\\u2014``), so an export is plain ASCII whatever the
reader's locale. Two kinds::

    {"kind": "entry", "seq": 1, "at": "2025-03-01T12:00:00.000000Z",
     "actor": "u-17" | null, "role": "caseworker" | null, "office": "..." | null,
     "device": "..." | null, "action": "case.read", "target": "C-8F3K2Q" | null,
     "fields": ["family_name", "given_name"], "outcome": "success",
     "request_id": "..." | null,
     "prev_hash": "<64 lowercase hex>", "hash": "<64 lowercase hex>"}

    {"kind": "checkpoint", "note": "<the signed checkpoint note, verbatim>"}

(shown wrapped; each object is one line). Entries come in sequence order;
checkpoints may appear anywhere, conventionally right after the entry whose seq
equals their size. ``at`` is ISO-8601 in UTC with exactly six fractional
digits and a ``Z``; it is for people to read, and converts without loss to the
integer microseconds that the entry hash covers (see
:mod:`casework.audit.encoding`). The writer emits keys sorted and no
whitespace, so the same log always exports to the same bytes.

The reader is strict because an export is evidence: an unknown or missing key,
a duplicate key, a wrong type, a non-canonical time or hash, or an over-long line
is an :class:`ExportFormatError` naming the line, never a silent default.
Nothing in an export is personal data; the entries carry field names, not
values, and random case references, not names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from casework.audit.encoding import AuditRecord, ChainedRecord

MAX_LINE_LENGTH = 64 * 1024

_TIME_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = frozenset(
    {
        "kind", "seq", "at", "actor", "role", "office", "device", "action", "target",
        "fields", "outcome", "request_id", "prev_hash", "hash",
    }
)  # fmt: skip
_CHECKPOINT_KEYS = frozenset({"kind", "note"})
_OPTIONAL_TEXT = ("actor", "role", "office", "device", "target", "request_id")


class ExportFormatError(ValueError):
    """A line of an export is not in the export format.

    ``line`` is the 1-based line number and ``kind`` the line's declared kind
    when it could be read, so a verifier can tell a broken entry from a broken
    checkpoint.
    """

    def __init__(self, line: int, message: str, kind: str | None = None) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.kind = kind


@dataclass(frozen=True, slots=True)
class CheckpointNote:
    """A signed checkpoint note as carried in an export (not yet verified)."""

    note: str


ExportItem = ChainedRecord | CheckpointNote


def entry_document(entry: ChainedRecord) -> dict[str, Any]:
    """One entry's fields as exported (and as the auditor API shows them)."""
    record = entry.record
    return {
        "seq": record.seq,
        "at": format_time(record.at),
        "actor": record.actor,
        "role": record.role,
        "office": record.office,
        "device": record.device,
        "action": record.action,
        "target": record.target,
        "fields": list(record.fields),
        "outcome": record.outcome,
        "request_id": record.request_id,
        "prev_hash": entry.prev_hash.hex(),
        "hash": entry.hash.hex(),
    }


def entry_line(entry: ChainedRecord) -> str:
    """Return the export line (with its newline) for one log entry."""
    return _dump({"kind": "entry", **entry_document(entry)})


def checkpoint_line(note: str) -> str:
    """Return the export line (with its newline) for one signed checkpoint note."""
    return _dump({"kind": "checkpoint", "note": note})


def write_export(items: Iterable[ExportItem | str]) -> Iterator[str]:
    """Yield export lines for entries and checkpoints (notes as objects or plain text)."""
    for item in items:
        if isinstance(item, ChainedRecord):
            yield entry_line(item)
        elif isinstance(item, CheckpointNote):
            yield checkpoint_line(item.note)
        else:
            yield checkpoint_line(item)


def read_export(lines: Iterable[str]) -> Iterator[ExportItem]:
    """Parse export lines strictly, yielding entries and checkpoint notes in file order.

    Raises :class:`ExportFormatError` at the first line that is not in the format.
    """
    for number, line in enumerate(lines, start=1):
        yield parse_line(line, number)


def decode_lines(raw_lines: Iterable[bytes]) -> Iterator[str]:
    """Decode raw export lines as UTF-8, naming the first line that is not."""
    for number, data in enumerate(raw_lines, start=1):
        try:
            yield data.decode("utf-8")
        except UnicodeDecodeError:
            raise ExportFormatError(number, "line is not UTF-8") from None


def parse_line(line: str, number: int = 1) -> ExportItem:
    """Parse one export line; ``number`` only labels errors."""
    if len(line) > MAX_LINE_LENGTH:
        raise ExportFormatError(number, "line is too long")
    if not line.endswith("\n") or "\n" in line[:-1]:
        raise ExportFormatError(number, "each object must be exactly one line ending in a newline")
    try:
        obj = _DECODER.decode(line)
    except ValueError:
        raise ExportFormatError(number, "line is not a JSON object") from None
    if not isinstance(obj, dict):
        raise ExportFormatError(number, "line is not a JSON object")
    kind = obj.get("kind")
    if kind == "entry":
        return _parse_entry(obj, number)
    if kind == "checkpoint":
        return _parse_checkpoint(obj, number)
    raise ExportFormatError(number, "kind must be 'entry' or 'checkpoint'")


def format_time(at: datetime) -> str:
    """Render a UTC time as the export does: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> datetime:
    """Parse the export's time format, and only it, to an aware UTC datetime."""
    if not _TIME_PATTERN.fullmatch(text):
        raise ValueError("time must be YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        parsed = datetime.fromisoformat(text[:-1])  # the pattern fixed the layout
    except ValueError:
        raise ValueError("time is not a valid calendar time") from None
    return parsed.replace(tzinfo=UTC)


def _parse_entry(obj: dict[str, Any], number: int) -> ChainedRecord:
    if obj.keys() != _ENTRY_KEYS:
        raise ExportFormatError(number, "entry must have exactly the entry keys", "entry")
    try:
        return _build_entry(obj)
    except (TypeError, ValueError) as error:
        # Our own messages name the rule broken; they never echo a value.
        raise ExportFormatError(number, f"invalid entry: {error}", "entry") from None


def _build_entry(obj: dict[str, Any]) -> ChainedRecord:
    for key in ("at", "action", "outcome", "prev_hash", "hash"):
        if not isinstance(obj[key], str):
            raise ValueError(f"{key} must be a string")
    for key in _OPTIONAL_TEXT:
        if obj[key] is not None and not isinstance(obj[key], str):
            raise ValueError(f"{key} must be a string or null")
    fields = obj["fields"]
    if not isinstance(fields, list):
        raise ValueError("fields must be a list")
    for key in ("prev_hash", "hash"):
        if not _HEX_HASH.fullmatch(obj[key]):
            raise ValueError(f"{key} must be 64 lowercase hex digits")
    record = AuditRecord(
        seq=obj["seq"],
        at=parse_time(obj["at"]),
        actor=obj["actor"],
        role=obj["role"],
        office=obj["office"],
        device=obj["device"],
        action=obj["action"],
        target=obj["target"],
        fields=tuple(fields),
        outcome=obj["outcome"],
        request_id=obj["request_id"],
    )
    return ChainedRecord(record, bytes.fromhex(obj["prev_hash"]), bytes.fromhex(obj["hash"]))


def _parse_checkpoint(obj: dict[str, Any], number: int) -> CheckpointNote:
    if obj.keys() != _CHECKPOINT_KEYS or not isinstance(obj["note"], str):
        raise ExportFormatError(number, "checkpoint must be exactly kind and note", "checkpoint")
    return CheckpointNote(obj["note"])


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=True, sort_keys=True, separators=(",", ":")) + "\n"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
