import unicodedata

import argon2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.auth import passwords
from casework.auth.passwords import (
    DEFAULT_PARAMS,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    PasswordParams,
    PasswordPolicyError,
    PolicyViolation,
    check_password_policy,
    dummy_hash,
    hash_password,
    is_common_password,
    needs_rehash,
    policy_violations,
    verify_dummy,
    verify_password,
)

# Cheap costs keep the suite fast; only the OWASP test looks at the defaults.
CHEAP = PasswordParams(memory_kib=64, time_cost=1)
OTHER_CHEAP = PasswordParams(memory_kib=128, time_cost=1)
GOOD = "violet-harbour-lantern-41"


def fullwidth(ascii_text: str) -> str:
    """Return the text in fullwidth forms, as East Asian keyboards may type it."""
    return "".join(chr(ord(c) + 0xFEE0) for c in ascii_text)


def test_defaults_meet_owasp_minimum() -> None:
    assert DEFAULT_PARAMS.memory_kib >= 19 * 1024
    assert DEFAULT_PARAMS.time_cost >= 2
    assert DEFAULT_PARAMS.parallelism >= 1
    assert DEFAULT_PARAMS.meets_owasp_minimum()
    assert not CHEAP.meets_owasp_minimum()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"time_cost": 0},
        {"parallelism": 0},
        {"memory_kib": 15, "parallelism": 2},
        {"hash_len": 8},
        {"salt_len": 8},
    ],
)
def test_params_refuse_unusable_values(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="argon2"):
        PasswordParams(**kwargs)


def test_hash_is_argon2id_with_the_given_costs_and_a_fresh_salt() -> None:
    first = hash_password(GOOD, CHEAP)
    second = hash_password(GOOD, CHEAP)
    assert first.startswith("$argon2id$")
    assert first != second
    stored = argon2.extract_parameters(first)
    assert (stored.memory_cost, stored.time_cost, stored.parallelism) == (64, 1, 1)
    assert GOOD not in first


def test_verify_accepts_the_password_and_refuses_others() -> None:
    stored = hash_password(GOOD, CHEAP)
    assert verify_password(stored, GOOD, CHEAP) is True
    assert verify_password(stored, GOOD + " ", CHEAP) is False
    assert verify_password(stored, GOOD.upper(), CHEAP) is False


def test_verify_uses_the_costs_recorded_in_the_hash() -> None:
    stored = hash_password(GOOD, OTHER_CHEAP)
    assert verify_password(stored, GOOD, CHEAP) is True


def test_equivalent_unicode_forms_verify() -> None:
    composed = "café-au-lait-ﬁeld-2024"  # precomposed é, "fi" ligature
    decomposed = "cafe\u0301-au-lait-field-2024"
    stored = hash_password(composed, CHEAP)
    assert verify_password(stored, decomposed, CHEAP) is True


def test_lone_surrogate_hashes_and_verifies_without_error() -> None:
    odd = "harbour-lantern-\ud800"
    stored = hash_password(odd, CHEAP)
    assert verify_password(stored, odd, CHEAP) is True
    assert verify_password(stored, "harbour-lantern-", CHEAP) is False
    assert verify_password(stored, "harbour-lantern-?", CHEAP) is False


def test_other_argon2_variants_are_refused() -> None:
    argon2i = argon2.PasswordHasher(memory_cost=64, time_cost=1, type=argon2.Type.I)
    assert verify_password(argon2i.hash(GOOD), GOOD, CHEAP) is False


@settings(max_examples=40, deadline=None)
@given(
    stored=st.one_of(
        st.text(max_size=120),
        st.text(max_size=80).map(lambda tail: "$argon2id$" + tail),
        st.sampled_from(
            [
                "",
                "!",
                "$argon2id$",
                "$argon2id$v=19$m=abc,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
                "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$",
                "$argon2id$v=19$m=64,t=1,p=1$!!!$aGFzaGhhc2g",
            ]
        ),
    ),
    password=st.text(max_size=30),
)
def test_malformed_hashes_answer_false_and_never_raise(stored: str, password: str) -> None:
    assert verify_password(stored, password, CHEAP) is False
    assert needs_rehash(stored, CHEAP) is True


def test_needs_rehash_when_costs_change() -> None:
    stored = hash_password(GOOD, CHEAP)
    assert needs_rehash(stored, CHEAP) is False
    assert needs_rehash(stored, OTHER_CHEAP) is True
    assert needs_rehash(stored, DEFAULT_PARAMS) is True


def test_dummy_hash_is_computed_once_per_params_with_those_params() -> None:
    assert dummy_hash(CHEAP) is dummy_hash(CHEAP)
    assert dummy_hash(CHEAP) != dummy_hash(OTHER_CHEAP)
    assert argon2.extract_parameters(dummy_hash(OTHER_CHEAP)).memory_cost == 128


def test_verify_dummy_always_refuses() -> None:
    assert verify_dummy(GOOD, CHEAP) is False
    assert verify_dummy("", CHEAP) is False


def test_common_password_list_is_bundled_and_large() -> None:
    common = passwords._common_passwords()
    assert len(common) >= 10_000
    assert {"password", "123456", "qwerty"} <= common
    assert all(entry == entry.casefold() and not entry.startswith("#") for entry in common)


@pytest.mark.parametrize(
    "candidate",
    ["PASSWORD", "Password2024!!", "  qwerty123  ", fullwidth("password1234"), "1234567890qwerty"],
)
def test_common_passwords_and_decorated_ones_are_detected(candidate: str) -> None:
    assert is_common_password(candidate)


@pytest.mark.parametrize("candidate", [GOOD, "2024!!", "Tr0ub4dor&3-horse-staple"])
def test_uncommon_passwords_pass_the_list(candidate: str) -> None:
    assert not is_common_password(candidate)


@pytest.mark.parametrize(
    ("password", "username", "expected"),
    [
        (GOOD, "amira.haddad", []),
        ("short-1", "amira.haddad", [PolicyViolation.TOO_SHORT]),
        (
            "x" * (MAX_PASSWORD_LENGTH + 1),
            "amira.haddad",
            [PolicyViolation.TOO_LONG, PolicyViolation.REPEATED_CHARACTER],
        ),
        ("password1234", "amira.haddad", [PolicyViolation.TOO_COMMON]),
        ("Amira.Haddad-of-the-north", "amira.haddad", [PolicyViolation.CONTAINS_USERNAME]),
        (
            fullwidth("amira") + ".haddad-of-the-north",
            "AMIRA.HADDAD",
            [PolicyViolation.CONTAINS_USERNAME],
        ),
        ("kkkkkkkkkkkkkkk", "amira.haddad", [PolicyViolation.REPEATED_CHARACTER]),
        ("", "amira.haddad", [PolicyViolation.TOO_SHORT]),
        (
            "qwerty",
            "qwerty",
            [
                PolicyViolation.TOO_SHORT,
                PolicyViolation.TOO_COMMON,
                PolicyViolation.CONTAINS_USERNAME,
            ],
        ),
        # A username too short to search for would forbid most passphrases.
        ("al-fresco-lantern-7", "al", []),
    ],
)
def test_policy_lists_every_broken_rule(
    password: str, username: str, expected: list[PolicyViolation]
) -> None:
    assert policy_violations(password, username) == expected


def test_length_counts_code_points_after_nfkc() -> None:
    # Eleven characters typed, but the ligature "ﬃ" is three after NFKC: 13 in all.
    assert PolicyViolation.TOO_SHORT not in policy_violations("ﬃ-harbour-9", "someone")
    # Twelve combining sequences compose to twelve code points: long enough.
    assert PolicyViolation.TOO_SHORT not in policy_violations("e\u0301" * 6 + "ölände", "x")
    # Eleven code points stay too short whatever the byte length.
    assert PolicyViolation.TOO_SHORT in policy_violations("ß∂ƒ©∆¬æ≈øπµ", "someone")


def test_check_raises_with_reasons_that_hold_no_secret() -> None:
    with pytest.raises(PasswordPolicyError) as caught:
        check_password_policy("zaytuna-1", "zaytuna")
    assert caught.value.reasons == [PolicyViolation.TOO_SHORT, PolicyViolation.CONTAINS_USERNAME]
    assert "zaytuna" not in str(caught.value)


def test_check_accepts_a_good_password() -> None:
    check_password_policy(GOOD, "amira.haddad")


@settings(max_examples=60, deadline=None)
@given(password=st.text(max_size=40), username=st.text(min_size=3, max_size=12))
def test_policy_verdict_is_consistent_with_its_rules(password: str, username: str) -> None:
    violations = policy_violations(password, username)
    normalised = unicodedata.normalize("NFKC", password)
    assert (PolicyViolation.TOO_SHORT in violations) == (len(normalised) < MIN_PASSWORD_LENGTH)
    assert (PolicyViolation.REPEATED_CHARACTER in violations) == (len(set(normalised)) == 1)
    if violations:
        with pytest.raises(PasswordPolicyError) as caught:
            check_password_policy(password, username)
        assert caught.value.reasons == violations
    else:
        check_password_policy(password, username)


ASCII_DECORATION = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E))


@settings(max_examples=60, deadline=None)
@given(
    prefix=ASCII_DECORATION.filter(lambda text: len(text) <= 6),
    username=st.text(
        alphabet=st.characters(codec="utf-8", categories=["Ll", "Lu", "Lo", "Nd"]),
        min_size=3,
        max_size=10,
    ),
    suffix=ASCII_DECORATION.filter(lambda text: 12 <= len(text) <= 20),
)
def test_username_inside_is_always_refused(prefix: str, username: str, suffix: str) -> None:
    assert PolicyViolation.CONTAINS_USERNAME in policy_violations(
        prefix + username + suffix, username
    )


@settings(max_examples=40, deadline=None)
@given(
    username=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.", min_size=3, max_size=12),
    swaps=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_username_is_found_whatever_its_case(username: str, swaps: list[bool]) -> None:
    mixed = "".join(c.upper() if swap else c for c, swap in zip(username, swaps, strict=False))
    assert PolicyViolation.CONTAINS_USERNAME in policy_violations(f"my-{mixed}-key!", username)
