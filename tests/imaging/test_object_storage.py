"""Pool images in an S3-compatible bucket (``MEDIA_STORAGE=s3://...``).

Everything here talks to a real S3-API server: moto's standalone server,
which ``.ci/run`` starts and names in ``TURINGTEST_TEST_S3_ENDPOINT``. Without
that variable (a developer's ``make test``), the tests start one of their own.
Each test gets a bucket of its own.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from tests.imaging import builders
from tests.live import HttpReader, LiveStack, free_port
from tests.studies.test_blinding import _reader_traffic, _secrets
from turingtest.imaging.models import Image
from turingtest.imaging.services import (
    image_create,
    images_import,
    pool_check,
    pool_orphans_remove,
)
from turingtest.imaging.serving import IMAGE_HEADERS
from turingtest.media_storage import S3, storage_from_url

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "media"
# Headers that would tell a reader where or when an object was stored.
STORE_HEADERS = re.compile(r"^(x-amz-|etag$|last-modified$|location$)", re.I)


# --------------------------------------------------------------------------
# The server and a bucket per test
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint():
    endpoint = os.environ.get("TURINGTEST_TEST_S3_ENDPOINT")
    if endpoint:
        yield endpoint.rstrip("/")
        return
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "turingtest",
    "AWS_SECRET_ACCESS_KEY": "turingtest-secret",
    # A developer's own AWS configuration must not be picked up.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@dataclass
class Bucket:
    name: str
    endpoint: str
    client: object

    @property
    def url(self) -> str:
        return (
            f"s3://{self.name}/{PREFIX}?endpoint_url={self.endpoint}&region=us-east-1"
        )

    def keys(self) -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return {o["Key"] for page in pages for o in page.get("Contents", ())}

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def empty(self) -> None:
        for key in self.keys():
            self.client.delete_object(Bucket=self.name, Key=key)


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    import boto3

    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    b = Bucket(f"tt-{uuid.uuid4().hex[:12]}", s3_endpoint, client)
    client.create_bucket(Bucket=b.name)
    yield b
    b.empty()
    client.delete_bucket(Bucket=b.name)


@pytest.fixture
def s3_media(settings, bucket, tmp_path):
    """The default storage switched to the bucket, as MEDIA_STORAGE would.

    Image.file uses Django's ``default_storage``, which Django rebuilds from
    ``STORAGES`` whenever the setting changes; MEDIA_ROOT points at an empty
    folder that must stay empty.
    """
    settings.MEDIA_ROOT = tmp_path / "local-media"
    settings.STORAGES = settings.STORAGES | {"default": storage_from_url(bucket.url)}
    return bucket


def _local_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --------------------------------------------------------------------------
# The setting
# --------------------------------------------------------------------------


def test_an_empty_setting_keeps_the_local_folder():
    assert storage_from_url("") == {
        "BACKEND": "django.core.files.storage.FileSystemStorage"
    }


def test_an_s3_url_names_bucket_prefix_server_and_region():
    storage = storage_from_url(
        "s3://pool-images/turingtest/media?endpoint_url=http://127.0.0.1:5055"
        "&region=us-east-1&addressing_style=path"
    )
    assert storage["BACKEND"] == S3
    assert storage["OPTIONS"] == {
        "bucket_name": "pool-images",
        "location": "turingtest/media",
        "endpoint_url": "http://127.0.0.1:5055",
        "region_name": "us-east-1",
        "addressing_style": "path",
        "default_acl": None,
        "querystring_auth": False,
        "file_overwrite": False,
    }
    assert storage_from_url("s3://pool-images")["OPTIONS"]["location"] == ""


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///srv/media", "unknown scheme 'file'"),
        ("/srv/media", "unknown scheme '(none)'"),
        ("s3://", "is not a bucket name"),
        ("s3://Pool_Images/x", "is not a bucket name"),
        ("s3://key:secret@pool-images", "credentials do not belong in the URL"),
        ("s3://pool-images:9000", "the server goes in endpoint_url"),
        ("s3://pool-images:port", "not a URL"),
        ("s3://pool-images/a//b", "not a folder-like prefix"),
        ("s3://pool-images/../b", "not a folder-like prefix"),
        ("s3://pool-images?region=", "region needs exactly one value"),
        ("s3://pool-images?bucket=other", "unknown option 'bucket'"),
        ("s3://pool-images?endpoint_url=minio:9000", "is not an http(s) URL"),
        ("s3://pool-images?addressing_style=sideways", "addressing_style must be"),
        ("s3://pool-images?region", "cannot read the query"),
    ],
)
def test_a_malformed_url_is_refused_with_its_reason(url, reason):
    with pytest.raises(ImproperlyConfigured) as refused:
        storage_from_url(url)
    message = str(refused.value)
    assert message.startswith(f"MEDIA_STORAGE={url!r}: ")
    assert reason in message and "s3://BUCKET" in message


def _start(env: dict) -> subprocess.CompletedProcess:
    """Load the settings in a fresh process, as a web server or worker starts."""
    return subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.STORAGES"],
        cwd=ROOT,
        env=os.environ | {"DJANGO_SETTINGS_MODULE": "turingtest.settings"} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_process_with_a_malformed_url_does_not_start():
    started = _start({"MEDIA_STORAGE": "s3://Not A Bucket"})
    assert started.returncode != 0
    assert "ImproperlyConfigured: MEDIA_STORAGE='s3://Not A Bucket'" in started.stderr


@pytest.mark.parametrize("serving", ["nginx", "apache"])
def test_front_server_image_serving_with_a_bucket_does_not_start(serving):
    started = _start(
        {
            "MEDIA_STORAGE": "s3://pool-images?region=us-east-1",
            "TURINGTEST_IMAGE_SERVING": serving,
        }
    )
    assert started.returncode != 0
    assert (
        f"TURINGTEST_IMAGE_SERVING={serving} needs the images on a local disk"
        in started.stderr
    )
    # The same serving on the local disk starts.
    assert (
        _start({"MEDIA_STORAGE": "", "TURINGTEST_IMAGE_SERVING": serving}).returncode
        == 0
    )


# --------------------------------------------------------------------------
# The pool in a bucket
# --------------------------------------------------------------------------


def test_pool_images_are_private_objects_in_the_bucket_only(db, s3_media, settings):
    from storages.backends.s3 import S3Storage

    image = image_create(pixels=builders.picture(0), source="real", kl_grade=2)
    assert isinstance(Image._meta.get_field("file").storage._wrapped, S3Storage)
    key = f"{PREFIX}/pool/{image.sha256}.png"
    assert s3_media.keys() == {key}
    assert hashlib.sha256(s3_media.read(key)).hexdigest() == image.sha256
    assert _local_files(Path(settings.MEDIA_ROOT)) == []
    # Only the owner may read it: no public grant, and no signed link in its URL.
    grants = s3_media.client.get_object_acl(Bucket=s3_media.name, Key=key)["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    assert all(g["Grantee"]["Type"] == "CanonicalUser" for g in grants)
    assert "Signature" not in image.file.url and "X-Amz" not in image.file.url
    # Creating it again reuses the object; the file is still there and the same.
    again = image_create(pixels=builders.picture(0), source="real", kl_grade=2)
    assert again.pk == image.pk and s3_media.keys() == {key}


def test_staff_import_lands_in_the_bucket(db, s3_media, settings, tmp_path):
    root = tmp_path / "set"
    for grade, seed in ((0, 1), (3, 2)):
        path = root / str(grade) / f"knee{seed}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(builders.jpeg(builders.picture(seed)))
    out = io.StringIO()
    call_command(
        "import_images", str(root), "--source", "real", stdout=out, stderr=io.StringIO()
    )
    assert "2 imported, 0 duplicates skipped, 0 rejected" in out.getvalue()
    expected = set()
    for image in Image.objects.all():
        assert image.original  # a JPEG keeps its original beside the canonical PNG
        expected |= {f"{PREFIX}/{image.file.name}", f"{PREFIX}/{image.original.name}"}
    assert s3_media.keys() == expected
    assert {k.split("/")[1] for k in expected} == {"pool", "originals"}
    assert _local_files(Path(settings.MEDIA_ROOT)) == []
    assert pool_check().ok
    # A second import of the same files finds them there: nothing new is written.
    again = images_import(root, source="real")
    assert again.imported == [] and len(again.duplicates) == 2
    assert s3_media.keys() == expected


def test_pool_check_and_orphan_sweep_read_the_bucket(db, s3_media):
    kept = image_create(pixels=builders.picture(1), source="real", kl_grade=1)
    lost = image_create(pixels=builders.picture(2), source="real", kl_grade=1)
    s3_media.client.delete_object(
        Bucket=s3_media.name, Key=f"{PREFIX}/{lost.file.name}"
    )
    s3_media.client.put_object(
        Bucket=s3_media.name, Key=f"{PREFIX}/pool/stray.png", Body=b"left over"
    )
    check = pool_check()
    assert check.missing_files == [lost.pk]
    assert check.orphan_files == ["pool/stray.png"]
    # Young orphans may belong to an import still running: they stay.
    assert pool_orphans_remove(older_than=timedelta(hours=1)) == []
    time.sleep(1.1)  # S3 times have whole seconds
    assert pool_orphans_remove(older_than=timedelta(0)) == ["pool/stray.png"]
    assert s3_media.keys() == {f"{PREFIX}/{kept.file.name}"}


def test_an_image_is_one_request_to_the_bucket_streamed_as_it_arrives(db, s3_media):
    from django.core.files.storage import default_storage

    from turingtest.studies.api import image_response

    image = image_create(pixels=builders.picture(3), source="real", kl_grade=3)
    calls = []
    events = default_storage.connection.meta.client.meta.events
    events.register("before-call.s3", lambda model, **kw: calls.append(model.name))
    response = image_response(image.file.name)
    body = b"".join(response.streaming_content)
    assert calls == ["GetObject"]
    assert body == s3_media.read(f"{PREFIX}/{image.file.name}")
    assert response["Content-Length"] == str(len(body))
    with pytest.raises(FileNotFoundError):
        image_response("pool/gone.png")


def test_images_from_the_bucket_reach_readers_as_from_the_disk(
    s3_media, reader_api, study, settings, tmp_path
):
    responses, steps = _reader_traffic(reader_api, study)
    images = [r for r in responses if r.get("Content-Type") == "image/png"]
    assert len(images) == len(steps) == 22
    secrets = _secrets(study) | {s3_media.name, s3_media.endpoint}
    served = {}
    for step, response in zip(steps, images, strict=True):
        assert response.status_code == 200
        headers = dict(response.headers)
        assert {k: headers.get(k) for k in IMAGE_HEADERS} == IMAGE_HEADERS
        assert not [h for h in headers if STORE_HEADERS.match(h)]
        text = " ".join(f"{k}: {v}" for k, v in headers.items())
        assert not [s for s in secrets if s in text]
        served[step["image"]] = (headers, b"".join(response.streaming_content))
    stored = {s3_media.read(k) for k in s3_media.keys()}
    assert {body for _, body in served.values()} <= stored

    # The same files on the local disk: the same replies, header for header.
    media = tmp_path / "disk-media"
    for key in s3_media.keys():
        path = media / key.removeprefix(f"{PREFIX}/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3_media.read(key))
    settings.MEDIA_ROOT = media
    settings.STORAGES = settings.STORAGES | {"default": storage_from_url("")}
    for url, (headers, body) in served.items():
        response = reader_api.client.get(url)
        assert response.status_code == 200
        assert dict(response.headers) == headers
        assert b"".join(response.streaming_content) == body


def test_a_study_backed_up_from_the_bucket_restores_into_it(
    s3_media, study, reader_api, tmp_path
):
    from turingtest.results import backup

    step = reader_api.next().json()
    before = b"".join(reader_api.client.get(step["image"]).streaming_content)
    stored = {k: s3_media.read(k) for k in s3_media.keys()}
    archive = backup.study_backup(study=study, out=tmp_path / "knee.zip")
    backup.study_delete(study=study, confirmation=study.slug)
    Image.objects.all().delete()
    s3_media.empty()

    backup.study_restore(path=archive)
    restored = {k: s3_media.read(k) for k in s3_media.keys()}
    # The study's images come back under their own keys; the spare pool
    # images, in no case of the study, were not in its archive.
    assert restored and restored.items() <= stored.items()
    assert len(restored) == Image.objects.count()
    again = reader_api.client.get(step["image"])
    assert again.status_code == 200
    assert b"".join(again.streaming_content) == before


# --------------------------------------------------------------------------
# A GPU worker and a web server, each its own process, sharing the bucket
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from generator.train import TrainOptions, train
    from turingtest.imaging.phantom import phantom_dataset

    base = tmp_path_factory.mktemp("tiny")
    phantom_dataset(base / "data", per_grade=4, size=32, seed=0)
    return train(
        TrainOptions(
            data=str(base / "data"),
            out=str(base / "run"),
            config="tiny",
            steps=2,
            progress=False,
        )
    )


def _redis_url() -> str | None:
    if not os.environ.get("REDIS_URL"):
        return None
    parts = urlsplit(os.environ["REDIS_URL"])
    return urlunsplit(parts._replace(path="/12"))


def _flush(redis_url: str | None) -> None:
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()


def _worker(stack: LiveStack, name: str) -> subprocess.Popen:
    log = open(stack.base / f"{name}.log", "w")  # noqa: SIM115 - the worker writes to it
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "turingtest",
            "worker",
            "-Q",
            "gpu",
            "--pool",
            "solo",
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "-l",
            "info",
        ],
        cwd=ROOT,
        env=stack.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.worker
def test_a_gpu_worker_writes_to_the_bucket_and_readers_get_its_images(
    bucket, tiny_checkpoint, tmp_path
):
    redis_url = _redis_url()
    _flush(redis_url)
    stack = LiveStack(tmp_path, name="object_storage", redis_url=redis_url)
    # Web and worker share only the database, the broker and the bucket: each
    # has a media folder of its own, which must stay empty.
    stack.env.update(AWS_ENV, MEDIA_STORAGE=bucket.url)
    stack.env.pop("AWS_PROFILE", None)
    stack.env.pop("AWS_SESSION_TOKEN", None)
    if not redis_url:
        for sub in ("queue", "processed"):
            (tmp_path / "broker" / sub).mkdir(parents=True, exist_ok=True)
    worker_media, web_media = tmp_path / "worker-media", tmp_path / "web-media"
    worker = None
    try:
        stack.setup()
        stack.manage("register_generator", str(tiny_checkpoint), "--name", "tiny")
        stack.env["MEDIA_ROOT"] = str(worker_media)
        worker = _worker(stack, "gpu1")
        stack.env["MEDIA_ROOT"] = str(web_media)
        out = stack.manage(
            "generate_images",
            "--generator",
            "tiny",
            "--per-grade",
            "1",
            "--wait",
            "--timeout",
            "240",
        )
        assert "done 5/5" in out, out
        generated = stack.query(
            "SELECT file FROM imaging_image WHERE job_id IS NOT NULL ORDER BY job_index"
        )
        assert len(generated) == 5
        generated_keys = {f"{PREFIX}/{name}" for (name,) in generated}
        assert bucket.keys() == generated_keys
        made = {bucket.read(k) for k in generated_keys}

        # A study whose synthetic cases are the worker's images (seeding adds
        # real phantoms, into the bucket too), and a reader who reads it all.
        seeded = stack.seed(slug="bucket", readers=1, per_grade=1, practice=2)
        referenced = {
            f"{PREFIX}/{name}"
            for (name,) in stack.query("SELECT file FROM imaging_image")
        }
        assert bucket.keys() == referenced
        stack.start(workers=1, threads=2)
        reader = HttpReader(stack)
        reader.login(seeded["readers"][0])
        reader.consent("bucket")
        served = []
        step = reader.next("bucket").json()
        while "redirect" not in step:
            image = reader.image(step["image"])
            assert image.status == 200, image.body[:300]
            headers = dict(image.headers.items())
            assert {k: headers.get(k) for k in IMAGE_HEADERS} == IMAGE_HEADERS
            assert headers["Content-Length"] == str(len(image.body))
            assert not [h for h in headers if STORE_HEADERS.match(h)]
            text = " ".join(f"{k}: {v}" for k, v in headers.items())
            assert bucket.name not in text and PREFIX + "/" not in text
            served.append((headers, image.body))
            _, answered = reader.answer("bucket", step, choice=len(served))
            assert answered.status == 201, answered.body[:300]
            step = answered.json()["next"]
        assert len(served) == seeded["main_cases"] * seeded["phases"] + 2
        # Every image differs only in its length and body.
        assert (
            len(
                {
                    frozenset(
                        (k, v)
                        for k, v in h.items()
                        if k not in ("Content-Length", "Date")
                    )
                    for h, _ in served
                }
            )
            == 1
        )
        bodies = {body for _, body in served}
        assert made <= bodies  # the worker's images, read from the bucket
        assert bodies <= {bucket.read(k) for k in referenced}
        assert _local_files(worker_media) == [] and _local_files(web_media) == []
    finally:
        if worker is not None:
            _stop(worker)
        stack.close()
        _flush(redis_url)
