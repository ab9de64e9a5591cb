"""GET / and GET /status.json: the owner's status page and its data, without a key.

Both come from one document (``public_status``) built from the supervisor's status: the
headline verdict with its fix, the farm and its workers now, the checks `mtai doctor` makes,
and the last hour for the charts. It carries no key, no setting beyond the queue size, and
nothing a client sent. The page shows the numbers as HTML (no JavaScript needed);
static/status.js draws the charts from /status.json and runs "try it" against the real
endpoints with the key the person types, which never reaches the server other than as the
``api-key`` header of those requests.
"""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from frontend.farm_state import farm_status
from frontend.status_html import render_page
from protocol.client import FarmUnreachable

bp = Blueprint("status", __name__)
SCHEMA = 1
# The page only talks to this service: no inline script, no third-party anything.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@bp.get("/")
def index() -> tuple[str, int, dict[str, str]]:
    document = _document(history=False)
    page = render_page(document)
    return page, 200, {"Content-Type": "text/html; charset=utf-8", **PAGE_HEADERS}


@bp.get("/status.json")
def status_json() -> tuple[Response, int]:
    since = request.args.get("since", type=float)
    if since is not None and not math.isfinite(since):
        since = None
    document = _document(history=True, since=since)
    answer = jsonify(document)
    answer.headers.update(PAGE_HEADERS)
    return answer, 200 if document["farm"] is not None else 503


def _document(history: bool, since: float | None = None) -> dict[str, Any]:
    version = current_app.config["VERSION"]
    try:
        status = farm_status(current_app.extensions["farm"], history=history, since=since)
    except FarmUnreachable as exc:
        return unreachable(version, str(exc))
    return public_status(status, version)


def unreachable(version: str, why: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA, "version": version, "generated": round(time.time(), 1),
        "verdict": {"level": "problem", "text": f"the worker farm does not answer ({why})",
                    "fix": "`sudo systemctl status mtai`; `journalctl -u mtai -n 50` says why"},
        "findings": [], "farm": None, "front": None, "workers": [], "tasks": {}, "nodes": [],
        "history": None,
    }


def public_status(status: dict[str, Any], version: str) -> dict[str, Any]:
    """The supervisor's status as the page and /status.json show it (schema ``SCHEMA``)."""
    health = status.get("health") or {}
    recent = status.get("recent") or {}
    counters = status.get("counters", {})
    front = status.get("front", {})
    return {
        "schema": SCHEMA,
        "version": version,
        "generated": round(time.time(), 1),
        "verdict": health.get("verdict") or {"level": "warn", "text": "no verdict", "fix": ""},
        "findings": [{k: f.get(k, "") for k in ("status", "topic", "detail", "fix")}
                     for f in health.get("findings", [])],
        "farm": {
            "backend": status.get("backend"),
            "uptime_s": status.get("uptime", 0),
            "queue": status.get("queue", 0),
            "queue_size": status.get("queue_size", 0),
            "running": status.get("running", 0),
            "jobs_last_minute": status.get("jobs_last_minute", 0),
            "jobs_per_s": recent.get("jobs_per_s", 0.0),
            "refused_recently": recent.get("refused", 0),
            "recycling": bool(status.get("recycling")),
            "counters": {k: counters.get(k, 0) for k in
                         ("jobs", "errors", "busy", "retries", "lost", "timeouts")},
        },
        "front": {k: front.get(k) for k in
                  ("serving", "processes", "restarts", "crash_loop", "last_exit")},
        "workers": _workers(status),
        "tasks": {name: {k: v for k, v in values.items() if not isinstance(v, dict)}
                  for name, values in status.get("tasks", {}).items()},
        "nodes": status.get("nodes", []),  # remote worker nodes, when a board joins another
        "history": status.get("history"),
    }


def _workers(status: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per slot (a slot outlives its processes), with the ready worker's facts."""
    by_pid = {w.get("pid"): w for w in status.get("workers", {}).values()}
    rows = []
    for slot in status.get("slots", []):
        worker = by_pid.get(slot.get("pid"))
        if worker is not None:
            state = "busy" if worker.get("busy") else "ready"
        else:
            state = "crash loop" if slot.get("crash_loop") else "starting"
        worker = worker or {}
        rows.append({
            "slot": slot["slot"], "core": worker.get("core", slot["slot"]), "state": state,
            "pid": slot.get("pid"), "backend": worker.get("backend"),
            "device": worker.get("device"), "models": dict(worker.get("models", {})),
            "jobs": worker.get("jobs", 0), "errors": worker.get("errors", 0),
            "restarts": slot.get("restarts", 0), "recycles": slot.get("recycles", 0),
            "crash_loop": bool(slot.get("crash_loop")), "uss_bytes": slot.get("uss_bytes"),
            "last_exit": slot.get("last_exit") or None, "last_error": slot.get("last_error"),
        })
    return rows
