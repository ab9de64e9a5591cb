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
    """The supervisor's status as findings: crash loops are problems."""
    found = []
    slots = status.get("slots", [])
    ready = len(status.get("workers", {}))
    looping = [s["slot"] for s in slots if s.get("crash_loop")]
    if looping:
        found.append(Finding(PROBLEM, "workers", f"worker {', '.join(map(str, looping))} in a "
                             "crash loop; `journalctl -u mtai` says why"))
    else:
        found.append(Finding(OK if ready == len(slots) else WARN, "workers",
                             f"{ready}/{len(slots)} ready, backend {status.get('backend')}"))
    front = status.get("front", {})
    if front.get("crash_loop"):
        found.append(Finding(PROBLEM, "HTTP front", f"in a crash loop (last exit: "
                             f"{front.get('last_exit') or 'unknown'}); `journalctl -u mtai`"))
    elif front.get("serving"):
        found.append(Finding(OK, "HTTP front", f"serving, {front.get('restarts', 0)} restarts"))
    else:
        found.append(Finding(WARN, "HTTP front", "starting (not serving yet)"))
    return found
