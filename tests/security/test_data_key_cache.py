import uuid

import pytest

from casework.security.data_key_cache import DataKeyCache
from casework.security.envelope import DataKey, WrappedKey, new_data_key, wrap_data_key
from casework.security.errors import DecryptionError, MissingDataKeyError
from casework.security.keyring import Keyring


class Store:
    """Wrapped keys by case, counting loads like database reads."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.wrapped: dict[uuid.UUID, WrappedKey] = {}
        self.material: dict[uuid.UUID, bytes] = {}
        self.loads = 0

    def add_case(self) -> uuid.UUID:
        case_id = uuid.uuid4()
        self.material[case_id] = new_data_key()
        self.wrapped[case_id] = wrap_data_key(self.keyring, self.material[case_id], case_id)
        return case_id

    def load(self, case_id: uuid.UUID) -> WrappedKey | None:
        self.loads += 1
        return self.wrapped.get(case_id)


@pytest.fixture
def store() -> Store:
    return Store(Keyring.generate())


def test_each_case_key_is_unwrapped_once(store: Store) -> None:
    cases = [store.add_case() for _ in range(3)]
    cache = DataKeyCache(store.keyring, store.load)
    for _ in range(5):
        for case_id in cases:
            assert cache.get(case_id).material == store.material[case_id]
    assert cache.unwraps == 3
    assert store.loads == 3
    assert len(cache) == 3
    assert repr(cache) == "DataKeyCache(cached=3, unwraps=3)"


def test_remembered_keys_need_no_unwrap(store: Store) -> None:
    cache = DataKeyCache(store.keyring, store.load)
    case_id, key = uuid.uuid4(), DataKey(new_data_key())
    cache.remember(case_id, key)
    assert cache.get(case_id) is key
    assert case_id in cache
    assert (cache.unwraps, store.loads) == (0, 0)


def test_forget_and_clear_make_the_next_read_unwrap_again(store: Store) -> None:
    first, second = store.add_case(), store.add_case()
    cache = DataKeyCache(store.keyring, store.load)
    cache.get(first)
    cache.get(second)
    cache.forget(first)
    assert first not in cache
    assert second in cache
    cache.get(first)
    cache.clear()
    assert len(cache) == 0
    cache.get(second)
    assert cache.unwraps == 4


def test_a_case_without_a_key_raises(store: Store) -> None:
    cache = DataKeyCache(store.keyring, store.load)
    with pytest.raises(MissingDataKeyError, match="never provisioned or it was shredded"):
        cache.get(uuid.uuid4())
    assert cache.unwraps == 0


def test_a_wrapped_key_of_another_case_is_rejected(store: Store) -> None:
    first, second = store.add_case(), store.add_case()
    cache = DataKeyCache(store.keyring, lambda case_id: store.wrapped[first])
    assert cache.get(first)
    with pytest.raises(DecryptionError):
        cache.get(second)
