"""The status page as a person uses it: Debian's headless Chromium, driven by Playwright,
against the real service (three workers, the real OCR models, the tiny CLIP).

It opens the page at desktop and phone widths, reads the headline and the numbers, waits for
the charts and a restart marker, tries a photo through the form and checks that the boxes
drawn over it are /ocr's answer, over the pixels the service read (EXIF orientation applied),
ranks it with a CLIP query, and looks at the page without JavaScript. Screenshots are kept in
build/test-artifacts/status-page/ (git ignores build/); the test prints where.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image, ImageOps
from playwright.sync_api import sync_playwright

from tests.service import Service

pytestmark = [pytest.mark.service, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "build" / "test-artifacts" / "status-page"
# A closed network: nothing may phone home; root needs --no-sandbox.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PHOTO = "ocr/rapidocr_img_exif_orientation.jpg"  # text, and EXIF orientation 3 (upside down)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=binary, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nstatus page screenshots: {ARTIFACTS}")
    return ARTIFACTS


class Watched:
    """A page with what it asked for and what went wrong in it."""

    def __init__(self, browser: Any, service: Service, viewport: dict[str, int],
                 javascript: bool = True, expected: tuple[tuple[str, str], ...] = ()) -> None:
        # Chromium logs every failed answer; /represent answers 404 until faces are served.
        self.expected = (("404", "/represent"), *expected)
        self.context = browser.new_context(viewport=viewport, java_script_enabled=javascript)
        self.page = self.context.new_page()
        self.requests: list[Any] = []
        self.problems: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r))
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("console", lambda m: self.problems.append(m.text)
                     if m.type == "error" and not self._expected(m) else None)
        self.page.goto(service.url + "/")

    def _expected(self, message: Any) -> bool:
        url = (message.location or {}).get("url", "")
        return any(code in message.text and url.endswith(path) for code, path in self.expected)

    def close(self) -> None:
        self.context.close()


def history_sample(service: Service) -> dict[str, Any]:
    """/status.json once the supervisor has taken a first sample (every 10 s)."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        document = requests.get(service.url + "/status.json", timeout=10).json()
        if document["history"]["t"]:
            return document
        time.sleep(0.5)
    pytest.fail("no history sample within 30 s")


def test_the_page_shows_the_verdict_numbers_and_charts(browser, service: Service, artifacts):
    service.wait_ready(workers=3)
    document = history_sample(service)
    started = time.monotonic()
    seen = Watched(browser, service, DESKTOP)
    page = seen.page
    page.wait_for_selector("#chart-memory svg path")
    headline = page.inner_text("#verdict")
    # The pace at the end ("0.3 jobs/s") is live and may move between the two reads.
    assert document["verdict"]["text"].rsplit(", ", 1)[0] in headline
    assert "running on the CPU" in headline
    assert page.locator("#workers tr").count() == 4  # header + three slots
    assert page.locator("#workers .w-ready, #workers .w-busy").count() == 3
    for chart in ("jobs", "latency", "queue", "memory", "busy", "npu"):
        label = page.get_attribute(f"#chart-{chart} svg.chart", "aria-label")
        assert label and "last hour" in label, chart
    npu = page.inner_text("#chart-npu")
    assert "Not available" in npu and "rknpu/load" in npu  # no NPU driver on this machine
    assert page.locator("#chart-memory .legend li").count() == 3

    # A worker killed now is a restart marker on the charts after the next sample.
    markers = "#chart-jobs line.ev-restart"
    before = page.locator(markers).count()
    restarts = "#workers tr:nth-child(4) td:nth-child(6)"  # slot 2's restarts, as HTML
    counted = int(page.inner_text(restarts))
    victim = service.farm_status()["slots"][2]["pid"]
    os.kill(victim, signal.SIGKILL)
    page.wait_for_function("([css, n]) => document.querySelectorAll(css).length > n",
                           arg=[markers, before], timeout=35_000)
    assert page.locator(markers).last.text_content() == "worker 2 restart: signal SIGKILL"
    # the numbers refresh in place too (the page fetches itself every 10 s)
    page.wait_for_function("([css, n]) => +document.querySelector(css).textContent > n",
                           arg=[restarts, counted], timeout=15_000)
    service.wait_ready(workers=3)

    weight = page.evaluate("""() => performance.getEntriesByType('navigation')
        .concat(performance.getEntriesByType('resource'))
        .reduce((sum, e) => sum + e.encodedBodySize, 0)""")
    print(f"page weight as loaded: {weight} bytes")
    assert 0 < weight < 100_000
    origins = {r.url.split("/")[2] for r in seen.requests if r.url.startswith("http")}
    assert origins == {service.url.split("/")[2]}, origins  # nothing but this service
    page.screenshot(path=str(artifacts / "desktop.png"), full_page=True)
    assert not seen.problems, seen.problems
    print(f"desktop page test: {time.monotonic() - started:.1f} s")
    seen.close()


def ocr_answer(service: Service, photo: Path) -> dict[str, Any]:
    answer = service.post("/ocr", files={"file": (photo.name, photo.read_bytes())})
    assert answer.status_code == 200
    result = answer.json()["result"]
    assert result["texts"], "the test photo must hold text"
    return result


def try_photo(page: Any, photo: Path, key: str) -> None:
    page.fill("#key", key)
    page.set_input_files("#photo", str(photo))
    page.click("#run")


def test_try_it_draws_the_boxes_ocr_answers_over_the_right_pixels(browser, service: Service,
                                                                   shared: Path, artifacts):
    photo = shared / "testdata" / PHOTO
    expected = ocr_answer(service, photo)
    seen = Watched(browser, service, DESKTOP, expected=(("401", "/ocr"),))
    page = seen.page
    page.wait_for_selector("#try-form")

    try_photo(page, photo, "not-the-key")
    refused = page.wait_for_selector("#timing tr[data-step^='OCR'] td.err")
    assert "refused this API key (401)" in refused.inner_text()

    try_photo(page, photo, service.key)
    page.wait_for_selector("#timing tr[data-step^='CLIP']", timeout=60_000)
    sent = [r for r in seen.requests if r.url.endswith("/ocr")]
    assert sent and sent[-1].headers.get("api-key") == service.key
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert seen.context.cookies() == []

    # The rectangles are /ocr's boxes, in the photo's pixels ...
    drawn = page.eval_on_selector_all("#overlay rect.ocr-box", """els => els.map(e => (
        {x: +e.getAttribute('x'), y: +e.getAttribute('y'),
         w: +e.getAttribute('width'), h: +e.getAttribute('height')}))""")
    boxes = [{k: float(b[f]) for k, f in (("x", "x"), ("y", "y"), ("w", "width"),
                                          ("h", "height"))} for b in expected["boxes"]]
    assert drawn == boxes
    texts = page.eval_on_selector_all("#lines li", "els => els.map(e => e.firstChild.data)")
    assert texts == expected["texts"]
    # ... laid over the image where those pixels are shown ...
    image = page.locator("#shot-img")
    shown = image.bounding_box()
    natural = page.evaluate("() => [shotImg.naturalWidth, shotImg.naturalHeight]"
                            .replace("shotImg", "document.getElementById('shot-img')"))
    upright = ImageOps.exif_transpose(Image.open(photo)).convert("RGB")
    assert tuple(natural) == upright.size  # the browser applied EXIF as the service did
    scale = shown["width"] / natural[0]
    rects = page.eval_on_selector_all("#overlay rect.ocr-box", """els => els.map(e => {
        const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height};
    })""")
    for rect, box in zip(rects, boxes):
        assert rect["x"] == pytest.approx(shown["x"] + box["x"] * scale, abs=1.5)
        assert rect["y"] == pytest.approx(shown["y"] + box["y"] * scale, abs=1.5)
        assert rect["w"] == pytest.approx(box["w"] * scale, abs=1.5)
        assert rect["h"] == pytest.approx(box["h"] * scale, abs=1.5)
    # ... and those pixels are the upright photo the service read, not the file as stored.
    page.eval_on_selector("#overlay", "svg => svg.style.visibility = 'hidden'")
    pixels = Image.open(io.BytesIO(image.screenshot())).convert("RGB")
    page.eval_on_selector("#overlay", "svg => svg.style.visibility = ''")

    def difference(reference: Image.Image) -> float:
        ours = np.asarray(pixels, dtype=np.float32)
        theirs = np.asarray(reference.resize(pixels.size, Image.BILINEAR), dtype=np.float32)
        return float(np.abs(ours - theirs).mean())

    stored = Image.open(photo).convert("RGB")  # orientation 3: stored upside down
    assert difference(upright) < 8 < difference(stored)

    faces = service.post("/represent", files={"file": (photo.name, photo.read_bytes())})
    face_step = page.inner_text("#timing tr[data-step^='faces']")
    if faces.status_code == 404:  # faces not served by this build: said, nothing drawn
        assert "not served by this version (404)" in face_step
        assert page.locator("#overlay rect.face-box").count() == 0
    else:  # the faces /represent found, drawn where it says, with its scores
        found = faces.json().get("result", [])
        drawn_faces = page.eval_on_selector_all("#overlay rect.face-box", """els => els.map(
            e => ['x', 'y', 'width', 'height'].map(k => +e.getAttribute(k)))""")
        assert drawn_faces == [[f["facial_area"][k] for k in "xywh"] for f in found], face_step
        assert f"{len(found)} face" in face_step
    timings = page.eval_on_selector_all("#timing tbody tr td:nth-child(2)",
                                        "els => els.map(e => e.textContent)")
    assert len(timings) == 4 and all(t.isdigit() for t in timings), timings

    # CLIP: the page's ranking is the cosine of the real endpoints' vectors.
    page.fill("#query", "a flower")
    page.click("#query-form button")
    score = float(page.wait_for_selector("#rank li").get_attribute("data-score"))
    image_vector = np.array(service.post("/clip/img", files={
        "file": (photo.name, photo.read_bytes())}).json()["result"], dtype=np.float64)
    text_vector = np.array(service.post("/clip/txt", json={"text": "a flower"}).json()["result"],
                           dtype=np.float64)
    cosine = image_vector @ text_vector / np.linalg.norm(image_vector) / np.linalg.norm(
        text_vector)
    assert score == pytest.approx(cosine, abs=1e-6)
    page.screenshot(path=str(artifacts / "desktop-try-it.png"), full_page=True)
    assert not seen.problems, seen.problems
    seen.close()


def test_on_a_phone_nothing_scrolls_sideways_and_the_verdict_is_on_top(
        browser, service: Service, shared: Path, artifacts):
    seen = Watched(browser, service, PHONE)
    page = seen.page
    page.wait_for_selector("#chart-busy svg.chart")
    verdict = page.locator("#verdict").bounding_box()
    assert verdict["y"] + verdict["height"] < PHONE["height"] / 2
    try_photo(page, shared / "testdata" / PHOTO, service.key)
    page.wait_for_selector("#timing tr[data-step^='CLIP']", timeout=60_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    chart = page.locator("#chart-jobs svg.chart").bounding_box()
    assert chart["x"] >= 0 and chart["x"] + chart["width"] <= PHONE["width"]
    page.screenshot(path=str(artifacts / "phone.png"), full_page=True)
    assert not seen.problems, seen.problems
    seen.close()


def test_without_javascript_the_numbers_are_there(browser, service: Service, artifacts):
    seen = Watched(browser, service, PHONE, javascript=False)
    page = seen.page
    assert page.inner_text("#verdict").strip()
    summary = page.inner_text("#summary")
    for label in ("Backend", "Devices", "Models loaded", "Queue", "Throughput", "Uptime"):
        assert label in summary
    assert page.locator("#workers tr").count() == 4
    assert "The charts need JavaScript" in page.inner_text("#charts")
    assert not page.is_visible("#try-form")
    assert service.key not in page.content()
    page.screenshot(path=str(artifacts / "phone-no-javascript.png"), full_page=True)
    seen.close()
