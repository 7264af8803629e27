"""Reader images sent by nginx alone, from short-lived signed URLs.

With ``TURINGTEST_IMAGE_SERVING=nginx-signed`` the reader API hands out
image URLs that nginx checks itself (its ``secure_link`` module) and serves
from disk, so an image costs the app nothing; the access check moves to the
moment the URL is issued (only an enrolled, consented reader of an open
study gets one, in the ``next`` step) and to its expiry.

- A URL names the case's token (one image in two studies has two unrelated
  URLs), an expiry and a signature: ``/signed-images/<token>?e=<expiry>&s=<sig>``
  with ``sig = base64url(md5("<expiry><path> <key>"))``, nginx's
  ``secure_link_md5 "$secure_link_expires$uri <key>"``.
- Expiries are rounded up to a five-minute step, so the URL of an image stays
  the same for a while and the browser's cache (and the viewer's preload)
  keeps working; a URL is good for ``TURINGTEST_IMAGE_URL_SECONDS`` to that
  plus five minutes.
- nginx finds the file by token: while a study is open, ``MEDIA_ROOT/cases/``
  holds a link per case, named by its token, to the pool file. Closing or
  deleting the study removes its links at once, so its URLs stop working
  whatever their expiry. A reader removed from an open study keeps URLs
  already issued until they expire.
- The location strips the file's date and ETag and sets the same headers for
  every image (docs/deploy.md); nothing in a URL, a link name or a reply
  tells a real image from a synthetic one.

Written by hand: nginx's signature scheme is a line of hashing, and the links
are a folder of symlinks; no library covers either.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path

from django.conf import settings

from turingtest.conf import project_settings

CASES_DIR = "cases"
EXPIRY_STEP = 300  # seconds: URLs stay the same within a step


def signing_enabled() -> bool:
    return project_settings().image_serving == "nginx-signed"


def signed_url(token: str, *, now: float | None = None) -> str:
    """The signed URL of the case ``token``, as the reader's browser fetches it."""
    conf = project_settings()
    now = time.time() if now is None else now
    expires = (int(now + conf.image_url_seconds) // EXPIRY_STEP + 1) * EXPIRY_STEP
    path = f"{conf.image_signed_prefix}{token}"
    return f"{path}?e={expires}&s={signature(path, expires, conf.image_signing_key)}"


def signature(path: str, expires: int, key: str) -> str:
    """nginx's ``secure_link_md5 "$secure_link_expires$uri <key>"``, base64url."""
    digest = hashlib.md5(f"{expires}{path} {key}".encode()).digest()  # noqa: S324 - nginx's scheme
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def cases_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / CASES_DIR


def case_links_create(study) -> int:
    """A link per case of ``study`` under ``MEDIA_ROOT/cases``; returns how many
    were made (existing ones are left as they are)."""
    folder = cases_dir()
    folder.mkdir(parents=True, exist_ok=True)
    made = 0
    for token, name in study.cases.values_list("token", "image__file"):
        link = folder / token
        if link.is_symlink() or link.exists():
            continue
        # Relative, so the media folder can move (or be mounted elsewhere).
        target = os.path.relpath(Path(settings.MEDIA_ROOT) / name, folder)
        tmp = folder / f".{token}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.rename(link)  # atomic: nginx never sees half a link
        made += 1
    return made


def case_links_remove(tokens) -> int:
    """Remove the links of these case tokens; returns how many were there."""
    folder = cases_dir()
    removed = 0
    for token in tokens:
        try:
            (folder / token).unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def case_links_sync(study) -> None:
    """Links for an open study, none for any other."""
    if study.status == study.Status.OPEN:
        case_links_create(study)
    else:
        case_links_remove(study.cases.values_list("token", flat=True))
