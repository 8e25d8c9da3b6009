"""Unwrapped data keys for one unit of work, so each case's key is unwrapped once.

A request that lists 40 members of one household should unwrap that case's
key once, not 40 times; and unwrapped keys should not outlive the request.
The session wiring in :mod:`casework.security.case_keys` empties the cache
when the transaction ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from casework.security.envelope import DataKey, WrappedKey, unwrap_data_key
from casework.security.errors import MissingDataKeyError
from casework.security.keyring import Keyring

WrappedKeyLoader = Callable[[uuid.UUID], WrappedKey | None]
"""Returns a case's stored wrapped key, or None if the case has none."""


class DataKeyCache:
    """Maps case ids to unwrapped :class:`DataKey` objects, loading them on first use.

    ``unwraps`` counts KEK unwrap operations over the cache's lifetime, for
    tests and metrics.
    """

    def __init__(self, keyring: Keyring, load_wrapped: WrappedKeyLoader) -> None:
        self.keyring = keyring
        self._load_wrapped = load_wrapped
        self._keys: dict[uuid.UUID, DataKey] = {}
        self._wrapped: dict[uuid.UUID, WrappedKey] = {}
        self.unwraps = 0

    def __repr__(self) -> str:
        return f"DataKeyCache(cached={len(self._keys)}, unwraps={self.unwraps})"

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._keys

    def get(self, case_id: uuid.UUID) -> DataKey:
        """Return the case's data key; raise MissingDataKeyError if the case has none."""
        key = self._keys.get(case_id)
        if key is None:
            wrapped = self._wrapped.pop(case_id, None) or self._load_wrapped(case_id)
            if wrapped is None:
                raise MissingDataKeyError(
                    "the case has no data key: it was never provisioned or it was shredded"
                )
            key = DataKey(unwrap_data_key(self.keyring, wrapped, case_id))
            self.unwraps += 1
            self._keys[case_id] = key
        return key

    def holds(self, case_id: uuid.UUID, data_key: DataKey) -> bool:
        """Whether ``data_key`` is still the case's cached key (not forgotten, not cleared)."""
        return self._keys.get(case_id) is data_key

    def prime(self, wrapped_keys: dict[uuid.UUID, WrappedKey]) -> None:
        """Hold wrapped keys read together with their cases, to unwrap on first use.

        Saves the one SELECT per case that :meth:`get` would otherwise issue;
        nothing is unwrapped until a field of the case is read.
        """
        for case_id, wrapped in wrapped_keys.items():
            if case_id not in self._keys:
                self._wrapped[case_id] = wrapped

    def remember(self, case_id: uuid.UUID, data_key: DataKey) -> None:
        """Cache a key created in this unit of work, which has nothing to unwrap yet."""
        self._keys[case_id] = data_key

    def forget(self, case_id: uuid.UUID) -> None:
        """Drop one case's key, e.g. after it was shredded."""
        self._keys.pop(case_id, None)
        self._wrapped.pop(case_id, None)

    def clear(self) -> None:
        """Drop every cached key (the unit of work ended)."""
        self._keys.clear()
        self._wrapped.clear()
