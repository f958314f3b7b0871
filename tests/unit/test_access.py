"""Console access (pure): password and token hashes, roles, CSRF token comparison."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookstream.core.access import (
    AccessError,
    Action,
    Credential,
    Principal,
    Role,
    authenticate_password,
    authenticate_token,
    check_hash,
    hash_password,
    hash_token,
    same_token,
    verify_password,
    verify_token,
)

SALT = b"0123456789abcdef"


def test_a_password_verifies_against_its_hash_and_nothing_else() -> None:
    hashed = hash_password("correct horse", SALT)
    assert hashed.startswith("scrypt$16384$8$1$")
    check_hash(hashed)
    assert verify_password("correct horse", hashed)
    assert not verify_password("correct hors", hashed)
    assert not verify_password("", hashed)


def test_the_salt_makes_equal_passwords_hash_differently() -> None:
    assert hash_password("pw", SALT) != hash_password("pw", b"fedcba9876543210")


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=80))
def test_malformed_hashes_never_verify_and_never_raise(garbage: str) -> None:
    assert not verify_password("pw", garbage)
    assert not verify_password("pw", "scrypt$" + garbage)
    assert not verify_token("tok", garbage)


def test_a_hash_that_would_cost_too_much_is_refused() -> None:
    costly = hash_password("pw", SALT).replace("scrypt$16384$", f"scrypt${2**22}$")
    assert not verify_password("pw", costly)


def test_check_hash_names_what_it_wants() -> None:
    check_hash(hash_token("t"))
    with pytest.raises(AccessError, match="scrypt"):
        check_hash("plaintext-password")
    with pytest.raises(AccessError):
        check_hash("sha256$abc")


def test_tokens_verify_by_their_digest() -> None:
    digest = hash_token("s3cret-token")
    assert verify_token("s3cret-token", digest)
    assert not verify_token("s3cret-tokem", digest)
    assert not verify_token("s3cret-token", hash_password("s3cret-token", SALT))


def test_roles_read_only_may_do_nothing_operator_everything() -> None:
    reader = Principal("bob", Role.READ_ONLY)
    operator = Principal("alice", Role.OPERATOR)
    for action in Action:
        assert not reader.may(action)
        assert operator.may(action)


def test_authentication_by_password_and_by_token() -> None:
    credentials = (
        Credential("alice", Role.OPERATOR, hash_password("a-pw", SALT)),
        Credential("ci", Role.READ_ONLY, hash_token("ci-token")),
    )
    assert authenticate_password(credentials, "alice", "a-pw") == Principal("alice", Role.OPERATOR)
    assert authenticate_password(credentials, "alice", "wrong") is None
    assert authenticate_password(credentials, "nobody", "a-pw") is None
    # A token is not a password: naming the token's entry with it does not sign in.
    assert authenticate_password(credentials, "ci", "ci-token") is None
    assert authenticate_token(credentials, "ci-token") == Principal("ci", Role.READ_ONLY)
    assert authenticate_token(credentials, "a-pw") is None


def test_csrf_tokens_must_both_be_present_and_equal() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abc", "abd")
    assert not same_token("abc", None)
    assert not same_token(None, None)
    assert not same_token("", "")
