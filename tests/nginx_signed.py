"""The nginx location for signed image URLs, as docs/deploy.md gives it.

Shared by tests/studies/test_signed_images.py and bench/image_serving.py, so
both run the documented configuration; ``location(media=..., key=...)``
fills in the media folder and the signing key.
"""

SIGNED_LOCATION = """
        location /signed-images/ {{
            secure_link $arg_s,$arg_e;
            secure_link_md5 "$secure_link_expires$uri {key}";
            if ($secure_link = "")  {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
            alias {media}/cases/;
            types {{ }}
            default_type image/png;
            etag off;
            if_modified_since off;
            add_header Last-Modified "";
            add_header Cache-Control "private, max-age=3600";
            add_header Content-Disposition "inline";
            add_header X-Content-Type-Options "nosniff";
        }}
"""


def location(*, media, key: str) -> str:
    return SIGNED_LOCATION.format(media=media, key=key)
