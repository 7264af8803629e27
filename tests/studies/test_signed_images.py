"""Reader images sent by nginx alone, from signed URLs (TURINGTEST_IMAGE_SERVING=nginx-signed).

Against a real nginx (``apt-get install nginx-light``; .ci/run installs it)
with the location docs/deploy.md gives.
"""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.nginx_signed import location
from turingtest.studies import services, signed_images
from turingtest.studies.models import Case

NGINX = shutil.which("nginx") or (
    "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
)
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="needs nginx (apt-get install nginx-light)"
)
KEY = "a-signing-key-only-this-test-knows-0123456789"

# The location of docs/deploy.md, with this test's folders and key.
NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {base}/tmp;
    server {{
        listen 127.0.0.1:{port};
{signed}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nginx(settings, media, tmp_path):
    settings.TURINGTEST = settings.TURINGTEST | {
        "IMAGE_SERVING": "nginx-signed",
        "IMAGE_SIGNING_KEY": KEY,
    }
    base = tmp_path / "nginx"
    (base / "tmp").mkdir(parents=True)
    port = _free_port()
    conf = base / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",
            base=base,
            port=port,
            signed=location(media=Path(media).resolve(), key=KEY),
        )
    )
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(base)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                error = proc.stderr.read() if proc.poll() is not None else b""
                raise RuntimeError(f"nginx did not start: {error!r}") from None
            time.sleep(0.05)

    def get(url: str) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", url)
        reply = conn.getresponse()
        reply.body = reply.read()
        conn.close()
        return reply

    yield get
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.fixture
def signed_study(nginx, study):
    # The study was opened inside the test's transaction, where nothing is
    # committed: make its links as its commit would have.
    signed_images.case_links_sync(study)
    return study


def test_opening_a_study_links_its_cases_and_closing_removes_them(
    nginx, make_study, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        study = make_study(slug="opened")
    links = sorted(p.name for p in signed_images.cases_dir().iterdir())
    assert links == sorted(study.cases.values_list("token", flat=True))
    case = study.cases.select_related("image").first()
    link = signed_images.cases_dir() / case.token
    assert link.resolve() == Path(case.image.file.path).resolve()
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=study)
    assert not any(signed_images.cases_dir().iterdir())


def _steps(reader_api):
    steps = []
    step = reader_api.next().json()
    while "redirect" not in step:
        steps.append(step)
        step = reader_api.answer(step).json()["next"]
    return steps


def test_readers_get_signed_urls_that_nginx_serves_with_identical_headers(
    signed_study, nginx, reader_api
):
    steps = _steps(reader_api)
    cases = Case.objects.filter(study=signed_study)
    practice = cases.filter(role=Case.Role.PRACTICE).count()
    assert len(steps) == practice + 2 * (cases.count() - practice)  # two phases
    headers = set()
    for step in steps:
        url = urlsplit(step["image"])
        token = url.path.rsplit("/", 1)[1]
        assert url.path == f"/signed-images/{token}" and set(parse_qs(url.query)) == {
            "e",
            "s",
        }
        reply = nginx(step["image"])
        assert reply.status == 200
        case = Case.objects.select_related("image").get(token=token)
        with case.image.file.open("rb") as fh:
            assert reply.body == fh.read()
        headers.add(
            tuple(
                sorted(
                    (k.lower(), v)
                    for k, v in reply.getheaders()
                    if k.lower() not in ("date", "content-length")
                )
            )
        )
    (only,) = headers  # the same headers for every image, real or synthetic
    assert not {k for k, _ in only} & {"last-modified", "etag"}  # no file dates
    assert dict(only)["content-type"] == "image/png"
    assert dict(only)["cache-control"] == "private, max-age=3600"


def test_a_forged_or_expired_url_is_refused(signed_study, nginx, reader_api):
    url = reader_api.next().json()["image"]
    path = urlsplit(url).path
    assert nginx(url).status == 200
    other = Case.objects.filter(study=signed_study).exclude(
        token=path.rsplit("/", 1)[1]
    )[0]
    # the signature of one image does not open another
    assert nginx(url.replace(path, f"/signed-images/{other.token}")).status == 403
    assert nginx(path).status == 403  # unsigned
    stale = signed_images.signed_url(path.rsplit("/", 1)[1], now=time.time() - 3 * 3600)
    assert nginx(stale).status == 410


def test_closing_the_study_stops_its_urls_at_once(
    signed_study, nginx, reader_api, django_capture_on_commit_callbacks
):
    url = reader_api.next().json()["image"]
    assert nginx(url).status == 200
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=signed_study)
    assert nginx(url).status == 404
    assert not any(signed_images.cases_dir().iterdir())
