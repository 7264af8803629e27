"""Where pool images are stored, from one URL setting (``MEDIA_STORAGE``).

Empty: the local folder ``MEDIA_ROOT`` (the embedded default). For web servers
and GPU workers on several machines, an S3-compatible bucket::

    s3://BUCKET/PREFIX?endpoint_url=https://s3.example.org&region=eu-central-1

Credentials never go in the URL: boto3 takes them from its usual sources
(``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``, a profile, an instance
role). Objects are private: no ACL is set on them and nothing hands a reader a
bucket URL; images reach readers only through the access-checked image view.

Imported by settings.py, so nothing here may need Django set up.
"""

from __future__ import annotations

import re
import sys
from typing import IO
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured

FILESYSTEM = "django.core.files.storage.FileSystemStorage"
S3 = "storages.backends.s3.S3Storage"

# Query parameters a MEDIA_STORAGE URL may carry, and the S3Storage option each sets.
S3_QUERY_OPTIONS = {
    "endpoint_url": "endpoint_url",
    "region": "region_name",
    "addressing_style": "addressing_style",
}
ADDRESSING_STYLES = ("auto", "path", "virtual")
# S3's rules for bucket names (the ones every S3-compatible server accepts).
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _refuse(url: str, reason: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"MEDIA_STORAGE={url!r}: {reason}. Expected empty (files under MEDIA_ROOT) "
        "or s3://BUCKET[/PREFIX][?endpoint_url=URL&region=NAME&addressing_style="
        "path|virtual|auto]."
    )


def storage_from_url(url: str) -> dict:
    """The ``STORAGES["default"]`` entry that ``url`` names.

    Raises ``ImproperlyConfigured`` with the reason when ``url`` is malformed.
    """
    url = url.strip()
    if not url:
        return {"BACKEND": FILESYSTEM}
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise _refuse(url, f"not a URL ({exc})") from None
    if parts.scheme != "s3":
        raise _refuse(url, f"unknown scheme {parts.scheme or '(none)'!r}")
    if parts.username is not None or parts.password is not None:
        raise _refuse(
            url,
            "credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY instead",
        )
    if port is not None:
        raise _refuse(url, "the server goes in endpoint_url, not in the bucket name")
    bucket = parts.hostname or ""
    if not BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise _refuse(
            url,
            f"{bucket!r} is not a bucket name (3 to 63 lower-case letters, "
            "digits, dots and hyphens)",
        )
    if parts.fragment:
        raise _refuse(url, "a #fragment means nothing here")
    prefix = parts.path.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise _refuse(url, f"{prefix!r} is not a folder-like prefix")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise _refuse(url, f"cannot read the query {parts.query!r}") from None
    options = {
        "bucket_name": bucket,
        "location": prefix,
        # Private objects: no ACL (the bucket's own, private by default) and
        # no signed URLs; readers get images only from the access-checked view.
        "default_acl": None,
        "querystring_auth": False,
        # As on the filesystem: a name that is taken gets another, never
        # overwritten (imaging deletes a stale file itself before writing).
        "file_overwrite": False,
    }
    for key, values in query.items():
        if key not in S3_QUERY_OPTIONS:
            raise _refuse(
                url,
                f"unknown option {key!r} (known: {', '.join(S3_QUERY_OPTIONS)})",
            )
        if len(values) != 1 or not values[0]:
            raise _refuse(url, f"{key} needs exactly one value")
        options[S3_QUERY_OPTIONS[key]] = values[0]
    endpoint = options.get("endpoint_url")
    if endpoint is not None:
        ep = urlsplit(endpoint)
        if ep.scheme not in ("http", "https") or not ep.hostname:
            raise _refuse(url, f"endpoint_url {endpoint!r} is not an http(s) URL")
    style = options.get("addressing_style")
    if style is not None and style not in ADDRESSING_STYLES:
        raise _refuse(url, f"addressing_style must be one of {ADDRESSING_STYLES}")
    return {"BACKEND": S3, "OPTIONS": options}


def is_local(storage: dict) -> bool:
    """Whether a ``STORAGES`` entry keeps files on this machine's disk."""
    return storage["BACKEND"] == FILESYSTEM


def open_stream(storage, name: str) -> tuple[IO[bytes], int]:
    """The stored file ``name``, open for reading from its start, and its length.

    From a bucket this is one GET whose body is read as it arrives (opening
    it through the storage API would cost HEADs and download it whole first);
    from a disk, the open file. A missing file raises ``FileNotFoundError``
    either way.
    """
    backend = storage.__class__  # sets up a lazy default_storage
    s3 = sys.modules.get("storages.backends.s3")
    if s3 is not None and issubclass(backend, s3.S3Storage):
        from botocore.exceptions import ClientError
        from storages.utils import clean_name, safe_join

        key = safe_join(storage.location, clean_name(name))
        try:
            reply = storage.connection.meta.client.get_object(
                Bucket=storage.bucket_name, Key=key
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"No stored file {name!r}.") from None
            raise
        return reply["Body"], int(reply["ContentLength"])
    file = storage.open(name, "rb")
    return file, file.size


def _storage_errors() -> tuple[type[BaseException], ...]:
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 is in requirements.txt
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


# What a storage call may raise when the file or the store is not there:
# OSError on a disk, botocore's errors on S3 (which are not OSErrors).
STORAGE_ERRORS = _storage_errors()
