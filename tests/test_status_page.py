"""The status page as a person sees it: rendered by headless Chromium (Debian's package,
installed by `make test`), checked for what it shows, with a screenshot kept."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.service import Service

pytestmark = [pytest.mark.service, pytest.mark.browser]
ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars"]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is missing: `make test` installs it (apt-get install chromium)"
    return subprocess.run([binary, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def test_status_page_renders_what_an_operator_needs(service: Service, tmp_path: Path):
    service.wait_ready(workers=3)
    dom = chromium(tmp_path, "--dump-dom", service.url + "/").stdout
    text = re.sub(r"<[^>]+>", " ", dom)
    for label in ("Version", "Backend", "onnx", "Devices", "Models loaded", "ocr", "Queue",
                  "Throughput", "jobs in the last minute", "memory (USS)"):
        assert label in text, label
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td><td>([a-z ]+)</td>", dom)
    assert [r[0] for r in rows] == ["0", "1", "2"]
    assert all(state in ("ready", "busy") for _, _, state in rows)
    assert "test-key" not in dom and "api-key" not in dom
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,700", service.url + "/")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
