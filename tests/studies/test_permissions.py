"""Every URL of the project against every kind of visitor: only the intended get a 2xx."""

import json

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from turingtest.studies import services
from turingtest.studies.models import Case

ROLES = ("anonymous", "outsider", "enrolled", "staff")
READER_PAGES = {"enrolled"}
# URL name -> the roles that may get a 2xx from it. A new URL must be added here.
ALLOWED = {
    "home": {"outsider", "enrolled", "staff"},
    "favicon": set(ROLES),
    "login": set(ROLES),
    "logout": set(),  # POST only; tested below
    "password_reset": set(ROLES),
    "password_reset_done": set(ROLES),
    "password_reset_confirm": set(ROLES),  # a wrong link: a page that says so
    "password_reset_complete": set(ROLES),
    "invitation": set(ROLES),
    "signup-sent": set(ROLES),
    "signup-confirm": set(),  # a wrong link: 404
    "study-home": READER_PAGES,
    "study-read": READER_PAGES,
    "study-done": READER_PAGES,
    "api-schema": {"staff"},  # it names every question of every phase
    "api-next": READER_PAGES,
    "api-answers": set(),  # POST only
    "api-answer-detail": set(),  # studies without edits refuse review
    "api-revisions": set(),
    "api-finish": set(),
    "api-image": {"enrolled", "staff"},
    "staff-study": {"staff"},
    "staff-study-status": set(),  # POST only
    "staff-study-invite": set(),  # POST only
    "staff-study-cases": set(),  # POST only
    "staff-study-export": {"staff"},
    "staff-study-report-build": set(),  # POST only
    "staff-study-report-plot": {"staff"},
    "staff-study-heatmap": {"staff"},
    "imaging:upload": {"staff"},
    "imaging:pool": {"staff"},
    "imaging:pool-tag": set(),  # POST only
}


def _walk(patterns, prefix="", namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), (f"{namespace}{p.name}" if p.name else None)


def _concrete(pattern: str, values: dict) -> str:
    import re

    def value(m):
        return str(values.get(m.group(1), "1"))

    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", value, pattern)
    path = re.sub(r"<(?:\w+:)?(\w+)>", value, path)
    path = path.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")
    return "/" + path


@pytest.fixture
def visitors(study, make_study, make_reader, enrollment, staff_client):
    outsider_study = make_study(slug="elsewhere", seed=8)
    outsider = services.enrollment_consent(enrollment=make_reader(outsider_study))
    clients = {"anonymous": Client(), "staff": staff_client}
    for role, e in (("outsider", outsider), ("enrolled", enrollment)):
        clients[role] = Client()
        clients[role].force_login(e.reader.user)
    # The enrolled reader has started, so every reader page and the image answer.
    clients["enrolled"].get(f"/api/v1/studies/{study.slug}/next")
    return clients


def test_every_url_admits_only_the_intended(visitors, study):
    elsewhere = Case.objects.filter(study__slug="elsewhere").values("image")
    case = study.cases.exclude(image__in=elsewhere).first()
    values = {
        "slug": study.slug,
        "token": case.token,
        "stage": 1,
        "position": 0,
        "object_id": study.pk,
        "app_label": "studies",
        "plot": "forest",
    }
    seen = set()
    for pattern, name in _walk(get_resolver().url_patterns):
        if name == "admin:login":
            allowed = set(ROLES)
        elif name == "admin:logout":
            allowed = set()  # POST only
        elif pattern.startswith("admin/"):
            allowed = {"staff"}
        else:
            assert name in ALLOWED, (
                f"URL {pattern!r} ({name}) has no access rule in this test"
            )
            allowed = ALLOWED[name]
        seen.add(name)
        url = _concrete(pattern, values)
        if name == "invitation":
            url = f"/invite/{services.invitations_create(study=study)[0][1]}/"
        for role, client in visitors.items():
            status = client.get(url).status_code
            assert status < 500, (url, role, status, name)
            if role in allowed:
                # Admin pages may redirect or refuse staff for want of parameters.
                assert pattern.startswith("admin/") or 200 <= status < 400, (
                    url,
                    role,
                    status,
                )
            else:
                assert not 200 <= status < 300, (url, role, status, name, pattern)
    assert set(ALLOWED) <= seen


def test_state_changing_urls_refuse_all_but_the_intended(visitors, study):
    body = json.dumps({"stage": "practice", "position": 0, "kl_grade": 1})
    for role, client in visitors.items():
        answer = client.post(
            f"/api/v1/studies/{study.slug}/answers",
            body,
            content_type="application/json",
        )
        assert (answer.status_code == 201) == (role == "enrolled"), role
    for role, client in visitors.items():
        status = client.post(f"/staff/studies/{study.slug}/status", {"action": "close"})
        invite = client.post(
            f"/staff/studies/{study.slug}/invite", {"count": 1, "days": 3}
        )
        if role == "staff":
            assert status.status_code == 302 and invite.status_code == 200
        else:
            assert status.status_code == invite.status_code == 302
            assert "/admin/login/" in status["Location"]
    study.refresh_from_db()
    assert study.status == "closed"


def test_favicon_is_an_icon_for_everyone(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"
