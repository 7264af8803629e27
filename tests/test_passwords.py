"""Passwords are stored with Argon2 at Django's strength; older hashes still sign in."""

import pytest
from django.conf import settings as live_settings
from django.contrib.auth.hashers import (
    Argon2PasswordHasher,
    get_hasher,
    identify_hasher,
    make_password,
)
from django.test import override_settings

import turingtest.settings as production

PASSWORD = "a long reader passphrase 7"


def test_production_hashes_with_argon2_at_djangos_strength():
    with override_settings(PASSWORD_HASHERS=production.PASSWORD_HASHERS):
        hasher = identify_hasher(make_password(PASSWORD))
        assert hasher.algorithm == "argon2"
        default = Argon2PasswordHasher()
        assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (
            default.time_cost,
            default.memory_cost,
            default.parallelism,
        )
    assert live_settings.PASSWORD_HASHERS != production.PASSWORD_HASHERS  # tests' own


@pytest.mark.django_db
def test_a_password_stored_with_pbkdf2_signs_in_and_is_upgraded(django_user_model):
    with override_settings(PASSWORD_HASHERS=production.PASSWORD_HASHERS):
        user = django_user_model.objects.create(username="older@example.org")
        user.password = make_password(PASSWORD, hasher=get_hasher("pbkdf2_sha256"))
        user.save()
        assert not user.check_password("wrong")
        assert user.check_password(PASSWORD)  # as sign-in checks it
        user.refresh_from_db()
        assert identify_hasher(user.password).algorithm == "argon2"
