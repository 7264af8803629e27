"""Sessions read with the signed-in user's cached row (turingtest.sessions)."""

from django.conf import settings

from turingtest.sessions import SessionStore, remember_user_of_session


def _session_key(client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_a_readers_session_comes_with_their_row_once_seen(reader_client, enrollment):
    key = _session_key(reader_client)
    assert SessionStore(key).user_beside is None  # not yet seen in this process
    assert reader_client.get("/").status_code == 200
    store = SessionStore(key)
    store.load()
    assert store.user_beside == enrollment.reader.user


def test_a_deactivated_reader_is_signed_out_at_the_next_request(reader_api, enrollment):
    assert reader_api.next().status_code == 200  # session and row now read together
    user = enrollment.reader.user
    user.is_active = False
    user.save()
    assert reader_api.next().status_code == 401


def test_a_row_read_beside_a_session_is_never_another_users(
    reader_api, enrollment, make_reader, study
):
    assert reader_api.next().status_code == 200
    other = make_reader(study).reader.user
    reader_api.client.force_login(other)  # a new session key, now other's
    key = _session_key(reader_api.client)
    # Whatever this process believes about the key, the session names its user.
    remember_user_of_session(key, enrollment.reader.user.pk)
    store = SessionStore(key)
    store.load()
    assert store.user_beside == enrollment.reader.user  # read, as a candidate only
    response = reader_api.client.get("/")
    assert response.wsgi_request.user == other
