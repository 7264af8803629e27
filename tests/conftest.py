"""Shared fixtures: a media folder per test, an image pool, studies and readers."""

import functools
import uuid

import pytest
from django.test import Client

from turingtest.studies import services
from turingtest.studies.models import Study

pytest_plugins = ["tests.browser"]

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def fresh_cache(settings):
    """A cache of the test's own: counts such as invitation guesses per address
    would otherwise carry over from test to test (and run to run) in var/cache."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"test-{uuid.uuid4().hex}",
        }
    }


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Django's advice for tests: a fast hasher, where the production one spends
    a fifth of a second of CPU on every reader signed up or signed in. The
    production hashers are checked in tests/test_passwords.py, and the live
    stacks (separate processes) run with them."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@functools.cache
def phantom_pixels(grade: int, seed: int, size: int = 128):
    """A phantom's pixels, drawn once per test process (they depend only on
    the arguments) and read-only, so no test can change another's."""
    from turingtest.imaging.phantom import knee_phantom

    pixels = knee_phantom(grade, seed, size=size)
    pixels.setflags(write=False)
    return pixels


@pytest.fixture
def make_image(db, media):
    """Put one phantom image into the pool; synthetic ones get other seeds."""
    from turingtest.imaging.services import image_create

    counter = iter(range(1, 1_000_000))

    def make(source: str = "real", grade: int = 0, **extra):
        """``grade`` draws the phantom and is its KL grade unless ``kl_grade``
        says otherwise (None for a pool graded on another scale)."""
        seed = next(counter) + (500_000 if source == "synthetic" else 0)
        extra.setdefault("kl_grade", grade)
        return image_create(
            pixels=phantom_pixels(grade, seed),
            source=source,
            origin=f"phantom seed {seed}",
            **extra,
        )

    return make


@pytest.fixture
def pool(make_image):
    """Two real and two synthetic images per KL grade, plus two spare real ones."""
    images = []
    for grade in range(5):
        for _ in range(4):
            images.append(make_image("real", grade))
        for _ in range(2):
            images.append(make_image("synthetic", grade))
    return images


@pytest.fixture
def make_study(pool):
    def make(
        slug="knee",
        phases=("grading", "detection"),
        per_grade=1,
        practice=2,
        open=True,
        seed=7,
        **opts,
    ):
        study = services.study_create(
            slug=slug,
            name=f"Study {slug}",
            phases=phases,
            practice_count=practice,
            **opts,
        )
        services.cases_build(study=study, per_grade=per_grade, seed=seed)
        if open:
            study = services.study_open(study=study)
        return study

    return make


@pytest.fixture
def study(make_study) -> Study:
    return make_study()


@pytest.fixture
def make_reader(db):
    counter = iter(range(1, 1_000_000))

    def make(study: Study, **profile):
        n = next(counter)
        ((_, token),) = services.invitations_create(study=study, count=1)
        fields = {
            "email": f"reader{n}@example.org",
            "password": PASSWORD,
            "name": f"Reader {n}",
            "profession": "radiologist",
            "experience_years": 10,
        } | profile
        return services.reader_signup(token=token, **fields)

    return make


@pytest.fixture
def enrollment(study, make_reader):
    e = make_reader(study)
    return services.enrollment_consent(enrollment=e)


@pytest.fixture
def reader_client(enrollment) -> Client:
    client = Client()
    client.force_login(enrollment.reader.user)
    return client


@pytest.fixture
def staff_client(db, django_user_model) -> Client:
    user = django_user_model.objects.create_user(
        "staff@example.org",
        "staff@example.org",
        PASSWORD,
        is_staff=True,
        is_superuser=True,
    )
    client = Client()
    client.force_login(user)
    return client


class ReaderAPI:
    """The reading page's calls, made with Django's test client."""

    def __init__(self, client: Client, slug: str) -> None:
        self.client = client
        self.base = f"/api/v1/studies/{slug}"

    def next(self):
        return self.client.get(f"{self.base}/next")

    def post(self, path: str, body, **kwargs):
        import json

        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.post(
            f"{self.base}/{path}", data=data, content_type="application/json", **kwargs
        )

    def answer(self, step: dict, confidence=None, kl_grade=None):
        asked = {q["field"] for q in step["phase"]["questions"]}
        body = {"stage": step["stage"], "position": step["position"]}
        if "confidence" in asked:
            body["confidence"] = confidence or 2
        if "kl_grade" in asked:
            body["kl_grade"] = 1 if kl_grade is None else kl_grade
        return self.post("answers", body)

    def answer_all(self, limit: int = 1000) -> list[dict]:
        """Answer until the study is done; returns every step seen."""
        steps = []
        step = self.next().json()
        while "redirect" not in step and len(steps) < limit:
            steps.append(step)
            response = self.answer(step)
            assert response.status_code == 201, response.content
            step = response.json()["next"]
        return steps


@pytest.fixture
def reader_api(reader_client, study) -> ReaderAPI:
    return ReaderAPI(reader_client, study.slug)
