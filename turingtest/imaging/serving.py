"""What every pool image is sent with, whichever view or front server sends it."""

# Every image goes out with exactly these headers (plus its length): no
# Last-Modified or ETag, which would date the file and so its import batch.
IMAGE_HEADERS = {
    "Content-Type": "image/png",
    "Cache-Control": "private, max-age=3600",
    "Content-Disposition": "inline",
    "X-Content-Type-Options": "nosniff",
}


def image_response_headers(image) -> dict[str, str]:
    return IMAGE_HEADERS | {"Content-Length": str(image.file.size)}
