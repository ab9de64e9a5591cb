"""`mtai doctor`'s look at the running service: asks the supervisor for its status over the
broker's ipc socket and turns crash loops and a front that does not serve into findings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.doctor import INFO, OK, PROBLEM, WARN, Finding
from protocol.client import FarmClient, FarmUnreachable
from protocol.endpoints import front_endpoint
from protocol.settings import Settings

# Where the systemd unit puts the sockets (RuntimeDirectory=mtai); `sudo mtai doctor` does
# not see the unit's environment, so this is tried after the settings' own directory.
UNIT_RUNTIME_DIR = Path("/run/mtai")
STATUS_TIMEOUT = 3.0
JOURNAL = "`journalctl -u mtai -n 50` shows the error"


def service_findings(settings: Settings) -> list[Finding]:
    """Findings about the running service, or one INFO line when none answers."""
    for directory in dict.fromkeys((settings.runtime_dir, UNIT_RUNTIME_DIR)):
        if (directory / "front").exists():
            status = _status(directory)
            if status is not None:
                return judge(status)
    return [Finding(INFO, "service", "not running here (no supervisor answered in "
                    f"{settings.runtime_dir} or {UNIT_RUNTIME_DIR})")]


def _status(directory: Path) -> dict[str, Any] | None:
    client = FarmClient(front_endpoint(directory))
    try:
        reply = client.call("status", timeout=STATUS_TIMEOUT)
    except FarmUnreachable:
        return None
    finally:
        client.close()
    return reply.result if isinstance(reply.result, dict) else None


def judge(status: dict[str, Any]) -> list[Finding]:
    """The supervisor's status as findings: crash loops are problems; a farm still starting,
    a queue backing up or refusing requests are warnings. Each names its fix, so the status
    page's headline and `mtai doctor` say the same."""
    found = []
    slots = status.get("slots", [])
    ready = len(status.get("workers", {}))
    looping = [s for s in slots if s.get("crash_loop")]
    if looping:
        first = looping[0]
        why = first.get("last_error") or first.get("last_exit") or "unknown error"
        numbers = ", ".join(str(s["slot"]) for s in looping)
        found.append(Finding(PROBLEM, "workers", f"worker {numbers} in a crash loop ({why})",
                             JOURNAL, f"worker {numbers} in a crash loop: {why}"))
    elif ready < len(slots) and not status.get("recycling"):
        found.append(Finding(WARN, "workers", f"{ready}/{len(slots)} ready, backend "
                             f"{status.get('backend')}", headline=f"{ready} of {len(slots)} "
                             "workers ready: the others are loading their models"))
    else:
        found.append(Finding(OK, "workers", f"{ready}/{len(slots)} ready, backend "
                             f"{status.get('backend')}"))
    front = status.get("front", {})
    if front.get("crash_loop"):
        found.append(Finding(PROBLEM, "HTTP front", f"in a crash loop (last exit: "
                             f"{front.get('last_exit') or 'unknown'})", JOURNAL))
    elif front.get("serving"):
        found.append(Finding(OK, "HTTP front", f"serving, {front.get('restarts', 0)} restarts"))
    else:
        found.append(Finding(WARN, "HTTP front", "starting (not serving yet)"))
    found.extend(_queue(status))
    return found


def _queue(status: dict[str, Any]) -> list[Finding]:
    recent = status.get("recent") or {}
    refused, queued, size = recent.get("refused", 0), status.get("queue", 0), status.get(
        "queue_size", 0)
    fix = "lower the task concurrency in MT-Photos (or Immich), or raise QUEUE_SIZE"
    if refused:
        minutes = max(1, round(recent.get("seconds", 60) / 60))
        return [Finding(WARN, "queue", f"{refused} requests refused with 503 in the last "
                        f"{minutes} min (queue full or deadline passed)", fix,
                        f"overloaded: {refused} requests refused (503) in the last {minutes} min")]
    if size and queued * 2 >= size:
        return [Finding(WARN, "queue", f"{queued} of {size} places taken", fix,
                        f"queue backing up: {queued} of {size} jobs waiting")]
    return []
