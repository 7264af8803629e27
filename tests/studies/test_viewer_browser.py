"""The reading page's image viewer in Chromium at 1280×800: zoom about the
cursor, true window/level on pixel values, 1:1 pixels, pan on a large image.

The images are horizontal gradients (value = 16 + column), so what a screen
pixel should show follows from the column under it and the window/level."""

import csv
import io
import re
import time
import zipfile

import numpy as np
import pytest
from django.test import Client
from PIL import Image as PILImage
from playwright.sync_api import expect

from turingtest.imaging.services import image_create
from turingtest.studies import services
from turingtest.studies.models import Judgment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

READOUT = re.compile(r"x (\d+) y (\d+) · value (\d+)")


def _gradient(size: int, mark: int) -> np.ndarray:
    columns = np.arange(size) * 224 // size  # 16..239 whatever the size
    pixels = np.tile((16 + columns).astype(np.uint8), (size, 1))
    pixels[-1, :mark] = 0  # a different image each time (the pool dedupes content)
    return pixels


@pytest.fixture
def gradient_study(media, make_reader):
    def make(size: int = 224):
        for n, source in enumerate(("real", "synthetic")):
            image_create(pixels=_gradient(size, n + 1), source=source, kl_grade=0)
        study = services.study_create(
            slug="viewer", name="Viewer", phases=("grading",), practice_count=0
        )
        services.cases_build(study=study, per_grade=1, seed=1, grades=(0,))
        services.study_open(study=study)
        enrollment = services.enrollment_consent(enrollment=make_reader(study))
        return enrollment

    return make


def _open_reader(page, live_server, enrollment) -> None:
    client = Client()
    client.force_login(enrollment.reader.user)
    page.context.add_cookies(
        [
            {
                "name": "sessionid",
                "value": client.cookies["sessionid"].value,
                "url": live_server.url,
            }
        ]
    )
    page.goto(f"{live_server.url}/s/viewer/read/")
    page.locator("#interstitial").wait_for(state="visible")
    page.keyboard.press("Enter")
    expect(page.locator("#wl-readout")).to_have_text(re.compile(r"^W 256 L 128"))


def _canvas_box(page) -> dict:
    return page.locator("#view").bounding_box()


def _hover(page, x: float, y: float) -> tuple[int, int, int]:
    """Move to canvas point (x, y); the readout's image column, row and value."""
    box = _canvas_box(page)
    page.mouse.move(round(box["x"] + x), round(box["y"] + y))
    readout = page.locator("#pixel-readout")
    expect(readout).to_have_text(READOUT)
    u, v, value = map(int, READOUT.search(readout.inner_text()).groups())
    return u, v, value


def _screen(page) -> np.ndarray:
    """What the reader sees on the canvas, as gray values."""
    png = page.locator("#view").screenshot()
    return np.asarray(PILImage.open(io.BytesIO(png)).convert("L")).astype(int)


def _voi(x: np.ndarray, window: int, level: int) -> np.ndarray:
    # DICOM PS3.3 C.11.2.1.2, the linear function.
    y = ((x - (level - 0.5)) / (window - 1) + 0.5) * 255
    return np.clip(np.round(y), 0, 255)


def test_wheel_zoom_keeps_the_point_under_the_cursor(page, live_server, gradient_study):
    _open_reader(page, live_server, gradient_study())
    box = _canvas_box(page)
    x, y = round(box["width"] / 2) + 170, round(box["height"] / 2) - 120
    before = _hover(page, x, y)
    for _ in range(4):
        page.mouse.wheel(0, -200)
    expect(page.locator("#zoom-readout")).not_to_have_text(re.compile("fit"))
    zoom = int(page.locator("#zoom-readout").inner_text().split("%")[0])
    assert zoom > 600, zoom  # fit is ~340% for 224 px in 800 px; 4 steps of 1.44
    page.mouse.move(round(box["x"] + x + 1), round(box["y"] + y))
    after = _hover(page, x, y)
    assert after[:2] == before[:2]
    # And the screen shows that pixel there: value 16 + column, as stored.
    screen = _screen(page)
    assert abs(screen[int(y), int(x)] - after[2]) <= 2
    # Zooming out again about another point keeps that one too.
    other = _hover(page, 200, 500)
    page.mouse.wheel(0, 200)
    page.mouse.move(round(box["x"] + 201), round(box["y"] + 500))
    assert _hover(page, 200, 500)[:2] == other[:2]


def test_window_level_maps_pixel_values_as_dicom_does(
    page, live_server, gradient_study
):
    _open_reader(page, live_server, gradient_study())
    page.keyboard.press("p")  # 1:1, so each screen pixel is one image pixel
    expect(page.locator("#zoom-readout")).to_have_text(re.compile(r"^100% · 1:1"))
    box = _canvas_box(page)
    cy = box["height"] / 2
    # Image columns under screen columns, from the readout at two points.
    u0, _, _ = _hover(page, box["width"] / 2 - 100, cy)
    left = int(box["width"] / 2 - 100)
    columns = np.arange(left, left + 200)
    stored = 16 + (u0 + columns - left)

    def row():
        page.mouse.move(0, 0)  # no readout over the image
        return _screen(page)[int(cy), columns]

    # As stored: W 256 / L 128 is the identity.
    np.testing.assert_array_equal(row(), stored)

    page.keyboard.press("Shift+Digit2")  # bone
    expect(page.locator("#wl-readout")).to_have_text("W 120 L 170 · Bone")
    np.testing.assert_allclose(row(), _voi(stored, 120, 170), atol=1)

    page.keyboard.press("Shift+Digit4")  # full range: this image's 0..239
    expect(page.locator("#wl-readout")).to_have_text("W 240 L 120 · Full range")
    np.testing.assert_allclose(row(), _voi(stored, 240, 120), atol=1)

    # Right-drag: horizontal sets the window, vertical the level.
    page.keyboard.press("Shift+Digit1")
    page.mouse.move(box["x"] + 300, box["y"] + 300)
    page.mouse.down(button="right")
    page.mouse.move(box["x"] + 300 - 156, box["y"] + 300 - 28, steps=8)
    page.mouse.up(button="right")
    expect(page.locator("#wl-readout")).to_have_text("W 100 L 100")
    np.testing.assert_allclose(row(), _voi(stored, 100, 100), atol=1)
    assert row().min() == 0 and row().max() == 255  # narrow window clips both ends

    page.keyboard.press("i")
    expect(page.locator("#wl-readout")).to_have_text("W 100 L 100 · inverted")
    np.testing.assert_allclose(row(), 255 - _voi(stored, 100, 100), atol=1)


def test_one_to_one_and_fit(page, live_server, gradient_study):
    _open_reader(page, live_server, gradient_study())
    expect(page.locator("#zoom-readout")).to_have_text(re.compile(r"· fit$"))
    box = _canvas_box(page)
    cy = int(box["height"] / 2)

    def image_width() -> int:
        page.mouse.move(0, 0)
        return int((_screen(page)[cy] > 8).sum())  # the gradient starts at 16

    fitted = image_width()
    assert fitted == pytest.approx(0.96 * box["height"], abs=2)
    page.keyboard.press("p")
    expect(page.locator("#zoom-readout")).to_have_text(re.compile(r"^100% · 1:1"))
    assert image_width() == 224
    # One image pixel per screen pixel: neighbouring screen pixels step by one.
    row = _screen(page)[cy]
    inside = row[row > 8]
    assert set(np.diff(inside)) == {1}
    page.keyboard.press("f")
    expect(page.locator("#zoom-readout")).to_have_text(re.compile(r"· fit$"))
    assert image_width() == fitted
    # The key map is on screen.
    assert "1:1 pixels" in page.locator("#keymap").inner_text()


def test_large_image_pans_at_full_resolution(
    page, live_server, gradient_study, settings
):
    settings.TURINGTEST = settings.TURINGTEST | {"IMAGE_SIZE": 2048}
    _open_reader(page, live_server, gradient_study(size=2048))
    box = _canvas_box(page)
    page.keyboard.press("p")
    expect(page.locator("#zoom-readout")).to_have_text(re.compile(r"^100% · 1:1"))
    cx, cy = box["width"] / 2, box["height"] / 2
    u, v, _ = _hover(page, cx, cy)
    page.mouse.down()
    started = time.monotonic()
    page.mouse.move(box["x"] + cx - 300, box["y"] + cy - 200, steps=30)
    moved = time.monotonic() - started
    page.mouse.up()
    assert moved < 5, f"30 pan steps of a 2048 px image took {moved:.1f} s"
    page.mouse.move(box["x"] + cx + 1, box["y"] + cy)
    u2, v2, value = _hover(page, cx, cy)
    assert (u2, v2) == (u + 300, v + 200)
    assert value == 16 + u2 * 224 // 2048
    # Arrow keys pan too.
    page.keyboard.press("ArrowLeft")
    page.mouse.move(box["x"] + cx + 1, box["y"] + cy)
    assert _hover(page, cx, cy)[0] == u2 - 60


def test_interaction_log_reaches_interactions_csv_and_the_heatmap(
    page, live_server, gradient_study, staff_client
):
    enrollment = gradient_study()
    _open_reader(page, live_server, enrollment)
    box = _canvas_box(page)
    scale = 0.96 * min(box["width"], box["height"]) / 224
    left = (box["width"] - 224 * scale) / 2
    top = (box["height"] - 224 * scale) / 2
    # Zoom in on the image's top-left, look there a while, window it, answer.
    u, v, _ = _hover(page, left + 0.2 * 224 * scale, top + 0.2 * 224 * scale)
    for _ in range(3):
        page.mouse.wheel(0, -300)
    expect(page.locator("#zoom-readout")).not_to_have_text(re.compile("fit"))
    page.wait_for_timeout(1200)
    page.keyboard.press("d")
    page.keyboard.press("Shift+Digit2")
    expect(page.locator("#wl-readout")).to_contain_text("Bone")
    page.wait_for_timeout(300)
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#progress-text")).to_have_text("2 / 2")

    judgment = Judgment.objects.get(session__enrollment=enrollment, position=0)
    log = judgment.interaction
    kinds = [e[1] for e in log["events"]]
    assert {"v", "z", "w", "p"} <= set(kinds)
    assert 0 < log["first_input_ms"] <= log["answer_ms"]
    zoom = next(e for e in log["events"] if e[1] == "z")
    assert zoom[3:] == pytest.approx([u + 0.5, v + 0.5], abs=1)  # about the cursor

    # interactions.csv: one row per event of this answer.
    data = b"".join(
        staff_client.get("/staff/studies/viewer/results.zip").streaming_content
    )
    text = zipfile.ZipFile(io.BytesIO(data)).read("viewer/interactions.csv").decode()
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["position"] == "1"]
    assert len(rows) == len(log["events"])
    assert {r["case"] for r in rows} == {str(judgment.case.number)}
    events = {r["event"] for r in rows}
    assert {"viewport", "zoom", "window_level", "preset"} <= events
    assert [r["detail"] for r in rows if r["event"] == "preset"] == ["bone"]
    zoomed = [r for r in rows if r["event"] == "viewport" and float(r["width"]) < 200]
    assert zoomed and all(float(r["x"]) < 112 for r in zoomed)

    # The heatmap: the study page shows it, warm where the reader zoomed in.
    html = staff_client.get("/staff/studies/viewer/").content.decode()
    assert f'data-case="{judgment.case.number}"' in html
    png = staff_client.get(
        f"/staff/studies/viewer/heatmaps/{judgment.case.number}.png"
    ).content
    rgb = np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB")).astype(int)
    warmth = rgb[..., 0] - rgb[..., 2]  # red over blue: the overlay, not the gray
    half = rgb.shape[0] // 2
    # (Zooming in passed through wider views for a moment: some warmth there.)
    assert warmth[:half, :half].mean() > 40
    assert warmth[:half, :half].mean() > 3 * warmth[half:, half:].mean()
