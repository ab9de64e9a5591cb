"""GET /status.json against its published schema (frontend/static/status.schema.json), from
documents built of real parts and from the real service; and what it must never carry."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from frontend.app import create_app
from frontend.status import public_status, unreachable
from frontend.status_html import render_page
from protocol.settings import Settings
from tests.service import Service
from tests.test_status_history import RK3588_LINE, npu_root, status
from workers.history import History
from workers.verdict import Health

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "frontend/static/status.schema.json"
PAGE_BUDGET = 100_000  # bytes: the page, its script and style, and an hour of status.json


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(validator: jsonschema.Draft202012Validator, document: dict[str, Any]) -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, errors
    history = document["history"]
    if history is not None:  # every column is as long as the time axis
        length = len(history["t"])
        columns = [history["queue"], history["running"], *history["npu"]["cores"]]
        columns += [c for task in history["tasks"].values() for c in task.values()]
        columns += [w[k] for w in history["workers"] for k in ("uss_mb", "busy_pct")]
        assert all(len(column) == length for column in columns)


def test_a_document_of_real_parts_matches_the_schema(tmp_path: Path, validator):
    history = History(root=npu_root(tmp_path, RK3588_LINE), now=-10.0)
    for i in range(5):
        history.sample(status(jobs=3 * i, restarts=i // 2), {"ocr": [0.5, 0.7]},
                       wall=1000.0 + 10 * i, now=10.0 * i)
    farm = {**status(jobs=12), "backend": "onnx", "uptime": 50, "queue_size": 64,
            "jobs_last_minute": 12, "counters": status(jobs=12)["tasks"]["ocr"],
            "recycling": False, "recent": history.recent(), "history": history.snapshot()}
    farm["front"] = {"pid": 5, "restarts": 1, "crash_loop": False, "last_exit": "code 1",
                     "serving": 2, "processes": 2}
    settings = Settings.from_env({"MODEL_DIR": str(tmp_path / "models")})
    farm["health"] = Health(settings, npu_root(tmp_path / "x86", None)).report(farm)
    document = public_status(farm, "1.2.3")
    assert_valid(validator, document)
    assert document["workers"][0]["state"] == "ready"
    assert [e["kind"] for e in document["history"]["events"]] == ["restart", "restart"]
    assert_valid(validator, unreachable("1.2.3", "no answer from the worker farm"))


def test_without_a_supervisor_the_json_says_so_with_503(tmp_path: Path, validator):
    settings = Settings.from_env({"RUNTIME_DIR": str(tmp_path / "run")})
    client = create_app(settings).test_client()
    answer = client.get("/status.json")
    assert answer.status_code == 503
    assert_valid(validator, answer.get_json())
    assert answer.get_json()["verdict"]["level"] == "problem"
    page = render_page(answer.get_json())  # what GET / shows then, without a second wait
    assert "does not answer" in page and "Worker farm unreachable" in page


@pytest.mark.service
def test_the_services_status_json_matches_the_schema_and_carries_no_secret(
        service: Service, validator):
    service.post("/ocr", files={"file": ("a.png", _white_png())})
    end = time.monotonic() + 30  # the first history sample comes 10 s after the start
    while time.monotonic() < end:
        answer = requests.get(service.url + "/status.json", timeout=10)
        if answer.json()["history"]["t"]:
            break
        time.sleep(1)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    document = answer.json()
    assert_valid(validator, document)
    assert document["history"]["t"], "no history sample within 30 s"
    assert [w["slot"] for w in document["workers"]] == [0, 1, 2]
    assert document["verdict"]["level"] == "ok", document["verdict"]
    assert "running on the CPU" in document["verdict"]["text"]
    assert service.key not in answer.text and "MTAI_SETTINGS" not in answer.text
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    last = document["history"]["t"][-1]
    newer = requests.get(f"{service.url}/status.json?since={last}", timeout=10).json()
    assert all(t > last for t in newer["history"]["t"])
    assert_valid(validator, newer)


@pytest.mark.service
def test_the_page_and_what_it_loads_stay_under_100_kB(service: Service):
    sizes = {path: len(requests.get(service.url + path, timeout=10).content)
             for path in ("/", "/static/status.js", "/static/status.css", "/status.json")}
    print("page weight in bytes:", sizes, "total", sum(sizes.values()))
    # status.json grows to a full hour: the history test bounds that part at 60 kB.
    assert sum(sizes.values()) - sizes["/status.json"] + 60_000 < PAGE_BUDGET, sizes


def _white_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 32), "white").save(buffer, "PNG")
    return buffer.getvalue()
