"""One model converted into several files ("parts"), each built for some of its static shapes.

rknn-toolkit2 holds every shape of a model in memory while it builds (about 0.1 GB per million
input pixels on rk3588; BENCHMARKS.md), and librknnrt loads every shape of a file into the
context that opens it. The OCR detector's profile spans about 150 million pixels of shapes, so
the converter splits it into parts of a bounded size (``models.convert.plan``): each part is an
ordinary converted model listed under its own role, ``det``, ``det@1``, ``det@2``... The
pipelines see one session per role again through ``ShapeRouter``, which opens a part when a
shape of it is first fed and keeps only the ``MAX_OPEN_PARTS`` most recently used open, so a
worker holds the parts its images need (photos use a handful of shapes), never all of them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from models.manifest import ManifestError, ModelSpec
from models.runtime.base import Session
from models.runtime.static import FeedError

log = logging.getLogger(__name__)

PART_MARK = "@"
# Parts of one role kept open per worker; the least recently used closes. Enough for the parts
# that 2000 px photos of the common aspects use, in both orientations (BENCHMARKS.md).
MAX_OPEN_PARTS = 5
SIMULATOR_OPEN_PARTS = 1  # rknn-sim rebuilds each part in memory (GBs): one at a time


def part_role(role: str, index: int) -> str:
    """The manifest role of part ``index`` of ``role`` (part 0 keeps the role's own name)."""
    return role if index == 0 else f"{role}{PART_MARK}{index}"


def base_role(role: str) -> str:
    """``det@2`` -> ``det``; a role that is not a part is returned as it is."""
    return role.partition(PART_MARK)[0]


def part_file(file: str, index: int) -> str:
    """``x.rknn`` -> ``x@2.rknn`` for part 2; part 0 keeps the file's own name."""
    if index == 0:
        return file
    path = Path(file)
    return f"{path.stem}{PART_MARK}{index}{path.suffix}"


class ShapeRouter:
    """One role's parts behind one Session: each feed goes to the part built for its shape."""

    def __init__(
        self,
        parts: list[tuple[str, ModelSpec]],
        opener: Callable[[str], Session],
        max_open: int = MAX_OPEN_PARTS,
    ) -> None:
        if not parts:
            raise ValueError("a router needs at least one part")
        self.parts = parts  # (file, spec) per part, in part order
        self.opener = opener
        self.max_open = max(1, max_open)
        self.route = {
            tuple(int(d) for d in shape): index
            for index, (_, spec) in enumerate(parts)
            for shape in spec.shapes or ()
        }
        self.open: OrderedDict[int, Session] = OrderedDict()
        self.used: set[int] = set()  # every part opened so far (what a check has exercised)

    @property
    def input_names(self) -> list[str]:
        return [self.parts[0][1].input_name]

    def metadata(self) -> dict[str, str]:
        return self._session(0).metadata()

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        shape = tuple(getattr(next(iter(feeds.values()), None), "shape", ()))
        index = self.route.get(shape)
        if index is None:  # refused here: opening a part only to refuse it costs a load
            raise FeedError(
                f"{self.parts[0][0]} and its other parts: built for shapes "
                f"{[list(s) for s in self.route]}, fed {list(shape)}; RKNN models take static "
                "shapes only"
            )
        return self._session(index).run(feeds)

    def _session(self, index: int) -> Session:
        session = self.open.get(index)
        if session is not None:
            self.open.move_to_end(index)
            return session
        while len(self.open) >= self.max_open:
            closed, old = self.open.popitem(last=False)
            _close(old)
            log.debug("closed part %s (least recently used)", self.parts[closed][0])
        session = self.opener(self.parts[index][0])
        self.open[index] = session
        self.used.add(index)
        return session

    def close(self) -> None:
        while self.open:
            _close(self.open.popitem()[1])


def _close(session: Any) -> None:
    close = getattr(session, "close", None)
    if close is not None:
        close()


def open_roles(
    specs: dict[str, ModelSpec],
    opener: Callable[[str], Session],
    max_open: int = MAX_OPEN_PARTS,
) -> tuple[dict[str, Session], dict[str, ModelSpec]]:
    """Sessions and specs per role, parts gathered: a role converted in one file is opened now
    as before; a role in parts gets a ``ShapeRouter`` (keeping ``max_open`` parts open) and a
    spec listing every part's shapes."""
    grouped: dict[str, list[tuple[int, str, ModelSpec]]] = {}
    for role, spec in specs.items():
        base, _, number = role.partition(PART_MARK)
        if number and (not number.isdigit() or number.startswith("0")):
            raise ManifestError(f"manifest role {role!r}: parts are named {base}@1, {base}@2...")
        grouped.setdefault(base, []).append((int(number or 0), role, spec))
    sessions: dict[str, Session] = {}
    merged: dict[str, ModelSpec] = {}
    for base, members in grouped.items():
        members.sort()
        if [m[0] for m in members] != list(range(len(members))):
            raise ManifestError(
                f"manifest lists parts {[m[1] for m in members]} of {base}: one is missing; "
                "convert again (mtai convert)"
            )
        if len(members) == 1:
            spec = members[0][2]
            sessions[base], merged[base] = opener(spec.file), spec
            continue
        parts = [(spec.file, spec) for _, _, spec in members]
        shapes = [list(s) for _, _, spec in members for s in spec.shapes or ()]
        sessions[base] = ShapeRouter(parts, opener, max_open)
        merged[base] = replace(members[0][2], shapes=shapes)
    return sessions, merged
