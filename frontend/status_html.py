"""The status page's HTML: the verdict and today's numbers, readable without JavaScript.

Rendered from ``frontend.status.public_status``'s document. The charts and "try it" are
built by static/status.js inside the sections marked here; without JavaScript the page says
so and still shows every number. Everything is escaped: worker errors and findings are text.
"""

from __future__ import annotations

import html
import re
from typing import Any

TITLE = "MT-Photos AI (RKNN)"
_CODE = re.compile(r"`([^`]+)`")
LEVEL_WORDS = {"ok": "OK", "warn": "Warning", "problem": "Problem"}


def render_page(doc: dict[str, Any]) -> str:
    body = _head(doc) + "<main>" + _now(doc) + _charts() + _try() + "</main>" + _foot(doc)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{TITLE}: status</title><link rel=icon href='data:,'>"
        "<link rel=stylesheet href='/static/status.css'>"
        "<script src='/static/status.js' defer></script></head>"
        f"<body>{body}</body></html>"
    )


def _head(doc: dict[str, Any]) -> str:
    verdict = doc["verdict"]
    level = verdict.get("level", "warn")
    fix = (f"<p id=fix>Fix: {_inline(verdict['fix'])}</p>" if verdict.get("fix") else "")
    return (
        f"<header id=head class='v-{_e(level)}'><h1>{TITLE}</h1>"
        f"<p id=verdict role=status><span class=badge>{LEVEL_WORDS.get(level, level)}</span> "
        f"<strong>{_inline(verdict.get('text', ''))}</strong></p>{fix}</header>"
    )


def _now(doc: dict[str, Any]) -> str:
    farm = doc["farm"]
    if farm is None:
        return "<section id=now><p class=down id=farm>Worker farm unreachable.</p></section>"
    counters = farm["counters"]
    workers = doc["workers"]
    models = sorted({f"{name}: {desc}" for w in workers for name, desc in w["models"].items()})
    devices = sorted({f"{w['backend']}: {w['device']}" for w in workers if w["device"]})
    summary = {
        "Backend": farm["backend"],
        "Devices": ", ".join(devices) or "none ready",
        "Models loaded": ", ".join(models) or "none",
        "Queue": f"{farm['queue']} waiting (of {farm['queue_size']}), {farm['running']} running",
        "Throughput": f"{farm['jobs_last_minute']} jobs in the last minute "
                      f"({farm['jobs_last_minute'] / 60:.2f} jobs/s)",
        "Jobs": f"{counters['jobs']} done, {counters['errors']} errors, {counters['busy']} "
                f"refused busy, {counters['retries']} retried, {counters['timeouts']} timed out",
        "HTTP front": _front_line(doc["front"]),
        "Uptime": _duration(farm["uptime_s"]),
    }
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in summary.items())
    head = "".join(f"<th scope=col>{h}</th>" for h in (
        "slot", "core", "state", "jobs", "errors", "restarts", "recycles", "memory (USS)",
        "last exit"))
    rows = "".join(_worker_row(w) for w in workers)
    nodes = "".join(f"<li>{_e(n.get('name', n))}</li>" for n in doc.get("nodes", []))
    node_list = f"<h3>Remote nodes</h3><ul id=nodes>{nodes}</ul>" if nodes else ""
    return (
        "<section id=now aria-labelledby=now-h><h2 id=now-h>Now</h2>"
        f"<dl id=summary>{items}</dl><h3>Workers</h3>"
        f"<div class=scroll><table id=workers><tr>{head}</tr>{rows}</table></div>{node_list}"
        f"{_findings(doc['findings'])}</section>"
    )


def _worker_row(worker: dict[str, Any]) -> str:
    memory = f"{worker['uss_bytes'] / 2**20:.0f} MB" if worker.get("uss_bytes") else "-"
    exit_text = worker.get("last_error") or worker.get("last_exit") or "-"
    cells = (worker["slot"], worker["core"], worker["state"], worker["jobs"], worker["errors"],
             worker["restarts"], worker["recycles"], memory, exit_text)
    state = worker["state"].replace(" ", "-")
    return f"<tr class='w-{state}'>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"


def _findings(findings: list[dict[str, Any]]) -> str:
    if not findings:
        return ""
    items = "".join(
        f"<li class='f-{_e(f['status'].lower())}'><b>{_e(f['status'])}</b> {_e(f['topic'])}: "
        f"{_inline(f['detail'])}{'; ' + _inline(f['fix']) if f['fix'] else ''}</li>"
        for f in findings)
    return ("<details id=findings><summary>Checks, as <code>mtai doctor</code> makes them"
            f"</summary><ul>{items}</ul></details>")


def _charts() -> str:
    return (
        "<section id=charts aria-labelledby=charts-h><h2 id=charts-h>Last hour</h2>"
        "<noscript><p class=note>The charts need JavaScript. The numbers above are current "
        "each time the page loads; <a href='/status.json'>/status.json</a> holds the hour."
        "</p></noscript><div id=chart-grid></div></section>"
    )


def _try() -> str:
    return (
        "<section id=try aria-labelledby=try-h><h2 id=try-h>Try it on a photo</h2>"
        "<noscript><p class=note>Trying a photo needs JavaScript.</p></noscript>"
        "<div id=try-ui hidden>"
        "<form id=try-form><p class=note>The photo goes to this service's own <code>/ocr</code>,"
        " <code>/represent</code> (faces) and <code>/clip/img</code>, with the key below as "
        "their <code>api-key</code> header. The key stays in this page: nothing stores it."
        "</p><label for=key>API key</label><input id=key type=password autocomplete=off "
        "spellcheck=false required><label for=photo>Photo</label><input id=photo type=file "
        "accept='image/*' required><button id=run type=submit>Read it</button></form>"
        "<div id=result aria-live=polite></div>"
        "<form id=query-form><label for=query>Search the photos tried here (CLIP)</label>"
        "<input id=query type=search required placeholder='e.g. a flower'>"
        "<button type=submit>Search</button></form><div id=ranking aria-live=polite></div>"
        "</div></section>"
    )


def _foot(doc: dict[str, Any]) -> str:
    return (f"<footer>Version {_e(doc['version'])} · <a href='/status.json'>status.json</a> · "
            "<a href='/metrics'>metrics</a></footer>")


def _front_line(front: dict[str, Any] | None) -> str:
    if not front:
        return "unknown"
    if front.get("crash_loop"):
        return f"crash loop (last exit: {front.get('last_exit') or 'unknown'})"
    return (f"{front.get('serving') or 0} of {front.get('processes') or '?'} processes serving, "
            f"{front.get('restarts') or 0} restarts")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _inline(text: str) -> str:
    """Escaped text with `backticked` commands as <code>."""
    return _CODE.sub(r"<code>\1</code>", _e(text))


def _e(value: Any) -> str:
    return html.escape(str(value))
