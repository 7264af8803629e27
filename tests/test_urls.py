"""Who gets in: invitations, guessing, passwords, CSRF, production settings, CSP."""

import json
import math
import os
import re
import secrets
import string
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from tests.conftest import PASSWORD, ReaderAPI
from turingtest.studies import services
from turingtest.studies.models import Invitation, Judgment, Study

ROOT = Path(__file__).resolve().parents[1]
URLSAFE = set(string.ascii_letters + string.digits + "-_")


def signup_form(email: str, password: str = PASSWORD) -> dict:
    return {
        "name": "Dr Test",
        "email": email,
        "password": password,
        "password_again": password,
        "profession": "radiologist",
        "experience_years": "5",
    }


# --- invitations ----------------------------------------------------------------


def test_invitation_links_cannot_be_guessed(study):
    created = services.invitations_create(study=study, count=200)
    tokens = [token for _, token in created]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert set(token) <= URLSAFE
        # URL-safe base64: 6 bits a character, from the OS's CSPRNG.
        assert len(token) * math.log2(64) >= 190
    # Characters are spread over the whole alphabet, as random tokens would be.
    seen = "".join(tokens)
    assert len(set(seen)) == 64
    assert max(seen.count(c) for c in set(seen)) < 3 * len(seen) / 64
    # Only a hash is stored: the database cannot give a link back.
    stored = set(Invitation.objects.values_list("token_hash", flat=True))
    assert not stored & set(tokens) and all(len(h) == 64 for h in stored)


def test_wrong_used_expired_and_closed_links_look_the_same(
    study, make_study, client, django_capture_on_commit_callbacks
):
    fresh = lambda s=study: services.invitations_create(study=s)[0]  # noqa: E731
    used_inv, used = fresh()
    sign_up_by_mail(used, "a@example.org", django_capture_on_commit_callbacks)
    expired_inv, expired = fresh()
    Invitation.objects.filter(pk=expired_inv.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    closed_study = make_study(slug="closed", seed=3)
    _, closed = fresh(closed_study)
    services.study_close(study=closed_study)
    wrong = secrets.token_urlsafe(24)
    bodies = set()
    for n, token in enumerate((wrong, used, expired, closed, "x", "a" * 300)):
        for method in ("get", "post"):
            # From separate addresses, so the lockout for guessing stays out of it.
            visitor = Client(REMOTE_ADDR=f"10.0.{n}.{len(method)}")
            response = getattr(visitor, method)(
                f"/invite/{token}/", signup_form("b@example.org")
            )
            assert response.status_code == 404, (token, method)
            bodies.add(response.content)
    assert len(bodies) == 1
    assert b"not valid" in bodies.pop()
    assert Invitation.objects.filter(used_at__isnull=False).count() == 1


def sign_up_by_mail(token: str, email: str, capture) -> Client:
    """Sign up through an anonymous link and confirm from the mail, as a reader
    does. ``capture``: pytest-django's ``django_capture_on_commit_callbacks``,
    as mails go out when the transaction commits."""
    from django.core import mail

    client = Client()
    with capture(execute=True):
        sent = client.post(f"/invite/{token}/", signup_form(email))
    assert sent.status_code == 302 and sent["Location"] == "/accounts/signup/sent/"
    (message,) = [m for m in mail.outbox if m.to == [email.lower()]][-1:]
    link = re.search(r"https?://[^/\s]+(/accounts/signup/confirm/\S+/)", message.body)
    assert link, message.body
    confirmed = client.post(link.group(1), {"password": PASSWORD})
    assert confirmed.status_code == 302, confirmed.content
    return client


def test_an_invitation_signs_up_exactly_one_reader(
    study, django_user_model, django_capture_on_commit_callbacks
):
    _, token = services.invitations_create(study=study)[0]
    sign_up_by_mail(token, "one@example.org", django_capture_on_commit_callbacks)
    second = Client().post(f"/invite/{token}/", signup_form("two@example.org"))
    assert second.status_code == 404
    assert not django_user_model.objects.filter(username="two@example.org").exists()


def test_signup_does_not_tell_which_addresses_have_accounts(
    study, enrollment, django_user_model, django_capture_on_commit_callbacks
):
    from django.core import mail

    taken = enrollment.reader.user.email
    (taken_inv, for_taken), (_, for_new) = services.invitations_create(
        study=study, count=2
    )
    answers = []
    for token, email in ((for_taken, taken.upper()), (for_new, "new@example.org")):
        client = Client()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/invite/{token}/", signup_form(email))
        answers.append((response.status_code, response["Location"]))
        page = client.get(response["Location"])
        answers.append((page.status_code, page.content))
        assert "_auth_user_id" not in client.session
    # The link holder sees exactly the same thing either way.
    assert answers[0] == answers[2] and answers[1] == answers[3]
    assert answers[0] == (302, "/accounts/signup/sent/")
    # The address's owner is told by mail; nothing about the account changed.
    (to_owner,) = [m for m in mail.outbox if m.to == [taken]]
    assert "already has an account" in to_owner.body
    assert f"/invite/{for_taken}/" in to_owner.body
    owner = Client()
    login = {"username": taken, "password": PASSWORD}
    assert owner.post("/accounts/login/", login).status_code == 302
    taken_inv.refresh_from_db()
    assert taken_inv.used_at is None
    # The new address confirms from its mail, and only then is it a reader.
    assert not django_user_model.objects.get(username="new@example.org").is_active
    (to_new,) = [m for m in mail.outbox if m.to == ["new@example.org"]]
    link = re.search(r"https?://[^/\s]+(/accounts/signup/confirm/\S+/)", to_new.body)
    reader = Client()
    assert "Confirm and continue" in reader.get(link.group(1)).content.decode()
    # The link alone is not enough: the password chosen at sign-up is asked.
    wrong = reader.post(link.group(1), {"password": "not-the-one-chosen"})
    assert wrong.status_code == 409
    assert not django_user_model.objects.get(username="new@example.org").is_active
    confirmed = reader.post(link.group(1), {"password": PASSWORD})
    assert confirmed.status_code == 302
    assert confirmed["Location"] == f"/s/{study.slug}/"
    assert reader.get(confirmed["Location"]).status_code == 200
    # The link works once.
    assert Client().get(link.group(1)).status_code == 404


@pytest.mark.parametrize(
    "password, problem",
    [
        ("short1!", "too short"),
        ("password123", "too common"),
        ("8203948571203", "entirely numeric"),
        ("dr.smith.knee@example.org", "too similar"),
    ],
)
def test_sign_up_refuses_weak_passwords(study, django_user_model, password, problem):
    _, token = services.invitations_create(study=study)[0]
    form = signup_form("dr.smith.knee@example.org", password)
    response = Client().post(f"/invite/{token}/", form)
    assert response.status_code == 200
    assert problem in response.content.decode()
    assert not django_user_model.objects.filter(username=form["email"]).exists()
    assert (
        Invitation.objects.get(token_hash=services._token_hash(token)).used_at is None
    )


# --- guessing passwords and links ---------------------------------------------------


def test_login_locks_out_after_repeated_failures(enrollment):
    limit = django_settings.AXES_FAILURE_LIMIT
    assert 3 <= limit <= 10
    client = Client()
    username = enrollment.reader.user.username
    for _ in range(limit - 1):
        response = client.post(
            "/accounts/login/", {"username": username, "password": "wrong-guess-1"}
        )
        assert response.status_code == 200  # the form again, with its error
    locked = client.post(
        "/accounts/login/", {"username": username, "password": "wrong-guess-2"}
    )
    assert locked.status_code == 429
    # Now even the right password is refused, and no session is made.
    right = client.post(
        "/accounts/login/", {"username": username, "password": PASSWORD}
    )
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not locked out with it.
    other = Client().get("/accounts/login/")
    assert other.status_code == 200


def behind_nginx(client_ip: str, claimed: str = "") -> Client:
    """A browser at ``client_ip`` reaching gunicorn through nginx on this host:
    nginx appends the address it saw to whatever X-Forwarded-For the client sent."""
    forwarded = f"{claimed}, {client_ip}" if claimed else client_ip
    return Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)


def test_password_guessing_locks_that_account_out_only_from_that_address(
    staff_client, django_user_model
):
    limit = django_settings.AXES_FAILURE_LIMIT
    owner = django_user_model.objects.get(username="staff@example.org")
    wrong = {"username": owner.username, "password": "wrong-guess"}
    attacker = behind_nginx("203.0.113.9")
    for _ in range(limit - 1):
        assert attacker.post("/accounts/login/", wrong).status_code == 200
    assert attacker.post("/accounts/login/", wrong).status_code == 429
    right = {"username": owner.username, "password": PASSWORD}
    assert attacker.post("/accounts/login/", right).status_code == 429
    # Claiming to be someone else does not help: nginx appends the real address,
    # and a client that is not a trusted proxy has its header ignored.
    spoofed = behind_nginx("203.0.113.9", claimed="198.51.100.4")
    assert spoofed.post("/accounts/login/", right).status_code == 429
    direct = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert direct.post("/accounts/login/", right).status_code == 429
    # The owner, through the same nginx from elsewhere, signs in as usual.
    elsewhere = behind_nginx("198.51.100.4")
    response = elsewhere.post("/accounts/login/", right)
    assert response.status_code == 302
    assert elsewhere.session["_auth_user_id"] == str(owner.pk)


def test_guessing_invitation_links_backs_off_instead_of_locking_out(study, settings):
    settings.TURINGTEST = settings.TURINGTEST | {
        "INVITATION_GUESSES_FREE": 3,
        "INVITATION_GUESS_BACKOFF_SECONDS": 1.0,
    }
    guesser = behind_nginx("203.0.113.7")
    guess = lambda: guesser.get(f"/invite/{secrets.token_urlsafe(24)}/")  # noqa: E731
    for _ in range(4):
        assert guess().status_code == 404
    # The fourth wrong link costs a second's wait; during it even a valid link
    # is not looked at, so a lucky guess is not told apart from a wrong one.
    _, token = services.invitations_create(study=study)[0]
    waiting = guesser.get(f"/invite/{token}/")
    assert waiting.status_code == 429
    assert waiting["Retry-After"] == "1"
    assert "Wait 1 second" in waiting.content.decode()
    # Readers behind the same proxy are not held up by it.
    assert behind_nginx("198.51.100.20").get(f"/invite/{token}/").status_code == 200
    time.sleep(1.1)
    # No hour-long lockout: after the wait the address may try again ...
    assert guesser.get(f"/invite/{token}/").status_code == 200
    # ... and each further wrong link doubles the wait.
    assert guess().status_code == 404
    time.sleep(1.2)
    assert guess().status_code == 429
    time.sleep(1.0)
    assert guess().status_code == 404
    assert int(guess()["Retry-After"]) in (3, 4)  # 4 s, less the time taken


def test_used_and_expired_links_are_not_counted_as_guesses(
    study, settings, django_capture_on_commit_callbacks
):
    settings.TURINGTEST = settings.TURINGTEST | {"INVITATION_GUESSES_FREE": 3}
    (_, used), (expired_inv, expired), (_, fresh) = services.invitations_create(
        study=study, count=3
    )
    sign_up_by_mail(used, "u@example.org", django_capture_on_commit_callbacks)
    Invitation.objects.filter(pk=expired_inv.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    # A reader behind the proxy clicks old links again and again.
    reader = behind_nginx("198.51.100.30")
    for _ in range(12):
        assert reader.get(f"/invite/{used}/").status_code == 404
        assert (
            reader.post(f"/invite/{expired}/", signup_form("e@example.org")).status_code
            == 404
        )
    assert reader.get(f"/invite/{fresh}/").status_code == 200


# --- CSRF -------------------------------------------------------------------------


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern)


def _concrete(pattern: str, values: dict) -> str:
    path = re.sub(
        r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values.get(m.group(1), 1)), pattern
    )
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values.get(m.group(1), 1)), path)
    return "/" + path.replace("^", "").replace("$", "").replace("\\Z", "").replace(
        "\\", ""
    )


def _row_counts() -> dict[str, int]:
    skip = {"sessions", "axes", "admin"}
    return {
        m._meta.label: m.objects.count()
        for m in apps.get_models()
        if m._meta.app_label not in skip
    }


def test_every_state_changing_request_needs_the_csrf_token(
    study, enrollment, staff_client
):
    values = {
        "slug": study.slug,
        "token": study.cases.first().token,
        "stage": 1,
        "position": 0,
        "object_id": study.pk,
        "app_label": "studies",
    }
    reader = Client(enforce_csrf_checks=True)
    reader.force_login(enrollment.reader.user)
    staff = Client(enforce_csrf_checks=True)
    staff.cookies = staff_client.cookies
    anonymous = Client(enforce_csrf_checks=True)
    ReaderAPI(reader, study.slug).next()  # the reader has started reading
    _, token = services.invitations_create(study=study)[0]
    before = _row_counts()
    status_before = Study.objects.get(pk=study.pk).status
    checked = 0
    for pattern in _walk(get_resolver().url_patterns):
        url = _concrete(pattern, values)
        if pattern.startswith("invite/"):
            url = f"/invite/{token}/"
        for who, client in (("reader", reader), ("staff", staff), ("anon", anonymous)):
            for method in ("post", "put", "patch", "delete"):
                body = json.dumps({"stage": "practice", "position": 0, "kl_grade": 1})
                response = getattr(client, method)(
                    url, body, content_type="application/json"
                )
                checked += 1
                if response.status_code == 302 and who != "staff":
                    # A staff page sends everyone else to sign in first.
                    assert "login" in response["Location"], (url, who, method)
                    continue
                assert response.status_code == 403, (url, who, method)
    assert checked > 100
    assert _row_counts() == before
    assert Study.objects.get(pk=study.pk).status == status_before

    # The same answer with the token from the cookie goes through: the 403s
    # above were the CSRF check, not something else.
    reader.get(f"/s/{study.slug}/read/")  # the reading page hands out the token
    csrf = reader.cookies["csrftoken"].value
    api = f"/api/v1/studies/{study.slug}/answers"
    body = json.dumps({"stage": "practice", "position": 0, "kl_grade": 1})
    ok = reader.post(api, body, content_type="application/json", HTTP_X_CSRFTOKEN=csrf)
    assert ok.status_code == 201
    assert Judgment.objects.count() == 1


# --- production settings ------------------------------------------------------------


def production_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DEBUG="False",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="turingtest.example.org",
        DJANGO_SETTINGS_MODULE="turingtest.settings",
    )
    return env


def test_check_deploy_is_clean_in_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


PRODUCTION_PROBE = """
import django
django.setup()
from django.conf import settings
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
response = Client().get("/accounts/login/", secure=True, HTTP_HOST="turingtest.example.org")
cookie = response.cookies["csrftoken"]
print(json.dumps({
    "status": response.status_code,
    "csrf_cookie_secure": bool(cookie["secure"]),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "session_cookie_httponly": settings.SESSION_COOKIE_HTTPONLY,
    "hsts": response.headers.get("Strict-Transport-Security", ""),
    "csp": response.headers.get("Content-Security-Policy", ""),
    "plain_http": Client().get("/accounts/login/", HTTP_HOST="turingtest.example.org").status_code,
    "debug": settings.DEBUG,
}))
"""


def test_production_cookies_are_secure_and_https_is_enforced(tmp_path):
    env = production_env() | {"STATIC_ROOT": str(tmp_path / "static")}
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collect.returncode == 0, collect.stderr
    result = subprocess.run(
        [sys.executable, "-c", "import json\n" + PRODUCTION_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["status"] == 200 and seen["debug"] is False
    assert seen["csrf_cookie_secure"] and seen["session_cookie_secure"]
    assert seen["session_cookie_httponly"]
    assert "max-age=31536000" in seen["hsts"]
    assert seen["plain_http"] == 301  # redirected to HTTPS
    assert "script-src 'self'" in seen["csp"]


# --- Content-Security-Policy ------------------------------------------------------


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def test_pages_carry_a_csp_without_inline_script(
    study, enrollment, staff_client, client
):
    reader = Client()
    reader.force_login(enrollment.reader.user)
    _, token = services.invitations_create(study=study)[0]
    pages = [
        (client, "/accounts/login/"),
        (client, f"/invite/{token}/"),
        (client, "/invite/wrong/"),
        (reader, "/"),
        (reader, f"/s/{study.slug}/"),
        (reader, f"/s/{study.slug}/read/"),
        (staff_client, f"/staff/studies/{study.slug}/"),
        (staff_client, "/staff/images/upload/"),
        (staff_client, "/admin/"),
        (staff_client, f"/admin/studies/study/{study.pk}/change/"),
        (staff_client, "/admin/studies/study/add/"),
        (staff_client, f"/admin/studies/study/{study.pk}/delete/"),
    ]
    for who, url in pages:
        response = who.get(url, follow=True)
        assert response.status_code in (200, 404), (url, response.status_code)
        csp = response.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'", url
        assert "unsafe-inline" not in directives["script-src"]
        assert directives["object-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        html = response.content.decode()
        assert not INLINE_SCRIPT.search(html), (url, INLINE_SCRIPT.search(html))
        assert not EVENT_HANDLER.search(html), (url, EVENT_HANDLER.search(html))
    image = reader.get(f"/api/v1/studies/{study.slug}/next").json()["image"]
    assert "Content-Security-Policy" in reader.get(image).headers


# --- readers see only their own --------------------------------------------------


def test_readers_reach_only_their_studys_images_and_their_own_answers(
    make_study, make_reader
):
    study = make_study(slug="review", edit_policy="until_phase_end")
    other_study = make_study(slug="elsewhere", seed=8)
    clients = []
    for s in (study, study, other_study):
        e = services.enrollment_consent(enrollment=make_reader(s))
        c = Client()
        c.force_login(e.reader.user)
        clients.append(c)
    mine, neighbours, theirs = clients
    own_images = set(study.cases.values_list("token", flat=True))
    foreign = set(other_study.cases.values_list("token", flat=True))
    assert foreign - own_images and own_images - foreign
    for token in foreign - own_images:
        assert mine.get(f"/api/v1/images/{token}").status_code == 404
    for token in own_images - foreign:
        assert theirs.get(f"/api/v1/images/{token}").status_code == 404
    # Guessing tokens: the same 404 as a real token of another study.
    guessed = mine.get(f"/api/v1/images/{secrets.token_urlsafe(16)}")
    real_elsewhere = mine.get(f"/api/v1/images/{next(iter(foreign - own_images))}")
    assert guessed.status_code == real_elsewhere.status_code == 404
    assert guessed.content == real_elsewhere.content

    # Two readers of one study answer the first case of phase 1 differently;
    # the API names only stage and position, resolved in the caller's session.
    for client, grade in ((neighbours, 4), (mine, 1)):
        api = ReaderAPI(client, study.slug)
        step = api.next().json()
        while step["stage"] == "practice":
            step = api.answer(step).json()["next"]
        assert api.answer(step, kl_grade=grade).status_code == 201
    for client, grade in ((neighbours, 4), (mine, 1)):
        detail = client.get(f"/api/v1/studies/{study.slug}/answers/1/0")
        assert detail.status_code == 200 and detail.json()["kl_grade"] == grade
    # The reader of another study is refused outright, as if it did not exist.
    assert theirs.get(f"/api/v1/studies/{study.slug}/next").status_code == 404
    assert theirs.get(f"/api/v1/studies/{study.slug}/answers/1/0").status_code == 404
    refused = ReaderAPI(theirs, study.slug).post(
        "answers", {"stage": "practice", "position": 0, "kl_grade": 1}
    )
    assert refused.status_code == 404
    assert not Judgment.objects.filter(session__enrollment__study=other_study).exists()


# --- invitations and accounts ----------------------------------------------------


def test_a_personal_invitation_works_only_for_its_email(
    study, make_study, make_reader, django_user_model
):
    ((invitation, token),) = services.invitations_create(
        study=study, emails=["Dr.Who@Example.org"]
    )
    response = Client().post(f"/invite/{token}/", signup_form("someone@example.org"))
    assert response.status_code == 200
    assert "made for another email address" in response.content.decode()
    assert not django_user_model.objects.filter(username="someone@example.org").exists()
    invitation.refresh_from_db()
    assert invitation.used_at is None

    # A reader signed in with another address cannot take it either.
    other = make_reader(make_study(slug="elsewhere", seed=9))
    signed_in = Client()
    signed_in.force_login(other.reader.user)
    refused = signed_in.post(f"/invite/{token}/")
    assert refused.status_code == 403
    assert "made for another email address" in refused.content.decode()
    invitation.refresh_from_db()
    assert invitation.used_at is None

    # The address it was made for, in any case, signs up.
    owner = Client()
    assert (
        owner.post(f"/invite/{token}/", signup_form("dr.who@EXAMPLE.org")).status_code
        == 302
    )
    invitation.refresh_from_db()
    assert invitation.used_by.user.email == "dr.who@example.org"


def test_the_staff_page_mails_each_address_its_invitation(
    study, staff_client, settings
):
    from django.core import mail

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = staff_client.post(
        f"/staff/studies/{study.slug}/invite",
        {"emails": "ada@example.org\nBob@Example.org\n", "days": "7"},
        follow=True,
    )
    assert response.status_code == 200
    assert "2 invitation emails sent." in response.content.decode()
    assert sorted(m.to[0] for m in mail.outbox) == [
        "Bob@Example.org",
        "ada@example.org",
    ]
    for message in mail.outbox:
        link = re.search(r"https?://\S+/invite/(\S+)/", message.body)
        assert link, message.body
        # The mail does not name the study: its name may give the design away.
        assert study.name not in message.subject + message.body
        page = Client().get(f"/invite/{link.group(1)}/")
        assert page.status_code == 200
        assert f'value="{message.to[0]}"' in page.content.decode()
    assert Invitation.objects.filter(email__iexact="bob@example.org").count() == 1


def test_email_goes_through_email_url_with_the_console_by_default():
    probe = "import django; django.setup(); from django.conf import settings; print(settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT)"
    seen = []
    for extra in ({}, {"EMAIL_URL": "smtp+tls://u:p@smtp.example.org:587"}):
        env = {k: v for k, v in os.environ.items() if k != "EMAIL_URL"} | extra
        env["DJANGO_SETTINGS_MODULE"] = "turingtest.settings"
        result = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        seen.append(result.stdout.split())
    assert seen[0][0] == "django.core.mail.backends.console.EmailBackend"
    assert seen[1] == [
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example.org",
        "587",
    ]


def test_a_study_one_is_not_in_answers_like_one_that_does_not_exist(
    reader_client, make_study
):
    other = make_study(slug="hidden-study", seed=9)
    for path in ("/s/{}/", "/s/{}/read/", "/s/{}/done/", "/api/v1/studies/{}/next"):
        existing = reader_client.get(path.format(other.slug))
        missing = reader_client.get(path.format("no-such-study"))
        assert existing.status_code == missing.status_code == 404, path
        # Pages carry a fresh CSRF token each time; the rest is the same.
        unmasked = [
            re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b"", r.content)
            for r in (existing, missing)
        ]
        assert unmasked[0] == unmasked[1], path
    answer = {"stage": "practice", "position": 0, "kl_grade": 1}
    for slug in (other.slug, "no-such-study"):
        refused = ReaderAPI(reader_client, slug).post("answers", answer)
        assert refused.status_code == 404
        assert refused.json() == {"error": "No such study."}


def test_a_reader_resets_a_forgotten_password(enrollment, settings):
    from django.core import mail

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    user = enrollment.reader.user
    client = Client()
    assert "Forgot your password?" in client.get("/accounts/login/").content.decode()
    asked = client.post("/accounts/password-reset/", {"email": user.email.upper()})
    # An address without an account gets exactly the same answer, and no mail.
    stranger = Client().post("/accounts/password-reset/", {"email": "no@example.org"})
    assert asked.status_code == stranger.status_code == 302
    assert asked["Location"] == stranger["Location"] == "/accounts/password-reset/sent/"
    assert [m.to for m in mail.outbox] == [[user.email]]
    path = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", mail.outbox[0].body)
    assert path, mail.outbox[0].body

    form = client.get(path.group(1), follow=True)
    assert form.status_code == 200 and "Choose a new password" in form.content.decode()
    new = "a-brand-new-passphrase-42"
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    old = Client().post(
        "/accounts/login/", {"username": user.username, "password": PASSWORD}
    )
    assert old.status_code == 200  # refused: the form again
    signed_in = Client()
    response = signed_in.post(
        "/accounts/login/", {"username": user.username, "password": new}
    )
    assert response.status_code == 302
    # The link works once.
    again = Client().get(path.group(1), follow=True)
    assert "This link is not valid" in again.content.decode()
