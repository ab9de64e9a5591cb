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
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse}td,th{padding:.3em .9em;text-align:left;"
    "border-bottom:1px solid #ddd}.down{color:#b00}.ok{color:#070}dt{font-weight:600}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}"
)


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
        body = f"<p class=down id=farm>Worker farm unreachable: {html.escape(str(exc))}</p>"
    else:
        body = render(status)
    version = html.escape(current_app.config["VERSION"])
    page = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>MT-Photos AI (RKNN)"
        f"</title><style>{STYLE}</style></head><body><h1>MT-Photos AI (RKNN)</h1>"
        f"<p>Version {version}</p>{body}</body></html>"
    )
    return page, 200, {"Content-Type": "text/html; charset=utf-8"}


def render(status: dict[str, Any]) -> str:
    """Summary, then one row per worker slot (a slot outlives its processes)."""
    by_pid = {w.get("pid"): w for w in status["workers"].values()}
    rows = []
    for slot in status.get("slots", []):
        worker = by_pid.get(slot["pid"])
        state = "ready" if worker else ("crash loop" if slot["crash_loop"] else "starting")
        if worker and worker.get("busy"):
            state = "busy"
        memory = f"{slot['uss_bytes'] / 2**20:.0f} MB" if slot.get("uss_bytes") else "-"
        cells = (slot["slot"], (worker or {}).get("core", slot["slot"]), state,
                 ", ".join((worker or {}).get("models", {})) or "-",
                 (worker or {}).get("jobs", 0), slot["restarts"], slot["recycles"], memory)
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    models = sorted({title for w in status["workers"].values()
                     for title in w.get("models", {}).values()})  # e.g. "PP-OCRv6 small ..."
    devices = sorted({f"{w.get('backend')}: {w.get('device')}" for w in status["workers"].values()})
    summary = {
        "Backend": status.get("backend"),
        "Devices": ", ".join(devices) or "none ready",
        "Models loaded": ", ".join(models) or "none",
        "Queue": f"{status['queue']} waiting (of {status['queue_size']}), "
                 f"{status['running']} running",
        "Throughput": f"{status.get('jobs_last_minute', 0)} jobs in the last minute",
        "Jobs": f"{status['counters'].get('jobs', 0)} done, "
                f"{status['counters'].get('busy', 0)} refused busy, "
                f"{status['counters'].get('retries', 0)} retried",
        "HTTP front": _front_line(status.get("front", {})),
        "Uptime": f"{status.get('uptime', 0)} s",
    }
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in summary.items())
    head = "".join(f"<th>{h}</th>" for h in (
        "slot", "core", "state", "models", "jobs", "restarts", "recycles", "memory (USS)"))
    return (f"<dl id=summary>{items}</dl><h2>Workers</h2>"
            f"<table id=workers><tr>{head}</tr>{''.join(rows)}</table>")


def _front_line(front: dict[str, Any]) -> str:
    if front.get("crash_loop"):
        return f"crash loop (last exit: {front.get('last_exit') or 'unknown'})"
    return (f"{front.get('serving', 0)} of {front.get('processes', '?')} processes serving, "
            f"{front.get('restarts', 0)} restarts")


def _e(value: Any) -> str:
    return html.escape(str(value))
