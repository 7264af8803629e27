"""Settings in one place: declared in settings.py, documented, typed, checked."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from turingtest.conf import ProjectSettings, project_settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = (ROOT / "turingtest" / "settings.py").read_text()
DEPLOY = (ROOT / "docs" / "deploy.md").read_text()


def settings_variables() -> set[str]:
    """Every environment variable settings.py reads."""
    names = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', SETTINGS))
    names |= {f"TURINGTEST_{name}" for name in ProjectSettings.names()}
    return names


def test_every_variable_is_documented_in_deploy_md():
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", DEPLOY, re.MULTILINE))
    variables = settings_variables()
    assert {"SECRET_KEY", "DATABASE_URL", "TURINGTEST_IMAGE_SIZE"} <= variables
    assert variables - documented == set()
    assert documented - variables == set(), "deploy.md lists a variable nothing reads"


def test_every_project_setting_is_declared_in_settings_py(settings):
    assert sorted(settings.TURINGTEST) == sorted(ProjectSettings.names())


def test_code_reads_project_settings_only_through_the_accessor():
    readers = re.compile(
        r'settings\.TURINGTEST\b|getattr\(settings, "|environ(?:\.get)?\(\s*"TURINGTEST_'
    )
    offenders = []
    for folder in ("turingtest", "generator"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name in ("settings.py", "conf.py"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if readers.search(line):
                    offenders.append(
                        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                    )
    assert offenders == []


@pytest.mark.parametrize(
    "variable, value, message",
    [
        (
            "TURINGTEST_IMAGE_SERVING",
            "lighttpd",
            "django, nginx, apache or nginx-signed",
        ),
        ("TURINGTEST_IMAGE_SERVING", "nginx-signed", "TURINGTEST_IMAGE_SIGNING_KEY"),
        ("TURINGTEST_IMAGE_SIZE", "big", "a whole number"),
        ("TURINGTEST_CANONICALISE", "perhaps", "a bool"),
        ("TURINGTEST_IMAGE_FIT", "stretch", "('crop', 'pad')"),
        ("TURINGTEST_GENERATION_BATCH_SIZE", "0", "at least 1"),
    ],
)
def test_a_bad_value_stops_the_app_at_start_naming_the_variable(
    variable, value, message
):
    env = os.environ | {variable: value}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last and variable in last and message in last


def test_an_unknown_or_missing_name_is_refused(settings):
    with pytest.raises(
        ImproperlyConfigured, match="Unknown TURINGTEST setting.*IMAGE_SIZ\\b"
    ):
        ProjectSettings.from_mapping(settings.TURINGTEST | {"IMAGE_SIZ": 512})
    partial = dict(settings.TURINGTEST)
    del partial["INVITATION_DAYS"]
    with pytest.raises(ImproperlyConfigured, match="does not declare INVITATION_DAYS"):
        ProjectSettings.from_mapping(partial)


def test_values_from_the_environment_are_typed():
    values = {name: "" for name in ProjectSettings.names()} | {
        "IMAGE_SIZE": "512",
        "IMAGE_FIT": "pad",
        "IMAGE_NORMALISE": "none",
        "IMAGE_NORMALISE_LOW": "2",
        "IMAGE_NORMALISE_HIGH": "98.5",
        "PNG_COMPRESS_LEVEL": "6",
        "CANONICALISE": "false",
        "KEEP_ORIGINALS": "yes",
        "KEEP_DICOM_ORIGINALS": "0",
        "MAX_UPLOAD_BYTES": "1000",
        "MAX_ARCHIVE_RATIO": "50",
        "MAX_ARCHIVE_ENTRIES": "10",
        "MAX_IMAGE_PIXELS": "100000",
        "MIN_IMAGE_SIDE": "16",
        "MAX_ASPECT_RATIO": "3",
        "IMAGE_SERVING": "nginx",
        "IMAGE_INTERNAL_PREFIX": "/internal/",
        "IMAGE_SIGNED_PREFIX": "/signed/",
        "IMAGE_SIGNING_KEY": "k" * 40,
        "IMAGE_URL_SECONDS": "600",
        "INVITATION_DAYS": "7",
        "INVITATION_GUESSES_FREE": "3",
        "INVITATION_GUESS_BACKOFF_SECONDS": "0.5",
        "INVITATION_GUESS_BACKOFF_MAX_SECONDS": "60",
        "GENERATION_LEASE_SECONDS": "30",
        "GENERATION_BATCH_SIZE": "8",
        "DELETED_DIR": "/srv/deleted",
    }
    conf = ProjectSettings.from_mapping(values)
    assert (conf.image_size, conf.canonicalise, conf.keep_originals) == (
        512,
        False,
        True,
    )
    assert conf.image_normalise_high == 98.5 and conf.deleted_dir == Path(
        "/srv/deleted"
    )
    # unset limits follow the upload limit
    assert conf.max_image_bytes is None and conf.image_bytes_limit == 1000
    assert conf.archive_bytes_limit == 4000


@pytest.mark.django_db
def test_a_changed_setting_reaches_the_code_that_reads_it(settings):
    from turingtest.studies import services

    study = services.study_create(slug="conf", name="Conf", phases=("detection",))
    settings.TURINGTEST = settings.TURINGTEST | {"INVITATION_DAYS": 3}
    assert project_settings().invitation_days == 3
    ((invitation, _),) = services.invitations_create(study=study, count=1)
    left = invitation.expires_at - timezone.now()
    assert timedelta(days=2, hours=23) < left <= timedelta(days=3)
