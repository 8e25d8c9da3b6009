"""Encrypted model attributes: the one place where fields are encrypted and decrypted.

A model declares ``full_name = sealed_text(64)`` (``sealed_int``, ``sealed_date``,
``sealed_list``, ``sealed_dict``, ``sealed_uuid``); this adds a ``LargeBinary``
column of the same name that holds only ciphertext. Reading the attribute
decrypts; assigning it encodes the value at once (so a wrong type fails where it
was assigned) and encrypts it when the session flushes, because only then are
the session, the case id and the row id known. Services never call an
encryption function themselves.

A sealed attribute is always present and padded, so a row shows no value's
shape: "no value" is an encrypted JSON ``null``, never SQL NULL (``"male"`` and
``"female"`` differ in length, a NULL birth registration marks an adult, the
size of the needs list counts a household's vulnerabilities), and the JSON is
padded with trailing spaces to a multiple of the attribute's ``block`` bytes,
chosen so that every value of a low-cardinality field fills the same block and
free text leaks its length only to the block. SQL NULL is written only by
:func:`erase_ciphertext`, when a case is erased (and for a column never assigned).

Every row needs its own id and its case id before the first flush; both are
bound into the ciphertext. :class:`ClientIdMixin` assigns a UUID at construction.

Each field's ciphertext is bound to its table, column, case and row, but not
to the other fields of the row: a database writer could put back an older
ciphertext of one cell, and it would decrypt. So a model with sealed fields
also gets a ``row_seal`` column: an 8-byte counter and an HMAC-SHA256, under a
key derived from the case's data key, over the table, the ids, the counter and
every sealed column's ciphertext. It is recomputed (counter + 1) whenever the
row's sealed values are written and checked before any of them is decrypted;
a field rolled back alone, or a row mixed from two versions, fails with
:class:`~casework.security.errors.RowIntegrityError`. A whole row put back as
it was is not detected here (it is a consistent older version of the row).

A loaded row keeps what it has opened (:class:`OpenedRow`): its seal is checked once
per row image, not once per attribute read, and each value is decrypted once; a value
assigned here is kept as the plaintext its flush encrypted. Bytes that come from the
database again (a refresh, an expiry, another session) are new objects and are
checked again before anything is served, and nothing is served once the case's key
is shredded.

Limits a model author must know:

* an encrypted attribute cannot be used in a query filter or ordering; search
  goes through blind indexes (:mod:`casework.security.blind_index`);
* a JSON value is decoded afresh on every read: changes made to the returned
  dict or list are not saved until the attribute is assigned again;
* renaming an encrypted column or its table needs a re-encryption migration,
  because the names are part of the associated data.
"""

from __future__ import annotations

import datetime
import functools
import hmac
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import is_, itemgetter
from typing import Any, Generic, Self, TypeVar, overload

from sqlalchemy import LargeBinary, event, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session
from sqlalchemy.orm.attributes import flag_dirty

from casework.security.case_keys import (
    SESSION_INFO_KEY,
    data_key_cache,
    install_key_cache_events,
)
from casework.security.codecs import JSON, Codec, JSONValue
from casework.security.data_key_cache import DataKeyCache
from casework.security.envelope import (
    DataKey,
    FieldContext,
    field_aad_ids,
    field_aad_prefix,
    open_with_aad,
    seal_with_aad,
)
from casework.security.errors import CodecError, EncryptionContextError, RowIntegrityError
from casework.security.framing import length_prefixed

T = TypeVar("T")

PENDING_ATTRIBUTE = "_casework_pending_plaintext"
"""Instance attribute holding encoded values assigned since the last flush, by field name."""

_AAD_IDS_ATTRIBUTE = "_casework_aad_ids"
"""Instance attribute caching (case id, row id, their framed bytes): a member's sixteen
fields share them, so the ids are framed once per row rather than once per field."""


ROW_SEAL_COLUMN = "row_seal"
ROW_SEAL_ATTR = "_row_seal"
"""The per-row authenticator's column, and the model attribute that maps it."""

_OPENED_ATTRIBUTE = "_casework_opened_row"
"""Instance attribute holding the row's :class:`OpenedRow`: the row image whose seal was
checked (or computed) in this unit of work, and the values opened from it so far."""

_ROW_SEAL_DOMAIN = b"casework.row-seal.v1"
_COUNTER_BYTES = 8


class RowIds:
    """A row's case id and row id, framed once for the associated data of all its fields."""

    __slots__ = ("aad", "case_id", "row_id")

    def __init__(self, case_id: uuid.UUID, row_id: uuid.UUID) -> None:
        self.case_id = case_id
        self.row_id = row_id
        self.aad = field_aad_ids(case_id, row_id)


class EncryptedField(Generic[T]):
    """A model attribute whose value is stored AES-256-GCM encrypted under the case's data key."""

    def __init__(
        self,
        codec: Codec[T],
        *,
        case_id_attr: str = "case_id",
        row_id_attr: str = "id",
        column_name: str | None = None,
        nullable: bool = True,
    ) -> None:
        self.codec = codec
        self.case_id_attr = case_id_attr
        self.row_id_attr = row_id_attr
        self.name_in_table = column_name or ""
        self.nullable = nullable
        self.name = ""
        self.storage_attr = ""
        self._table_name = ""
        self._aad_prefix = b""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.codec.name})>"

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name
        self.name_in_table = self.name_in_table or name
        self.storage_attr = f"_{name}_ciphertext"
        self._owner: type[Any] = owner
        column: Mapped[bytes | None] = mapped_column(
            self.name_in_table,
            LargeBinary,
            nullable=self.nullable,
            comment=f"encrypted {self.codec.name} (AES-256-GCM, see docs/encryption.md)",
        )
        setattr(owner, self.storage_attr, column)
        if ROW_SEAL_ATTR not in owner.__dict__:
            seal: Mapped[bytes | None] = mapped_column(
                ROW_SEAL_COLUMN,
                LargeBinary,
                nullable=True,
                comment="counter and HMAC over the row's sealed columns (docs/encryption.md)",
            )
            setattr(owner, ROW_SEAL_ATTR, seal)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, obj: object, owner: type[Any]) -> T | None: ...

    def __get__(self, obj: object | None, owner: type[Any]) -> Self | T | None:
        if obj is None:
            return self
        state = obj.__dict__
        pending = state.get(PENDING_ATTRIBUTE)
        if pending and self.name in pending:
            return self._decode(pending[self.name])
        opened = _opened(obj, state, self)
        if opened is None:
            blob = getattr(obj, self.storage_attr)
            if blob is None and getattr(obj, ROW_SEAL_ATTR) is None and _all_erased(obj):
                return None  # erased (or never written): no key to check with, nothing to open
            opened = _open_row(obj, self)
        return opened.value(self)

    def __set__(self, obj: object, value: T | None) -> None:
        obj.__dict__.setdefault(PENDING_ATTRIBUTE, {})[self.name] = self.encode_value(value)
        flag_dirty(obj)

    def encode_value(self, value: T | None) -> bytes | None:
        """The bytes to encrypt for ``value``; None (stored as NULL) for None."""
        return None if value is None else self.codec.encode(value)

    def ciphertext(self, key: DataKey, row_ids: RowIds, value: T | None) -> bytes | None:
        """The stored column value of ``value`` for a row written without the ORM.

        For bulk inserts (seeding, imports): the same encoding, associated data
        and encryption as an assignment followed by a flush, without a unit of work.
        """
        encoded = self.encode_value(value)
        if encoded is None:
            return None
        if not self._aad_prefix:
            self._aad_prefix = field_aad_prefix(self._table(), self.name_in_table)
        return seal_with_aad(key, encoded, self._aad_prefix + row_ids.aad)

    def plaintext(self, session: Session, row_ids: RowIds, blob: bytes | None) -> T | None:
        """The value of a stored column read without the ORM: the twin of :meth:`ciphertext`.

        For bulk reads (a sync pull of hundreds of rows): the same key lookup,
        associated data and decoding as reading the attribute of a loaded row.
        """
        if blob is None:
            return None
        if not self._aad_prefix:
            self._aad_prefix = field_aad_prefix(self._table(), self.name_in_table)
        key = data_key_cache(session).get(row_ids.case_id)
        return self.codec.decode(open_with_aad(key, blob, self._aad_prefix + row_ids.aad))

    def _decode(self, encoded: bytes | None) -> T | None:
        return None if encoded is None else self.codec.decode(encoded)

    def _ids(self, obj: object) -> tuple[uuid.UUID, uuid.UUID]:
        case_id = getattr(obj, self.case_id_attr)
        row_id = getattr(obj, self.row_id_attr)
        if not isinstance(case_id, uuid.UUID):
            raise EncryptionContextError(f"{self.case_id_attr} must be set before encrypting")
        if not isinstance(row_id, uuid.UUID):
            raise EncryptionContextError(
                f"{self.row_id_attr} must be assigned at construction (use ClientIdMixin)"
            )
        return case_id, row_id

    def _context(self, obj: object) -> FieldContext:
        case_id, row_id = self._ids(obj)
        return FieldContext(self._table(), self.name_in_table, case_id, row_id)

    def _table(self) -> str:
        if not self._table_name:
            # The table exists only once the declarative class is complete.
            self._table_name = self._owner.__table__.name
        return self._table_name

    def _aad(self, obj: object) -> tuple[uuid.UUID, bytes]:
        """The case id and the associated data of this field of ``obj``: the bytes
        of :meth:`_context`'s ``encoded``, from a per-attribute prefix and per-row ids."""
        case_id, row_id = self._ids(obj)
        cached = obj.__dict__.get(_AAD_IDS_ATTRIBUTE)
        if cached is None or not (
            (cached[0] is case_id or cached[0] == case_id)
            and (cached[1] is row_id or cached[1] == row_id)
        ):
            cached = (case_id, row_id, field_aad_ids(case_id, row_id))
            obj.__dict__[_AAD_IDS_ATTRIBUTE] = cached
        if not self._aad_prefix:
            self._aad_prefix = field_aad_prefix(self._table(), self.name_in_table)
        return case_id, self._aad_prefix + cached[2]

    def seal(self, obj: object, session: Session, encoded: bytes | None) -> None:
        """Store ``encoded`` (or NULL) encrypted in the ciphertext column; used at flush.

        The new ciphertext is a new row image: no value opened before is served for it
        until :func:`_reseal_row` vouches for the row again."""
        if encoded is None:
            setattr(obj, self.storage_attr, None)
            return
        case_id, aad = self._aad(obj)
        key = data_key_cache(session).get(case_id)
        setattr(obj, self.storage_attr, seal_with_aad(key, encoded, aad))


def assign_sealed(obj: object, values: Mapping[str, Any]) -> None:
    """Assign the sealed attributes ``values`` names, as assigning each would: encoded at
    once (a wrong type fails here), encrypted at the flush, the row marked changed once
    rather than once per attribute (a new member's fifteen)."""
    fields = _fields_named(type(obj), tuple(values))
    pending = obj.__dict__.setdefault(PENDING_ATTRIBUTE, {})
    for field, value in zip(fields, values.values(), strict=True):
        pending[field.name] = field.encode_value(value)
    if fields:
        flag_dirty(obj)


def read_sealed(obj: object, names: Iterable[str]) -> dict[str, Any]:
    """The values of the sealed attributes ``names`` of ``obj``, as reading each would give.

    For views that show a whole row (a case's sixteen member fields): the row's
    ids, data key and seal are looked up and checked once for all of them,
    rather than once per attribute, with the same key, associated data, seal
    check and decoding as :meth:`EncryptedField.__get__`. A row with values
    assigned since the last flush is read attribute by attribute.
    """
    fields = _fields_named(type(obj), tuple(names))
    state = obj.__dict__
    if not fields or state.get(PENDING_ATTRIBUTE):
        return {field.name: getattr(obj, field.name) for field in fields}
    first = fields[0]
    opened = _opened(obj, state, first)
    if opened is None:
        if getattr(obj, ROW_SEAL_ATTR) is None and _all_erased(obj):
            return dict.fromkeys((f.name for f in fields), None)
        opened = _open_row(obj, first)
    return {field.name: opened.value(field) for field in fields}


_FIELDS_BY_NAMES: dict[tuple[type[Any], tuple[str, ...]], tuple[EncryptedField[Any], ...]] = {}


def _fields_named(model: type[Any], names: tuple[str, ...]) -> tuple[EncryptedField[Any], ...]:
    """The encrypted attributes ``names`` of ``model`` (ValueError for any other name);
    they must share the attributes that name their case and row."""
    found = _FIELDS_BY_NAMES.get((model, names))
    if found is None:
        found = tuple(getattr(model, name) for name in names)
        if not all(isinstance(f, EncryptedField) for f in found):
            raise ValueError(f"not every one of {names} is an encrypted attribute of {model}")
        if len({(f.case_id_attr, f.row_id_attr) for f in found}) > 1:
            raise ValueError("the attributes name their case and row differently")
        _FIELDS_BY_NAMES[(model, names)] = found
    return found


class ClientIdMixin:
    """A UUID primary key ``id`` assigned when the object is constructed.

    Encryption binds the row id into every ciphertext, so it must exist before
    the first flush; a database-generated key would arrive too late.
    """

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("id", uuid.uuid4())
        super().__init__(**kwargs)


def _seal_pending_values(session: Session, flush_context: Any, instances: Any) -> None:
    """Encrypt every value assigned since the last flush, before SQL is emitted.

    A stored row's seal is checked before it is computed anew: the new seal vouches
    for every ciphertext of the row, so one put back in the database must not be
    laundered by a write to another field of the row.
    """
    for obj in [*session.new, *session.dirty]:
        state = obj.__dict__
        pending: dict[str, bytes | None] | None = state.get(PENDING_ATTRIBUTE)
        if not pending:
            continue
        model = type(obj)
        first = _model_fields(model)[0]
        known: dict[str, Any] = {}
        if getattr(obj, ROW_SEAL_ATTR) is not None:
            opened = _opened(obj, state, first) or _open_row(obj, first)
            known.update(opened.values)
        while pending:
            name, encoded = next(iter(pending.items()))
            getattr(model, name).seal(obj, session, encoded)
            known[name] = None if encoded is None else _Plaintext(encoded)
            del pending[name]
        _reseal_row(obj, session, known)


def _discard_pending_values(session: Session, previous_transaction: Any) -> None:
    """Drop unflushed assignments of rows the rollback expired, so reads show stored values."""
    for obj in session.identity_map.values():
        obj.__dict__.pop(PENDING_ATTRIBUTE, None)


def install_session_events() -> None:
    """Listen to every session's flushes and rollbacks (once per process; again is a no-op).

    Sealing happens at flush: without these listeners an assigned value would be
    flushed as NULL. ``create_app`` installs them (``casework.security.app``);
    :func:`~casework.security.case_keys.attach_keyring` refuses a session before.
    """
    if not event.contains(Session, "before_flush", _seal_pending_values):
        event.listen(Session, "before_flush", _seal_pending_values)
        event.listen(Session, "after_soft_rollback", _discard_pending_values)
    install_key_cache_events()


# --- sealed attributes: the vocabulary every model declares its encrypted data with -----


class PaddedJSON(Generic[T]):
    """A codec: the JSON of a value (``null`` for None), space-padded to ``block`` bytes."""

    def __init__(
        self,
        name: str,
        python_type: type[Any],
        block: int,
        dump: Callable[[T], JSONValue],
        load: Callable[[JSONValue], T],
    ) -> None:
        self.name = f"json padded to {block} bytes"
        self.kind = name
        self.python_type = python_type
        self.block = block
        self._dump = dump
        self._load = load

    def encode(self, value: T | None) -> bytes:
        if value is None:
            raw = JSON.encode(None)
        elif type(value) is self.python_type or _is_a(value, self.python_type):
            raw = JSON.encode(self._dump(value))
        else:
            raise CodecError(f"a {self.kind} attribute cannot hold a {type(value).__name__}")
        return raw + b" " * (-len(raw) % self.block)

    def decode(self, data: bytes) -> T | None:
        value = JSON.decode(data)
        return None if value is None else self._load(value)


def _is_a(value: object, python_type: type[Any]) -> bool:
    """``isinstance``, but a bool is no int and a datetime is no date."""
    if isinstance(value, bool) and python_type is not bool:
        return False
    if isinstance(value, datetime.datetime) and python_type is datetime.date:
        return False
    return isinstance(value, python_type)


def _expect(kind: type[T]) -> Callable[[JSONValue], T]:
    def load(value: JSONValue) -> T:
        if type(value) is kind:  # kind is never bool
            return value
        if isinstance(value, bool) or not isinstance(value, kind):
            raise CodecError(f"stored value is not of type {kind.__name__}")
        return value

    return load


def _same(value: Any) -> JSONValue:
    result: JSONValue = value
    return result


def _load_date(value: JSONValue) -> datetime.date:
    if not isinstance(value, str):
        raise CodecError("stored value is not a date")
    return datetime.date.fromisoformat(value)


def _load_uuid(value: JSONValue) -> uuid.UUID:
    if not isinstance(value, str):
        raise CodecError("stored value is not an id")
    return uuid.UUID(value)


class Sealed(EncryptedField[T]):
    """An encrypted attribute that always stores a padded value; ``None`` included."""

    def encode_value(self, value: T | None) -> bytes:
        # Unlike EncryptedField, None is encoded (as a padded JSON null), not stored as NULL.
        return self.codec.encode(value)  # type: ignore[arg-type]


def sealed_text(block: int, **options: Any) -> Sealed[str]:
    """A sealed ``str``; free text leaks its length only to ``block`` bytes."""
    return Sealed(PaddedJSON("str", str, block, _same, _expect(str)), **options)  # type: ignore[arg-type]


def sealed_int(block: int, **options: Any) -> Sealed[int]:
    return Sealed(PaddedJSON("int", int, block, _same, _expect(int)), **options)  # type: ignore[arg-type]


def sealed_list(block: int, **options: Any) -> Sealed[list[Any]]:
    return Sealed(PaddedJSON("list", list, block, _same, _expect(list)), **options)  # type: ignore[arg-type]


def sealed_dict(block: int, **options: Any) -> Sealed[dict[str, Any]]:
    return Sealed(PaddedJSON("dict", dict, block, _same, _expect(dict)), **options)  # type: ignore[arg-type]


def sealed_date(block: int, **options: Any) -> Sealed[datetime.date]:
    codec = PaddedJSON("date", datetime.date, block, lambda d: d.isoformat(), _load_date)
    return Sealed(codec, **options)  # type: ignore[arg-type]


def sealed_uuid(block: int, **options: Any) -> Sealed[uuid.UUID]:
    codec = PaddedJSON("uuid", uuid.UUID, block, lambda u: str(u), _load_uuid)
    return Sealed(codec, **options)  # type: ignore[arg-type]


_FIELDS_CACHE: dict[type[Any], tuple[EncryptedField[Any], ...]] = {}


def encrypted_fields(model: type[Any]) -> list[EncryptedField[Any]]:
    """Every encrypted attribute a model class declares (its own and inherited)."""
    return list(_model_fields(model))


def _model_fields(model: type[Any]) -> tuple[EncryptedField[Any], ...]:
    """:func:`encrypted_fields`, looked up once per class (every flush of a sealed row asks)."""
    cached = _FIELDS_CACHE.get(model)
    if cached is None:
        found: dict[str, EncryptedField[Any]] = {}
        for klass in reversed(model.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, EncryptedField):
                    found[name] = value
        cached = _FIELDS_CACHE[model] = tuple(found.values())
    return cached


def erase_ciphertext(obj: object) -> None:
    """Overwrite every ciphertext column of ``obj`` with NULL and drop unsaved values.

    Used only by erasure, after the case's data key is gone: nothing is
    encrypted again, the stored ciphertext is simply replaced.
    """
    obj.__dict__.pop(PENDING_ATTRIBUTE, None)
    obj.__dict__.pop(_OPENED_ATTRIBUTE, None)
    for field in encrypted_fields(type(obj)):
        setattr(obj, field.storage_attr, None)
    setattr(obj, ROW_SEAL_ATTR, None)


# --- the per-row authenticator -----------------------------------------------------------

_SEALED_COLUMNS_CACHE: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def sealed_columns(model: type[Any]) -> tuple[tuple[str, str], ...]:
    """``(column name, storage attribute)`` of every sealed field of ``model``, in column-name
    order: the order the row seal covers them in."""
    found = _SEALED_COLUMNS_CACHE.get(model)
    if found is None:
        found = tuple(sorted((f.name_in_table, f.storage_attr) for f in encrypted_fields(model)))
        _SEALED_COLUMNS_CACHE[model] = found
    return found


def _row_seal_key(key: DataKey) -> bytes:
    # One HMAC to derive, once per DataKey object (a case's rows share it; the object
    # lives as long as the unit of work's key cache).
    derived = key.row_seal_key
    if derived is None:
        derived = key.row_seal_key = hmac.digest(key.material, _ROW_SEAL_DOMAIN, "sha256")
    return derived


_NULL_MARKER = b"\xff\xff\xff\xff"


def row_seal(
    key: DataKey,
    table: str,
    row_ids: RowIds,
    counter: int,
    ciphertexts: Iterable[tuple[str, bytes | None]],
) -> bytes:
    """The stored seal: ``counter`` (8 bytes) and HMAC-SHA256 over the table, the ids, the
    counter and each ``(column, ciphertext)`` in :func:`sealed_columns` order."""
    prefix = counter.to_bytes(_COUNTER_BYTES, "big")
    aad = row_ids.aad
    parts = [_seal_head(table), len(aad).to_bytes(4, "big"), aad, _COUNTER_FRAME, prefix]
    append = parts.append
    for column, blob in ciphertexts:
        append(_framed_column(column))
        if blob is None:
            append(_NULL_MARKER)
        else:
            append(len(blob).to_bytes(4, "big"))
            append(blob)
    return prefix + hmac.digest(_row_seal_key(key), b"".join(parts), "sha256")


def _row_mac(
    key: DataKey,
    table: str,
    aad: bytes,
    prefix: bytes,
    frames: Sequence[bytes],
    blobs: Iterable[bytes | None],
) -> bytes:
    """:func:`row_seal`'s HMAC (the same message, bytes for bytes: tests pin it), from the
    row's framed ids ``aad``, the 8-byte counter ``prefix`` and each column's frame
    (:func:`_column_frames`, computed once per model) beside its ciphertext: what the
    seal writers and checkers of a model's rows run, without a frame lookup per column."""
    parts = [_seal_head(table), len(aad).to_bytes(4, "big"), aad, _COUNTER_FRAME, prefix]
    append = parts.append
    for frame, blob in zip(frames, blobs, strict=True):
        append(frame)
        if blob is None:
            append(_NULL_MARKER)
        else:
            append(len(blob).to_bytes(4, "big"))
            append(blob)
    seal_key = key.row_seal_key
    if seal_key is None:
        seal_key = _row_seal_key(key)
    return hmac.digest(seal_key, b"".join(parts), "sha256")


_COLUMN_FRAMES: dict[type[Any], tuple[bytes, ...]] = {}


def _column_frames(model: type[Any]) -> tuple[bytes, ...]:
    """The framed names of ``model``'s sealed columns, in :func:`sealed_columns` order."""
    found = _COLUMN_FRAMES.get(model)
    if found is None:
        found = tuple(_framed_column(column) for column, _attr in sealed_columns(model))
        _COLUMN_FRAMES[model] = found
    return found


@functools.cache
def _seal_head(table: str) -> bytes:
    """The framed domain and table a row seal starts with (framing concatenates: the ids
    and the counter are framed after it)."""
    return length_prefixed(_ROW_SEAL_DOMAIN, table.encode())


@functools.cache
def _framed_column(column: str) -> bytes:
    name = column.encode()
    return len(name).to_bytes(2, "big") + name


def row_seal_for(model: type[Any], key: DataKey, row_ids: RowIds, row: Mapping[str, Any]) -> bytes:
    """The first seal of a row written without the ORM (bulk inserts): ``row`` maps column
    names to the ciphertexts it stores."""
    blobs = [row.get(column) for column, _attr in sealed_columns(model)]
    prefix = _FIRST_COUNTER
    return prefix + _row_mac(
        key, model.__table__.name, row_ids.aad, prefix, _column_frames(model), blobs
    )


_FIRST_COUNTER = (1).to_bytes(_COUNTER_BYTES, "big")


def _ciphertexts(obj: object) -> tuple[bytes | None, ...]:
    """The row's ciphertexts in :func:`sealed_columns` order: picked out of the instance
    state at once when it holds them all, else loaded attribute by attribute."""
    values = obj.__dict__
    model = type(obj)
    pick = _CIPHERTEXT_PICKERS.get(model)
    if pick is None:
        attrs = [attr for _column, attr in sealed_columns(model)]
        many = itemgetter(*attrs) if len(attrs) > 1 else lambda state: (state[attrs[0]],)
        pick = _CIPHERTEXT_PICKERS[model] = many
    try:
        blobs: tuple[bytes | None, ...] = pick(values)
    except KeyError:  # expired or deferred: it comes from the database
        return tuple(
            values[attr] if attr in values else getattr(obj, attr)
            for _column, attr in sealed_columns(model)
        )
    return blobs


_CIPHERTEXT_PICKERS: dict[type[Any], Callable[[dict[str, Any]], tuple[Any, ...]]] = {}


def _all_erased(obj: object) -> bool:
    return all(blob is None for blob in _ciphertexts(obj))


def _row_context(obj: object, field: EncryptedField[Any]) -> tuple[str, RowIds]:
    case_id, row_id = field._ids(obj)
    cached = obj.__dict__.get(_AAD_IDS_ATTRIBUTE)
    ids = RowIds.__new__(RowIds)
    ids.case_id, ids.row_id = case_id, row_id
    ids.aad = cached[2] if cached is not None else field_aad_ids(case_id, row_id)
    return field._table(), ids


# --- opened rows: what this unit of work knows to be genuine ---------------------------------

_IMMUTABLE = frozenset(
    {str, int, float, bool, type(None), bytes, datetime.date, datetime.datetime, uuid.UUID}
)
"""Types of decoded values served as they are; any other (a JSON list or dict) is decoded
again from the cached plaintext on every read, so changing it changes no stored value."""

_MISSING = object()

_STORAGE_ATTRS: dict[type[Any], tuple[str, ...]] = {}

_IMAGE_GETTERS: dict[tuple[type[Any], str, str], Callable[[dict[str, Any]], tuple[Any, ...]]] = {}


def _image_getter(model: type[Any], field: EncryptedField[Any]) -> Any:
    """Picks a row's image out of its instance state: every ciphertext (in
    :func:`sealed_columns` order), the seal, the case id and the row id."""
    found = _IMAGE_GETTERS.get((model, field.case_id_attr, field.row_id_attr))
    if found is None:
        attrs = [attr for _column, attr in sealed_columns(model)]
        found = itemgetter(*attrs, ROW_SEAL_ATTR, field.case_id_attr, field.row_id_attr)
        _IMAGE_GETTERS[(model, field.case_id_attr, field.row_id_attr)] = found
    return found


class _Plaintext:
    """A cached plaintext that is decoded on each read (its value is mutable)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class OpenedRow:
    """One loaded row's image whose seal was checked, or computed, in this unit of work,
    with the case key that checked it and the values opened from that image so far.

    ``image`` holds the very objects of the instance's state: every ciphertext, the
    seal and the two ids. A value is served from ``values`` only while the instance
    still holds each of them (by identity: a refresh, an expiry or another session's
    load brings new objects, whose seal is checked again before anything is opened)
    and while the session can still load the case's key, the same key as ``key`` (a
    shredded key fails the read; a key provisioned anew sends it back to the stored
    bytes). Values this process wrote enter as the plaintext it encrypted, with the
    image its flush sealed.
    """

    __slots__ = (
        "blobs",
        "case_attr",
        "case_id",
        "getter",
        "ids_aad",
        "image",
        "key",
        "row_attr",
        "values",
    )

    def __init__(
        self,
        model: type[Any],
        field: EncryptedField[Any],
        key: DataKey,
        ids: RowIds,
        checked: tuple[tuple[bytes | None, ...], bytes | None],
        values: dict[str, Any],
    ) -> None:
        blobs, seal = checked
        attrs = _STORAGE_ATTRS.get(model)
        if attrs is None:
            attrs = _STORAGE_ATTRS[model] = tuple(attr for _column, attr in sealed_columns(model))
        self.case_attr = field.case_id_attr
        self.row_attr = field.row_id_attr
        self.getter = _image_getter(model, field)
        self.image = (*blobs, seal, ids.case_id, ids.row_id)
        self.blobs = dict(zip(attrs, blobs, strict=True))
        self.key = key
        self.case_id = ids.case_id
        self.ids_aad = ids.aad
        self.values = values

    def value(self, field: EncryptedField[Any]) -> Any:
        """The value of ``field`` in this image: opened once, then served from the cache."""
        found = self.values.get(field.name, _MISSING)
        if found is _MISSING:
            blob = self.blobs[field.storage_attr]
            if blob is None:
                self.values[field.name] = None
                return None
            if not field._aad_prefix:
                field._aad_prefix = field_aad_prefix(field._table(), field.name_in_table)
            plaintext = open_with_aad(self.key, blob, field._aad_prefix + self.ids_aad)
            value = field.codec.decode(plaintext)
            immutable = type(value) in _IMMUTABLE
            self.values[field.name] = value if immutable else _Plaintext(plaintext)
            return value
        if type(found) is _Plaintext:
            value = field.codec.decode(found.data)
            if type(value) in _IMMUTABLE:
                self.values[field.name] = value
            return value
        return found


def _opened(obj: object, state: dict[str, Any], field: EncryptedField[Any]) -> OpenedRow | None:
    """The row's :class:`OpenedRow` if the instance still holds its image and the session
    still holds its key; None when the row must be checked (again) first."""
    opened: OpenedRow | None = state.get(_OPENED_ATTRIBUTE)
    if opened is None or opened.case_attr != field.case_id_attr:
        return None
    if opened.row_attr != field.row_id_attr:
        return None
    try:
        current = opened.getter(state)
    except KeyError:  # an attribute expired or never loaded: it comes from the database
        return None
    if not all(map(is_, current, opened.image)):
        return None
    session = object_session(obj)
    keys = None if session is None else session.info.get(SESSION_INFO_KEY)
    if not isinstance(keys, DataKeyCache):
        return None
    if not keys.holds(opened.case_id, opened.key):
        # The key cache was emptied (a savepoint or transaction ended, a key shredded):
        # the case's key is looked up again, as a first read would (MissingDataKeyError
        # once shredded); the same key checks the same image alike.
        key = keys.get(opened.case_id)
        if not hmac.compare_digest(key.material, opened.key.material):
            return None
        opened.key = key
    return opened


def _open_row(obj: object, field: EncryptedField[Any]) -> OpenedRow:
    """Check the row's seal over the ciphertexts the instance holds now (raise
    RowIntegrityError unless it matches) and start its :class:`OpenedRow`."""
    session = object_session(obj)
    if session is None:
        raise EncryptionContextError("cannot decrypt a row that is not in a session")
    case_id, _aad = field._aad(obj)  # caches the row's framed ids
    key = data_key_cache(session).get(case_id)
    stored = getattr(obj, ROW_SEAL_ATTR)
    blobs = _ciphertexts(obj)  # loads any expired or deferred ciphertext
    table, ids = _row_context(obj, field)
    _check_seal(key, type(obj), table, ids, stored, blobs, field.name_in_table)
    # Exactly the objects checked are cached: a read compares the instance's state with them.
    opened = OpenedRow(type(obj), field, key, ids, (blobs, stored), {})
    obj.__dict__[_OPENED_ATTRIBUTE] = opened
    return opened


def forget_opened_rows(session: Session, case_id: uuid.UUID) -> None:
    """Drop the values opened or written for ``case_id`` in every row of ``session``
    (the case's key was shredded: none of its plaintext may stay behind)."""
    for obj in session.identity_map.values():
        opened = obj.__dict__.get(_OPENED_ATTRIBUTE)
        if opened is not None and opened.case_id == case_id:
            del obj.__dict__[_OPENED_ATTRIBUTE]


def _check_seal(
    key: DataKey,
    model: type[Any],
    table: str,
    ids: RowIds,
    stored: bytes | None,
    blobs: Iterable[bytes | None],
    column: str,
) -> None:
    """Raise RowIntegrityError (naming ``column``) unless ``stored`` seals ``blobs``, the
    row's ciphertexts in :func:`sealed_columns` order."""
    if stored is None or len(stored) <= _COUNTER_BYTES:
        raise RowIntegrityError(table, column)
    stored = bytes(stored)
    prefix = stored[:_COUNTER_BYTES]  # the counter as row_seal writes it back
    expected = prefix + _row_mac(key, table, ids.aad, prefix, _column_frames(model), blobs)
    if not hmac.compare_digest(expected, stored):
        raise RowIntegrityError(table, column)


def read_sealed_columns(
    session: Session,
    model: type[Any],
    row_ids: RowIds,
    seal: bytes | None,
    ciphertexts: Mapping[str, bytes | None],
    names: Iterable[str],
) -> dict[str, Any]:
    """:func:`read_sealed` for a row selected as plain columns rather than loaded as an object
    (a list page of fifty cases): ``ciphertexts`` maps every sealed attribute of ``model``
    (:func:`sealed_attributes`) to its stored value, ``seal`` is the row's ``row_seal``.

    The same checks as reading the attributes of a loaded row: the seal over every
    sealed column first, then each value opened under the case's key and the row's ids.
    """
    fields = _fields_named(model, tuple(names))
    blobs = [ciphertexts[attr] for _column, attr in sealed_columns(model)]
    if seal is None and all(blob is None for blob in blobs):
        return dict.fromkeys((f.name for f in fields), None)  # erased
    key = data_key_cache(session).get(row_ids.case_id)
    table = model.__table__.name
    _check_seal(key, model, table, row_ids, seal, blobs, fields[0].name_in_table)
    values: dict[str, Any] = {}
    for field in fields:
        blob = ciphertexts[field.storage_attr]
        if blob is None:
            values[field.name] = None
            continue
        if not field._aad_prefix:
            field._aad_prefix = field_aad_prefix(table, field.name_in_table)
        plaintext = open_with_aad(key, blob, field._aad_prefix + row_ids.aad)
        values[field.name] = field.codec.decode(plaintext)
    return values


def read_sealed_rows(
    session: Session,
    model: type[Any],
    rows: Iterable[tuple[uuid.UUID, Sequence[Any]]],
    names: Iterable[str],
) -> list[dict[str, Any]]:
    """:func:`read_sealed_columns` for the rows of a page, each ``(case id, sealed)`` of a
    row whose id is its case's (a case): ``sealed`` holds the row's values of
    :func:`sealed_attributes`, in that order (every ciphertext, then the seal).

    The same checks in the same order, row by row: the case's key, the seal over every
    sealed column (:func:`_check_seal`'s bytes), then each value opened under the key.
    What all the rows share (the fields, the framing of the table and the columns, the
    key cache) is computed once rather than fifty times, and a row's seal is checked
    inline: at fifty rows a page, the calls cost as much as the HMAC.
    """
    fields = _fields_named(model, tuple(names))
    table = model.__table__.name
    columns = sealed_columns(model)
    position = {attr: i for i, (_column, attr) in enumerate(columns)}
    count = len(position)
    for field in fields:
        if not field._aad_prefix:
            field._aad_prefix = field_aad_prefix(table, field.name_in_table)
    opening = [(f.name, position[f.storage_attr], f._aad_prefix, f.codec.decode) for f in fields]
    erased_names = [f.name for f in fields]
    first_column = fields[0].name_in_table
    # row_seal's message: the framed domain and table, then length_prefixed(ids, counter)
    # (the ids framed as field_aad_ids: 40 bytes), then each column framed with its blob.
    seal_head = _seal_head(table) + _IDS_FRAME
    framed = [_framed_column(column) for column, _attr in columns]
    get_key = data_key_cache(session).get
    digest, compare = hmac.digest, hmac.compare_digest
    views: list[dict[str, Any]] = []
    add = views.append
    for case_id, sealed in rows:
        blobs, seal = sealed[:count], sealed[count]
        if seal is None and all(blob is None for blob in blobs):
            add(dict.fromkeys(erased_names))  # erased
            continue
        key = get_key(case_id)
        raw_id = case_id.bytes
        ids = _ID_FRAME + raw_id + _ID_FRAME + raw_id  # field_aad_ids(case_id, case_id)
        if seal is None or len(seal) <= _COUNTER_BYTES:
            raise RowIntegrityError(table, first_column)
        seal = bytes(seal)
        parts = [seal_head, ids, _COUNTER_FRAME, seal[:_COUNTER_BYTES]]
        for column_frame, blob in zip(framed, blobs, strict=True):
            parts.append(column_frame)
            if blob is None:
                parts.append(_NULL_MARKER)
            else:
                parts.append(len(blob).to_bytes(4, "big"))
                parts.append(blob)
        seal_key = key.row_seal_key
        if seal_key is None:
            seal_key = _row_seal_key(key)
        mac = digest(seal_key, b"".join(parts), "sha256")
        if not compare(seal[:_COUNTER_BYTES] + mac, seal):
            raise RowIntegrityError(table, first_column)
        values: dict[str, Any] = {}
        for name, at, aad_prefix, decode in opening:
            blob = blobs[at]
            values[name] = (
                None if blob is None else decode(open_with_aad(key, blob, aad_prefix + ids))
            )
        add(values)
    return views


_ID_FRAME = (16).to_bytes(4, "big")
_IDS_FRAME = (40).to_bytes(4, "big")  # the framed ids: two framed 16-byte UUIDs
_COUNTER_FRAME = _COUNTER_BYTES.to_bytes(4, "big")


def sealed_attributes(model: type[Any]) -> list[Any]:
    """The ciphertext column attributes of ``model`` and its ``row_seal``, to select them as
    columns for :func:`read_sealed_columns` (labelled by their storage attribute names)."""
    return [
        *(getattr(model, attr).label(attr) for _column, attr in sealed_columns(model)),
        getattr(model, ROW_SEAL_ATTR).label(ROW_SEAL_ATTR),
    ]


def _reseal_row(obj: object, session: Session, values: dict[str, Any] | None = None) -> None:
    """Recompute the row's seal after its sealed values were written (counter + 1).

    ``values`` (by field name, the plaintexts of the new image known to this process)
    become the row's :class:`OpenedRow`: reading back what was just written opens nothing.
    """
    blobs = _ciphertexts(obj)
    if all(blob is None for blob in blobs):
        setattr(obj, ROW_SEAL_ATTR, None)
        obj.__dict__.pop(_OPENED_ATTRIBUTE, None)
        return
    state = obj.__dict__
    for _column, attr in sealed_columns(type(obj)):
        if attr not in state:  # a new row's column never assigned: NULL, held like the others
            setattr(obj, attr, None)
    field = _model_fields(type(obj))[0]
    table, ids = _row_context(obj, field)
    key = data_key_cache(session).get(ids.case_id)
    previous = getattr(obj, ROW_SEAL_ATTR)
    counter = int.from_bytes(bytes(previous)[:_COUNTER_BYTES], "big") + 1 if previous else 1
    prefix = counter.to_bytes(_COUNTER_BYTES, "big")
    seal = prefix + _row_mac(key, table, ids.aad, prefix, _column_frames(type(obj)), blobs)
    setattr(obj, ROW_SEAL_ATTR, seal)
    opened = OpenedRow(type(obj), field, key, ids, (blobs, seal), values or {})
    obj.__dict__[_OPENED_ATTRIBUTE] = opened


def seal_new_row(obj: object, key: DataKey) -> dict[str, bytes | None]:
    """Seal a new row's assigned values for an INSERT written without the unit of work;
    returns its sealed columns and ``row_seal`` by column name.

    The same bytes as a flush of the new row (:func:`_seal_pending_values`, then
    :func:`_reseal_row` at counter 1): each assigned value encrypted under ``key`` with
    its column's and the row's associated data, a column never assigned NULL. The
    instance is left as that flush leaves it: ciphertexts and seal in its state (without
    attribute history: the caller makes it persistent as written), the plaintexts as its
    :class:`OpenedRow`, nothing pending. ``key`` is the case's key in the session's cache.
    """
    state = obj.__dict__
    pending: dict[str, bytes | None] = state.pop(PENDING_ATTRIBUTE, None) or {}
    model = type(obj)
    fields = _model_fields(model)
    first = fields[0]
    case_id, row_id = first._ids(obj)
    ids = RowIds(case_id, row_id)
    state[_AAD_IDS_ATTRIBUTE] = (case_id, row_id, ids.aad)
    table = first._table()
    columns: dict[str, bytes | None] = {}
    known: dict[str, Any] = {}
    for field in fields:
        encoded = pending.get(field.name)
        if encoded is None:
            blob = None
            known[field.name] = None
        else:
            if not field._aad_prefix:
                field._aad_prefix = field_aad_prefix(table, field.name_in_table)
            blob = seal_with_aad(key, encoded, field._aad_prefix + ids.aad)
            known[field.name] = _Plaintext(encoded)
        state[field.storage_attr] = columns[field.name_in_table] = blob
    order = sealed_columns(model)
    blobs = tuple(columns[column] for column, _attr in order)
    seal = None
    if any(blob is not None for blob in blobs):
        seal = _FIRST_COUNTER + _row_mac(
            key, table, ids.aad, _FIRST_COUNTER, _column_frames(model), blobs
        )
        state[_OPENED_ATTRIBUTE] = OpenedRow(model, first, key, ids, (blobs, seal), known)
    state[ROW_SEAL_ATTR] = columns[ROW_SEAL_COLUMN] = seal
    return columns


def sealed_models(base: Any) -> list[type[Any]]:
    """Every mapped class of ``base``'s registry that carries a row seal."""
    return sorted(
        (m.class_ for m in base.registry.mappers if ROW_SEAL_ATTR in vars(m.class_)),
        key=lambda model: model.__name__,
    )


def seal_unsealed_rows(session: Session, model: type[Any], *, limit: int = 500) -> int:
    """Give up to ``limit`` rows of ``model`` that have sealed values but no seal their first
    one; returns how many. Does not commit.

    For deployments upgraded from before row seals (migration 0012), once, before
    serving: it vouches for the rows as they are now. Rows of erased cases (every
    sealed column NULL) need none and are skipped.
    """
    seal_column = getattr(model, ROW_SEAL_ATTR)
    storages = [getattr(model, attr) for _column, attr in sealed_columns(model)]
    query = (
        select(model)
        .where(seal_column.is_(None), or_(*(column.is_not(None) for column in storages)))
        .limit(limit)
    )
    rows = list(session.scalars(query))
    for obj in rows:
        _reseal_row(obj, session)
    session.flush()
    return len(rows)
