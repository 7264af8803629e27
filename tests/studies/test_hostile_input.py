"""Random and malformed input to every API endpoint and to the upload page.

Whatever arrives, the answer is a success or a 4xx that says what was wrong,
never a 5xx, and a refused request leaves every table as it was.
"""

import io
import json
import os
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ReaderAPI
from turingtest.imaging.models import Image
from turingtest.imaging.services import pool_check
from turingtest.studies import services
from turingtest.studies.models import (
    Enrollment,
    Judgment,
    JudgmentRevision,
    ReadingSession,
)

HYPOTHESIS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
FIELDS = ["stage", "position", "confidence", "kl_grade"]

# JSON values a client could send, weighted towards the edges of the types the
# API expects: huge and negative numbers, bools, floats, strings of digits.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10, max_value=10),
    st.integers(),
    st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["practice", "1", "0", "\x00", "practice\x00", "１"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
answer_bodies = st.one_of(
    st.fixed_dictionaries({}, optional={f: json_values for f in FIELDS}),
    st.fixed_dictionaries(
        {"stage": st.sampled_from(["practice", 1, 2, 3]), "position": scalars},
        optional={"confidence": scalars, "kl_grade": scalars},
    ),
    json_values,
)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"{",
            b'{"stage": "practice", "position": 0,}',
            b'{"position": NaN, "stage": Infinity}',
            b"\xff\xfe\x00{",
            b"[" * 50_000 + b"]" * 50_000,
            b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
            b'{"stage": 1, "stage": "practice", "position": 0, "kl_grade": 1}',
            json.dumps({"stage": "practice", "position": 0, "kl_grade": 1}).encode(),
        ]
    ),
)


def snapshot() -> dict:
    """Every row a reader's request can write, and the state of each session."""
    sessions = {
        s.pk: (s.completed_at, s.served_position, tuple(s.order))
        for s in ReadingSession.objects.all()
    }
    enrollments = {e.pk: e.completed_at for e in Enrollment.objects.all()}
    return {
        "judgments": list(Judgment.objects.order_by("pk").values_list("pk", flat=True)),
        "revisions": JudgmentRevision.objects.count(),
        "sessions": {k: v[:1] + v[2:] for k, v in sessions.items()},
        "enrollments": enrollments,
    }


def assert_consistent() -> None:
    """What a half-written answer would break."""
    for session in ReadingSession.objects.all():
        rows = list(session.judgments.order_by("position").values("position", "case"))
        assert [r["position"] for r in rows] == list(range(len(rows)))
        assert [r["case"] for r in rows] == session.order[: len(rows)]
        assert sorted(session.order) == sorted(set(session.order))
        if session.completed_at is not None:
            assert len(rows) == len(session.order)
    numbers = Judgment.objects.annotate(n=Count("revisions")).values_list("pk", "n")
    for pk, n in numbers:
        revs = JudgmentRevision.objects.filter(judgment_id=pk).order_by("revision")
        assert list(revs.values_list("revision", flat=True)) == list(range(1, n + 1))


def check(response, before: dict) -> None:
    status = response.status_code
    assert status < 500, (status, response.content[:500])
    if status == 405:  # wrong method: Django's answer, with the methods allowed
        assert response["Allow"]
    elif status >= 400:
        body = json.loads(response.content)
        assert isinstance(body["error"], str) and body["error"].strip(), body
        after = snapshot()
        assert after["judgments"] == before["judgments"]
        assert after["revisions"] == before["revisions"]
        assert after["enrollments"] == before["enrollments"]
    else:
        assert isinstance(json.loads(response.content), dict)
    assert_consistent()


@pytest.fixture
def hostile(make_study, make_reader):
    """A reader halfway through a study that allows revisions."""
    study = make_study(slug="knee", edit_policy="until_phase_end")
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    client = Client()
    client.force_login(enrollment.reader.user)
    api = ReaderAPI(client, study.slug)
    step = api.next().json()
    for _ in range(4):
        step = api.answer(step).json()["next"]
    return api


@HYPOTHESIS
@given(body=answer_bodies, path=st.sampled_from(["answers", "revisions", "finish"]))
def test_random_json_to_the_write_endpoints(hostile, body, path):
    before = snapshot()
    check(hostile.post(path, body), before)


@HYPOTHESIS
@given(body=raw_bodies, path=st.sampled_from(["answers", "revisions", "finish"]))
def test_malformed_bodies_to_the_write_endpoints(hostile, body, path):
    before = snapshot()
    check(hostile.post(path, body), before)


@HYPOTHESIS
@given(
    content_type=st.sampled_from(
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
    ),
    body=raw_bodies,
)
def test_other_content_types_are_refused_cleanly(hostile, content_type, body):
    before = snapshot()
    response = hostile.client.post(
        f"{hostile.base}/answers", data=body, content_type=content_type
    )
    check(response, before)


path_parts = st.one_of(
    st.integers(min_value=-5, max_value=100).map(str),
    st.sampled_from(["9" * 30, "2147483648", "9223372036854775808", "-1", "0"]),
)


@HYPOTHESIS
@given(stage=path_parts, position=path_parts)
def test_random_numbers_in_the_review_url(hostile, stage, position):
    before = snapshot()
    response = hostile.client.get(f"{hostile.base}/answers/{stage}/{position}")
    if response.status_code != 404 or response.headers["Content-Type"].startswith(
        "application/json"
    ):
        check(response, before)
    # Negative numbers do not match the URL pattern: Django's plain 404.


@HYPOTHESIS
@given(
    token=st.text(
        st.characters(codec="utf-8", exclude_characters="/?#%"), min_size=1, max_size=60
    )
)
def test_random_image_tokens_are_a_plain_404(hostile, token):
    response = hostile.client.get(f"/api/v1/images/{token}")
    assert response.status_code == 404, token


@HYPOTHESIS
@given(
    slug=st.from_regex(r"\A[-a-zA-Z0-9_]{1,60}\Z"),
    method=st.sampled_from(["get", "post"]),
)
def test_random_study_slugs(hostile, slug, method):
    before = snapshot()
    if method == "get":
        response = hostile.client.get(f"/api/v1/studies/{slug}/next")
    else:
        response = hostile.client.post(
            f"/api/v1/studies/{slug}/answers",
            data=json.dumps({"stage": "practice", "position": 0, "kl_grade": 1}),
            content_type="application/json",
        )
    if slug != "knee":
        assert response.status_code == 404
    check(response, before)


def test_answer_times_come_from_the_server_clock(hostile):
    from django.utils import timezone

    step = hostile.next().json()
    forged = {
        "served_at": "2000-01-01T00:00:00Z",
        "answered_at": "2000-01-01T00:00:01Z",
    }
    before = timezone.now()
    body = {"stage": step["stage"], "position": step["position"], "kl_grade": 2}
    assert (
        hostile.post("answers", body | forged | {"duration_ms": 1}).status_code == 201
    )
    revised = hostile.post("revisions", body | forged | {"kl_grade": 3})
    assert revised.status_code == 201
    after = timezone.now()
    judgment = Judgment.objects.get(position=step["position"], session__phase__index=0)
    revision = judgment.revisions.get()
    started = judgment.session.started_at
    assert started <= judgment.served_at <= before <= judgment.answered_at <= after
    assert before <= revision.answered_at <= after
    elapsed = judgment.answered_at - judgment.served_at
    assert judgment.duration_ms == int(elapsed.total_seconds() * 1000)


def test_every_endpoint_refuses_the_wrong_method_and_changes_nothing(hostile):
    before = snapshot()
    base = hostile.base
    for url, wrong in [
        (f"{base}/next", ["post", "put", "delete", "patch"]),
        (f"{base}/answers", ["get", "put", "delete", "patch"]),
        (f"{base}/revisions", ["get", "put", "delete"]),
        (f"{base}/finish", ["get", "put", "delete"]),
        (f"{base}/answers/1/0", ["post", "put", "delete"]),
    ]:
        for method in wrong:
            response = getattr(hostile.client, method)(url)
            assert response.status_code == 405, (url, method)
    assert snapshot() == before


def test_the_schema_lists_every_reader_endpoint(staff_client):
    from django.urls import get_resolver

    schema = staff_client.get("/api/v1/schema").json()
    documented = set(schema["paths"])
    api = get_resolver().url_patterns
    routes = [
        "/api/v1/" + str(p.pattern).replace("<slug:slug>", "{slug}")
        for r in api
        if str(r.pattern) == "api/v1/"
        for p in r.url_patterns
    ]
    for route in routes:
        route = route.replace("<int:stage>", "{stage}").replace(
            "<int:position>", "{position}"
        )
        route = route.replace("<str:token>", "{token}")
        if route.endswith("/schema"):
            continue
        assert route in documented, route


# --- uploads --------------------------------------------------------------------


@pytest.fixture
def upload_tmp(settings, tmp_path, monkeypatch):
    import tempfile

    folder = tmp_path / "uploads-tmp"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def zipped(entries: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def post_upload(client, files, **fields):
    return client.post(
        "/staff/images/upload/", {"files": files, "source": "real", **fields}
    )


def assert_nothing_left(media, upload_tmp):
    assert not Image.objects.exists()
    assert pool_check().ok
    assert not [p for p in media.rglob("*") if p.is_file()]
    assert not any(upload_tmp.iterdir())


def test_an_archive_with_too_many_entries_is_refused(
    staff_client, media, settings, upload_tmp
):
    from tests.imaging import builders

    settings.TURINGTEST = {**settings.TURINGTEST, "MAX_ARCHIVE_ENTRIES": 50}
    entries = {f"1/{i}.png": builders.png(builders.picture(i)) for i in range(51)}
    response = post_upload(
        staff_client, [SimpleUploadedFile("many.zip", zipped(entries))]
    )
    assert response.status_code == 400
    assert b"51 entries (limit 50)" in response.content
    assert_nothing_left(media, upload_tmp)


def test_an_archive_that_lies_about_its_sizes_is_rejected_entry_by_entry(
    staff_client, media, upload_tmp
):
    from tests.imaging import builders

    honest = builders.png(builders.picture(1))
    big = bytes(3 * 2**20)  # declared as 100 bytes below
    data = bytearray(zipped({"1/ok.png": honest, "1/liar.png": big}))
    # Rewrite the uncompressed size of the second entry in both headers.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = data.find(signature, data.find(signature) + 1)
        data[start + offset : start + offset + 4] = (100).to_bytes(4, "little")
    response = post_upload(staff_client, [SimpleUploadedFile("liar.zip", bytes(data))])
    assert response.status_code == 200
    html = response.content.decode()
    assert "1 imported" in html and "1 rejected" in html
    assert Image.objects.count() == 1
    assert not any(upload_tmp.iterdir())


def test_a_zip_inside_a_zip_is_not_unpacked(staff_client, media, upload_tmp):
    from tests.imaging import builders

    inner = zipped({f"1/{i}.png": builders.png(builders.picture(i)) for i in range(3)})
    outer = zipped({"1/inner.zip": inner}, method=zipfile.ZIP_STORED)
    response = post_upload(staff_client, [SimpleUploadedFile("outer.zip", outer)])
    assert response.status_code == 200
    assert b"0 imported" in response.content and b"1 rejected" in response.content
    assert_nothing_left(media, upload_tmp)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(
    files=st.lists(
        st.tuples(st.text(max_size=30), st.binary(max_size=3000)),
        min_size=1,
        max_size=3,
    ),
    grade=st.sampled_from(["", "0", "4", "5", "-1", "x"]),
)
def test_random_uploads_never_fail_the_server(
    staff_client, media, upload_tmp, files, grade
):
    # The test client sends only a base name; hostile paths are tested below.
    names = [os.path.basename(name) for name, _ in files]
    names = [n if n not in ("", ".", "..") else "f" for n in names]
    uploads = [
        SimpleUploadedFile(n, data) for n, (_, data) in zip(names, files, strict=True)
    ]
    response = post_upload(staff_client, uploads, grade=grade)
    assert response.status_code in (200, 400), response.status_code
    assert_nothing_left(media, upload_tmp)


@pytest.mark.parametrize(
    "filename",
    ["../../../etc/passwd.png", "/tmp/x.png", "..", ".", "", "a\\..\\b.png", "é" * 300],
)
def test_hostile_file_names_stay_inside_the_upload_folder(
    staff_client, media, upload_tmp, tmp_path, filename
):
    from tests.imaging import builders

    boundary = "hostileboundary"
    png = builders.png(builders.picture(3))
    parts = [
        ("source", None, b"real"),
        ("grade", None, b"2"),
        ("files", filename, png),
    ]
    body = b""
    for name, file_name, data in parts:
        disposition = f'form-data; name="{name}"'
        if file_name is not None:
            disposition += f'; filename="{file_name}"'
        body += (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    outside = set(tmp_path.parent.iterdir())
    response = staff_client.generic(
        "POST",
        "/staff/images/upload/",
        body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert response.status_code in (200, 400)
    assert set(tmp_path.parent.iterdir()) == outside
    assert not any(upload_tmp.iterdir())
    assert pool_check().ok


def test_a_database_failure_mid_upload_leaves_nothing(staff_client, media, upload_tmp):
    from django.db import OperationalError, connection

    from tests.imaging import builders

    archive = zipped(
        {f"2/{i}.png": builders.png(builders.picture(i)) for i in range(5)}
    )
    inserts = []

    def fail_third_insert(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "imaging_image"'):
            inserts.append(sql)
            if len(inserts) == 3:
                raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    staff_client.raise_request_exception = False
    with connection.execute_wrapper(fail_third_insert):
        response = post_upload(staff_client, [SimpleUploadedFile("set.zip", archive)])
    assert response.status_code >= 400
    assert len(inserts) == 3
    assert_nothing_left(media, upload_tmp)


# --- study instructions -------------------------------------------------------

HOSTILE_INSTRUCTIONS = """\
Grade each image. Questions: [write to us](mailto:study@example.org) or see
[the protocol](https://example.org/protocol).

[Continue](https://evil.example/phish)
{: style="position:fixed;top:0;left:0;width:100%;height:100%;z-index:9" }

[one](javascript:alert(1)) [two](JaVaScRiPt:alert(1)) [three](data:text/html,x)
[four](vbscript:x) [five](//evil.example/) [six](/accounts/logout/)
<script>alert(1)</script><a href="javascript:alert(1)" onclick="x">raw</a>
<div style="position:fixed">raw block</div>
![pixel](https://evil.example/track.png)
"""


def test_study_instructions_cannot_style_the_page_or_link_to_scripts(
    make_study, make_reader
):
    import re

    study = make_study(slug="instructed", instructions=HOSTILE_INSTRUCTIONS)
    reader = Client()
    reader.force_login(make_reader(study).reader.user)
    response = reader.get(f"/s/{study.slug}/")
    assert response.status_code == 200
    html = response.content.decode()
    start = html.index("Grade each image.")
    # The instructions, up to the consent form that follows them.
    part = html[html.rindex("<", 0, start) : html.index("<form", start)]
    # Escaped text may show the attack as words; only real tags matter.
    tags = re.findall(r"<\s*([a-zA-Z0-9]+)([^>]*)>", part)
    assert tags, part
    hrefs = []
    for name, attributes in tags:
        assert name.lower() not in {"script", "img", "div", "style", "iframe"}, name
        for attr, value in re.findall(r'([\w-]+)="([^"]*)"', attributes):
            assert attr in {"href", "rel", "title"}, (name, attributes)
            if attr == "href":
                hrefs.append(value)
    assert hrefs == [
        "mailto:study@example.org",
        "https://example.org/protocol",
        "https://evil.example/phish",
    ]
