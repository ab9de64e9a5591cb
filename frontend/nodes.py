"""Remote worker nodes as the front shows them: a table for the status page, a summary for
/check, gauges for /metrics. All read the ``nodes`` list of the supervisor's status (one entry
per node key: address, key id, workers, tasks, jobs, last heartbeat, round trip); nothing
here is secret (key ids are the first characters of public keys)."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

SUMMARY_KEYS = ("name", "key_id", "address", "connected", "workers", "tasks", "jobs",
                "last_heartbeat_seconds", "rtt_ms")


def nodes_summary(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: node.get(k) for k in SUMMARY_KEYS} for node in status.get("nodes", [])]


def nodes_html(nodes: list[dict[str, Any]]) -> str:
    """The status page's "Remote nodes" table; nothing until a node has joined."""
    if not nodes:
        return ""
    head = "".join(f"<th scope=col>{h}</th>" for h in (
        "node", "key", "address", "state", "workers", "tasks", "jobs", "last heartbeat",
        "round trip"))
    rows = []
    for node in nodes:
        state = "connected" if node["connected"] else "gone"
        rtt = f"{node['rtt_ms']:.2f} ms" if node.get("rtt_ms") is not None else "-"
        tasks = ", ".join(node["tasks"]) or "-"
        if node.get("refused_tasks"):
            tasks += f" (not {', '.join(node['refused_tasks'])}: other model)"
        cells = (node["name"] or node["hostname"] or "?", node["key_id"], node["address"], state,
                 f"{node['workers']} ({node['busy']} busy)", tasks, node["jobs"],
                 f"{node['last_heartbeat_seconds']} s ago", rtt)
        css = "" if node["connected"] else " class=down"
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
                    + "</tr>")
    return (f"<h3>Remote nodes</h3><div class=scroll><table id=nodes><tr>{head}</tr>"
            f"{''.join(rows)}</table></div>")


def node_metrics(nodes: list[dict[str, Any]]) -> Iterator[Metric]:
    labels = ["node", "name"]
    connected = GaugeMetricFamily("mtai_node_connected", "1 while a node has workers here",
                                  labels=labels)
    workers = GaugeMetricFamily("mtai_node_workers", "Workers a node has registered",
                                labels=labels)
    jobs = CounterMetricFamily("mtai_node_jobs", "Jobs a node's workers answered", labels=labels)
    errors = CounterMetricFamily("mtai_node_errors", "Jobs a node's workers answered with an "
                                 "error", labels=labels)
    silence = GaugeMetricFamily("mtai_node_last_heartbeat_seconds", "Seconds since a node's "
                                "last message", labels=labels)
    rtt = GaugeMetricFamily("mtai_node_rtt_seconds", "Heartbeat round trip to a node",
                            labels=labels)
    for node in nodes:
        label = [node["key_id"], node["name"]]
        connected.add_metric(label, int(node["connected"]))
        workers.add_metric(label, node["workers"])
        jobs.add_metric(label, node["jobs"])
        errors.add_metric(label, node["errors"])
        silence.add_metric(label, node["last_heartbeat_seconds"])
        if node.get("rtt_ms") is not None:
            rtt.add_metric(label, node["rtt_ms"] / 1000)
    yield from (connected, workers, jobs, errors, silence, rtt)
