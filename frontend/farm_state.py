"""The supervisor's view of the farm (its `status` control task), for /check, /metrics and
the status page. The page also asks for the charts' history, which the others skip."""

from __future__ import annotations

from typing import Any

from frontend.farm import Farm
from protocol.client import FarmUnreachable
from protocol.wire import ERROR

STATUS_TIMEOUT = 3.0


def farm_status(farm: Farm, history: bool = False, since: float | None = None
                ) -> dict[str, Any]:
    """Raises FarmUnreachable when the supervisor does not answer. ``since``: only history
    samples and events after this wall-clock time (the page's refreshes)."""
    options: dict[str, Any] = {"history": True} if history else {}
    if history and since is not None:
        options["since"] = since
    reply = farm.call("status", options, timeout=STATUS_TIMEOUT)
    if reply.kind == ERROR or not isinstance(reply.result, dict):
        raise FarmUnreachable(f"status unavailable: {reply.error}")
    return reply.result
