"""Which worker may run which task, from what every worker announced at READY.

A worker announces the tasks it answers (``tasks``; some only with "model not installed") and,
for those it can run, the version of the model behind each (``versions``: a digest of the
model files, see workers/loading.py). The rules:

- a worker is only given a task it can run, with the farm's model for that task; the local
  workers (this board, one model directory) set the farm's model, and a remote node whose model
  differs gets none of those jobs, so one library never gets text or vectors from two models.
  When no local worker runs a task, the first remote worker that registered with it sets it;
- a task nobody runs goes to a local worker, which answers why (not installed, unknown task);
  a remote node is never handed a task it lacks.

Pure functions of the announcements: the broker calls `plan` whenever a worker comes or goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers.dispatch import Offer


@dataclass(frozen=True)
class Announced:
    """What one worker said at READY, and where it lives."""

    local: bool
    versions: Mapping[str, str]  # task -> model version, for the tasks it can run

    @classmethod
    def from_info(cls, info: Mapping[str, Any], local: bool) -> Announced:
        versions = info.get("versions")
        if not isinstance(versions, Mapping):
            versions = {}
        clean = {t: v for t, v in versions.items() if isinstance(t, str) and isinstance(v, str)}
        return cls(local, clean)


@dataclass(frozen=True)
class Plan:
    offers: dict[bytes, Offer]
    served: frozenset[str]  # tasks some worker runs with the farm's model
    models: dict[str, frozenset[str]]  # task -> the model versions the farm accepts
    excluded: dict[bytes, dict[str, str]]  # worker -> {task: its version} refused as different


def plan(workers: Mapping[bytes, Announced]) -> Plan:
    """Offers for ``workers`` (in registration order, oldest first)."""
    accepted: dict[str, set[str]] = {}
    for worker in workers.values():
        if worker.local:
            for task, version in worker.versions.items():
                accepted.setdefault(task, set()).add(version)
    for worker in workers.values():
        if not worker.local:
            for task, version in worker.versions.items():
                accepted.setdefault(task, {version})  # the first remote one, if no local one
    offers, excluded = {}, {}
    for identity, worker in workers.items():
        runs = {t for t, v in worker.versions.items() if v in accepted[t]}
        offers[identity] = Offer(frozenset(runs), rest=worker.local)
        other = {t: v for t, v in worker.versions.items() if t not in runs}
        if other:
            excluded[identity] = other
    models = {task: frozenset(versions) for task, versions in accepted.items()}
    return Plan(offers, frozenset(accepted), models, excluded)
