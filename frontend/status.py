"""GET / : a status page for people, without auth and without secrets."""

from __future__ import annotations

import html
from typing import Any

from flask import Blueprint, current_app

from frontend.farm import Farm
from protocol.client import FarmUnreachable
from protocol.wire import ERROR

bp = Blueprint("status", __name__)
STATUS_TIMEOUT = 3.0


def farm_status(farm: Farm) -> dict[str, Any]:
    """The supervisor's own view of the farm (the `status` control task)."""
    reply = farm.call("status", timeout=STATUS_TIMEOUT)
    if reply.kind == ERROR or not isinstance(reply.result, dict):
        raise FarmUnreachable(f"status unavailable: {reply.error}")
    return reply.result


@bp.get("/")
def index() -> tuple[str, int, dict[str, str]]:
    try:
        status = farm_status(current_app.extensions["farm"])
    except FarmUnreachable as exc:
        body = f"<p class=down>Worker farm unreachable: {html.escape(str(exc))}</p>"
    else:
        body = _render(status)
    version = html.escape(current_app.config["VERSION"])
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>MT-Photos AI (RKNN)</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em .8em;text-align:left}"
        ".down{color:#b00}</style></head><body>"
        f"<h1>MT-Photos AI (RKNN) {version}</h1>{body}</body></html>"
    )
    return page, 200, {"Content-Type": "text/html; charset=utf-8"}


def _render(status: dict[str, Any]) -> str:
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
            name, info.get("core"), info.get("backend"),
            ", ".join(info.get("models", {})) or "none",
            info.get("jobs"), info.get("errors"),
        )) + "</tr>"
        for name, info in sorted(status["workers"].items())
    )
    restarts = sum(slot["restarts"] for slot in status.get("slots", []))
    counters = status.get("counters", {})
    return (
        f"<p>Backend: {html.escape(str(status.get('backend')))}. "
        f"Up {status.get('uptime')} s. Queue {status['queue']}/{status['queue_size']}, "
        f"running {status['running']}. Jobs {counters.get('jobs', 0)}, "
        f"busy {counters.get('busy', 0)}, worker restarts {restarts}.</p>"
        "<table><tr><th>worker</th><th>core</th><th>backend</th><th>models</th>"
        f"<th>jobs</th><th>errors</th></tr>{rows}</table>"
    )
