"""The report file: the full report, its plots and a zoom heatmap per image."""

import base64
import io
import re
import zipfile

import numpy as np
from django.core.management import call_command
from PIL import Image as PILImage

from turingtest.studies.models import Judgment

# A reader zooms into the top-left quarter of the image for three seconds.
TOP_LEFT = {
    "first_input_ms": 500,
    "answer_ms": 3600,
    "events": [
        [0, "v", 0, 0, 224, 224],
        [500, "z", 2, 56, 56],
        [600, "v", 0, 0, 112, 112],
    ],
}
FIGURE = re.compile(
    r'<figure data-case="(\d+)"><img src="data:image/png;base64,([^"]+)"'
)


def answer_three_with_a_zoom(reader_api) -> list[int]:
    step = reader_api.next().json()
    logged = 0
    while logged < 3:
        asked = {q["field"] for q in step["phase"]["questions"]}
        practice = step["stage"] == "practice"
        body = {
            "stage": step["stage"],
            "position": step["position"],
            "kl_grade": 1,
            "confidence": 2 if "confidence" in asked else None,
            "interaction": None if practice else TOP_LEFT,
        }
        response = reader_api.post("answers", body)
        assert response.status_code == 201, response.content
        logged += not practice
        step = response.json()["next"]
    return sorted(
        Judgment.objects.filter(interaction__isnull=False).values_list(
            "case__number", flat=True
        )
    )


def warmth(png: bytes) -> tuple[float, float]:
    """Mean red minus blue in the top-left and bottom-right quarters."""
    rgb = np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    h, w, _ = rgb.shape
    warm = rgb[..., 0] - rgb[..., 2]
    return warm[: h // 2 - 8, : w // 2 - 8].mean(), warm[
        h // 2 + 8 :, w // 2 + 8 :
    ].mean()


def test_report_html_shows_a_zoom_heatmap_per_image(reader_api, study, staff_client):
    numbers = answer_three_with_a_zoom(reader_api)

    response = staff_client.get(f"/staff/studies/{study.slug}/results.zip")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    html = archive.read(f"{study.slug}/report.html").decode()

    # The full report's tables are HTML, not Markdown.
    assert "<table>" in html and "|---|" not in html
    figures = FIGURE.findall(html)
    assert sorted(int(n) for n, _ in figures) == numbers
    for _, png in figures:
        top_left, bottom_right = warmth(base64.b64decode(png))
        assert top_left > 60 and abs(bottom_right) < 5, (top_left, bottom_right)
    assert "1 reader zoomed in" in html

    # The same file from the command line.
    out = io.StringIO()
    call_command("study_report", study.slug, "--format", "html", stdout=out)
    assert sorted(int(n) for n, _ in FIGURE.findall(out.getvalue())) == numbers


def test_report_html_says_when_no_reader_zoomed_in(study, staff_client):
    out = io.StringIO()
    call_command("study_report", study.slug, "--format", "html", stdout=out)
    assert 'id="zoom-heatmaps-none"' in out.getvalue()
    assert not FIGURE.findall(out.getvalue())
