"""Nothing a reader receives says which images are real, or anything else about them."""

import json
import re

import pytest

from turingtest.imaging.canonical import png_chunks
from turingtest.imaging.models import Image
from turingtest.studies.models import Case


def _reader_traffic(reader_api, study):
    """Every response a reader gets while completing the study, pages included."""
    client = reader_api.client
    responses = [client.get(f"/s/{study.slug}/"), client.get(f"/s/{study.slug}/read/")]
    steps = []
    step_response = reader_api.next()
    responses.append(step_response)
    step = step_response.json()
    while "redirect" not in step:
        steps.append(step)
        image = client.get(step["image"])
        responses.append(image)
        answered = reader_api.answer(step)
        responses.append(answered)
        step = answered.json()["next"]
    responses.append(client.get(f"/s/{study.slug}/done/"))
    return responses, steps


def _secrets(study):
    """Strings that would give away truth or identity if a reader ever saw them."""
    found = set()
    for case in Case.objects.filter(study=study).select_related("image"):
        image = case.image
        found |= {
            image.sha256,
            image.sha256[:16],
            image.origin,
            image.file.name,
            f"/{image.pk}/",
        }
    return {s for s in found if s}


TRUTH_KEYS = {
    "truth",
    "source",
    "reference_kl",
    "generator",
    "seed",
    "sha256",
    "origin",
}


def _keys(data) -> set[str]:
    """Every key at any depth of a JSON document."""
    if isinstance(data, dict):
        return set(data) | {k for v in data.values() for k in _keys(v)}
    if isinstance(data, list):
        return {k for v in data for k in _keys(v)}
    return set()


def test_no_ground_truth_or_identity_in_any_response(reader_api, study):
    responses, steps = _reader_traffic(reader_api, study)
    secrets = _secrets(study)
    for response in responses:
        if response["Content-Type"] == "image/png":
            continue
        body = response.content.decode()
        headers = " ".join(f"{k}: {v}" for k, v in response.headers.items())
        for secret in secrets:
            assert secret not in body and secret not in headers
        if response["Content-Type"] == "application/json":
            data = json.loads(body)
            if data.get("stage") == "practice" or "feedback" in data:
                data.pop("feedback", None)  # the practice round's own reference
            assert not _keys(data) & TRUTH_KEYS, _keys(data) & TRUTH_KEYS
    for step in steps:
        assert set(step) <= {
            "stage",
            "phase",
            "position",
            "total",
            "can_revise",
            "image",
            "preload",
            "review",
        }
        assert re.fullmatch(r"/api/v1/images/[A-Za-z0-9_-]{22}", step["image"])


def test_grading_phase_never_mentions_synthetic_images(reader_api, study):
    client = reader_api.client
    pages = [
        client.get(f"/s/{study.slug}/").content,
        client.get(f"/s/{study.slug}/read/").content,
    ]
    step = reader_api.next().json()
    texts = [*pages]
    while step.get("stage") in ("practice", 1):
        texts.append(repr(step).encode())
        response = reader_api.answer(step)
        texts.append(response.content)
        step = response.json()["next"]
    for text in texts[:-1]:
        assert b"synthetic" not in text.lower() and b"computer" not in text.lower()
    assert step["stage"] == 2 and "synthetic" in step["phase"]["intro"]


def test_images_are_served_identically(reader_api, study):
    responses, steps = _reader_traffic(reader_api, study)
    images = [r for r in responses if r.get("Content-Type") == "image/png"]
    assert len(images) == 22
    header_sets = {
        frozenset((k, v) for k, v in r.headers.items() if k != "Content-Length")
        for r in images
    }
    assert len(header_sets) == 1
    headers = dict(next(iter(header_sets)))
    assert "Last-Modified" not in headers and "ETag" not in headers
    sizes = set()
    for response in images:
        data = b"".join(response.streaming_content)
        assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]
        sizes.add(data[16:24])  # IHDR width and height
    assert len(sizes) == 1


@pytest.mark.parametrize(
    ("serving", "internal"), [("nginx", "X-Accel-Redirect"), ("apache", "X-Sendfile")]
)
def test_images_handed_to_the_front_server_get_identical_headers(
    reader_api, study, settings, serving, internal
):
    settings.TURINGTEST = settings.TURINGTEST | {
        "IMAGE_SERVING": serving,
        "IMAGE_INTERNAL_PREFIX": "/protected-media/",
    }
    responses, steps = _reader_traffic(reader_api, study)
    images = [r for r in responses if r.get("Content-Type") == "image/png"]
    assert len(images) == len(steps) == 22
    # The front server drops the internal header and sends the file with the
    # rest: those must be the same for every image but its length.
    header_sets = {
        frozenset(
            (k, v)
            for k, v in r.headers.items()
            if k not in ("Content-Length", internal)
        )
        for r in images
    }
    assert len(header_sets) == 1
    headers = dict(next(iter(header_sets)))
    assert "Last-Modified" not in headers and "ETag" not in headers
    files = {c.token: c.image.file for c in Case.objects.select_related("image")}
    for step, response in zip(steps, images, strict=True):
        file = files[step["image"].rsplit("/", 1)[-1]]
        # No body, and no length: the front server sends the file and its length.
        assert response.content == b""
        assert response.get("Content-Length", "0") == "0"
        if serving == "nginx":
            assert response[internal] == f"/protected-media/{file.name}"
        else:
            assert response[internal] == file.path
    # A refusal names no file.
    reader_api.client.logout()
    refused = reader_api.client.get(steps[0]["image"])
    assert refused.status_code == 404 and internal not in refused.headers


def test_image_tokens_are_opaque(study):
    tokens = [case.token for case in Case.objects.all()]
    tokens += [image.token for image in Image.objects.all()]
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) == 22 for t in tokens)
    assert not any(str(case.pk) == case.token for case in Case.objects.all())


@pytest.mark.parametrize("who", ["anonymous", "other_reader", "unconsented"])
def test_images_only_for_enrolled_readers(client, study, make_study, make_reader, who):
    other = make_study(slug="other", seed=8)
    case = study.cases.exclude(image__in=other.cases.values("image")).first()
    if who == "other_reader":
        from turingtest.studies.services import enrollment_consent

        client.force_login(
            enrollment_consent(enrollment=make_reader(other)).reader.user
        )
    elif who == "unconsented":
        client.force_login(make_reader(study).reader.user)
    response = client.get(f"/api/v1/images/{case.token}")
    missing = client.get("/api/v1/images/AAAAAAAAAAAAAAAAAAAAAA")
    assert response.status_code == missing.status_code == 404
    assert response.content == missing.content


def test_images_of_a_closed_study_are_not_served(reader_client, study):
    from turingtest.studies.services import study_close

    token = study.cases.first().token
    assert reader_client.get(f"/api/v1/images/{token}").status_code == 200
    study_close(study=study)
    assert reader_client.get(f"/api/v1/images/{token}").status_code == 404


def test_readers_see_the_reader_title_never_the_internal_name(
    client, make_study, make_reader
):
    from turingtest.studies import services

    study = make_study(slug="titled", open=False)
    study.name = "KL real-vs-fake pilot, generator v3"
    study.reader_title = "Knee radiograph reading study"
    study.save()
    study = services.study_open(study=study)
    ((_, token),) = services.invitations_create(study=study, count=1)
    pages = [client.get(f"/invite/{token}/")]
    enrollment = services.reader_signup(
        token=token,
        email="titled@example.org",
        password="correct-horse-battery-staple",
        name="Reader",
        profession="radiologist",
        experience_years=3,
    )
    client.force_login(enrollment.reader.user)
    pages += [client.get("/"), client.get(f"/s/{study.slug}/")]
    services.enrollment_consent(enrollment=enrollment)
    pages.append(client.get(f"/s/{study.slug}/read/"))
    for page in pages:
        assert page.status_code == 200
        text = page.content.decode()
        assert "Knee radiograph reading study" in text
        assert study.name not in text and "fake" not in text.lower()
        assert "turingtest" not in text.lower()  # the site's name says "Turing test"


def test_the_grading_page_holds_no_detection_controls(reader_client, study):
    page = reader_client.get(f"/s/{study.slug}/read/").content.decode().lower()
    for trace in ("q-realism", "realism", "confidence", "synthetic", "real or"):
        assert trace not in page, trace


def test_one_image_in_two_studies_has_unrelated_urls(make_study, make_reader):
    from django.test import Client

    from tests.conftest import ReaderAPI
    from turingtest.studies import services

    a = make_study(slug="a", seed=7)
    b = make_study(slug="b", seed=7)
    shared = set(a.cases.values_list("image", flat=True)) & set(
        b.cases.values_list("image", flat=True)
    )
    assert shared  # one pool: the studies share images
    client = Client()
    reader = services.enrollment_consent(enrollment=make_reader(a)).reader
    ((_, token),) = services.invitations_create(study=b, count=1)
    services.enrollment_consent(
        enrollment=services.invitation_accept(token=token, reader=reader)
    )
    client.force_login(reader.user)
    urls = {}
    for study in (a, b):
        steps = ReaderAPI(client, study.slug).answer_all()
        urls[study.slug] = {s["image"] for s in steps} | {
            s["preload"] for s in steps if "preload" in s
        }
    assert not urls["a"] & urls["b"]
    # A's URLs stop working when A closes, though B shows the same images.
    services.study_close(study=a)
    assert all(client.get(url).status_code == 404 for url in urls["a"])
    assert all(client.get(url).status_code == 200 for url in urls["b"])
