"""Models converted in parts: shapes cut within a budget, one session per role again, parts
opened when first fed and closed least recently used first (models/runtime/parts.py)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.convert.plan import PART_PIXELS, family_plan, split_shapes
from models.manifest import MANIFEST_NAME, Manifest, ManifestError, ModelSpec
from models.ocr.pipeline import OcrPipeline
from models.ocr.profile import DEFAULT_PROFILE
from models.runtime.parts import ShapeRouter, base_role, open_roles, part_file, part_role
from models.runtime.rknn import RknnSession
from models.runtime.static import FeedError
from protocol.images import load_rgb
from tests import fake_rknnlite
from tests.rknn_fixtures import fake_convert, ocr_with_profile


class Recorder:
    """A session that says which part answered and records whether it was closed."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log
        self.closed = False

    @property
    def input_names(self) -> list[str]:
        return ["x"]

    def metadata(self) -> dict[str, str]:
        return {"part": self.name}

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        assert not self.closed, f"{self.name} fed after close"
        self.log.append(self.name)
        return [np.zeros(1)]

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def det_spec(model_dir: Path) -> ModelSpec:
    return Manifest.load(model_dir / "ocr" / MANIFEST_NAME).models["det"]


def test_parts_hold_every_shape_once_in_order_within_the_budget():
    shapes = DEFAULT_PROFILE.shapes()["det"]
    parts = split_shapes(shapes)
    assert [s for part in parts for s in part] == shapes
    pixels = [sum(math.prod(s) // s[1] for s in part) for part in parts]
    assert all(p <= PART_PIXELS for p in pixels), pixels
    assert len(parts) <= 2 * math.ceil(sum(pixels) / PART_PIXELS)  # no needless tiny parts
    assert split_shapes([[1, 3, 48, 320]] * 3, budget=100) == [[[1, 3, 48, 320]]] * 3  # too big


def test_part_names():
    assert [part_role("det", i) for i in range(3)] == ["det", "det@1", "det@2"]
    assert [base_role(r) for r in ("det", "det@2", "rec")] == ["det", "det", "rec"]
    assert part_file("ch_det.rknn", 0) == "ch_det.rknn"
    assert part_file("ch_det.rknn", 3) == "ch_det@3.rknn"


def test_the_shipped_detector_converts_in_parts_and_the_rest_whole(model_dir: Path, tmp_path):
    manifest = Manifest.load(model_dir / "ocr" / MANIFEST_NAME)
    specs = {r: replace(s, shapes=DEFAULT_PROFILE.shapes()[r]) for r, s in manifest.models.items()}
    plans = family_plan("ocr", specs, {}, "rk3588", model_dir / "ocr", tmp_path)
    roles = [p.role for p in plans]
    assert roles[0] == "det" and "det@1" in roles and {"cls", "rec"} <= set(roles)
    det = [p for p in plans if base_role(p.role) == "det"]
    assert [s for p in det for s in p.spec.shapes] == DEFAULT_PROFILE.shapes()["det"]
    assert len({p.spec.file for p in plans}) == len(plans)
    assert all(list(map(list, p.plan.shapes)) == p.spec.shapes for p in plans)


def test_router_opens_parts_when_fed_and_closes_the_least_recently_used(det_spec):
    opened: list[str] = []
    answered: list[str] = []
    sessions: dict[str, Recorder] = {}

    def opener(file: str) -> Recorder:
        opened.append(file)
        sessions[file] = Recorder(file, answered)
        return sessions[file]

    parts = [(f"p{i}", replace(det_spec, shapes=[[1, 3, 32, 32 * (i + 1)]])) for i in range(4)]
    router = ShapeRouter(parts, opener, max_open=2)
    assert opened == [] and router.input_names == [det_spec.input_name]  # nothing opened yet

    def feed(width: int) -> None:
        router.run({"x": np.zeros((1, 3, 32, width), np.float32)})

    for width in (32, 64, 32, 96):
        feed(width)
    assert answered == ["p0", "p1", "p0", "p2"]
    assert opened == ["p0", "p1", "p2"] and sessions["p1"].closed  # p1 least recently used
    assert not sessions["p0"].closed and not sessions["p2"].closed
    feed(64)  # reopened, closing p0 now
    assert opened[-1] == "p1" and sessions["p0"].closed
    router.close()
    assert all(s.closed for s in sessions.values() if s is not sessions["p0"])


def test_device_parts_are_refused_unknown_shapes_and_released_when_evicted(
    model_dir: Path, tmp_path: Path, monkeypatch
):
    fake = fake_rknnlite.install(monkeypatch)
    root = fake_convert(ocr_with_profile(model_dir, tmp_path, DEFAULT_PROFILE), "ocr")
    specs = Manifest.load(root / "ocr" / MANIFEST_NAME).models
    assert "det@1" in specs  # the shipped profile's detector comes in parts
    sessions, _ = open_roles(specs, lambda f: RknnSession(root / "ocr" / f, core=0), max_open=2)
    det, name = sessions["det"], specs["det"].input_name
    opened = len(fake.contexts)  # cls and rec, opened whole
    with pytest.raises(FeedError, match=r"static shapes only"):
        det.run({name: np.zeros((1, 3, 33, 33), np.float32)})
    assert len(fake.contexts) == opened  # refused without loading a part
    for part in ("det", "det@1", "det@2"):  # one shape of each: the first part closes
        det.run({name: np.zeros(specs[part].shapes[0], np.float32)})
    contexts = {Path(c.path).name: c for c in fake.contexts[opened:]}
    assert [c.released for c in contexts.values()] == [True, False, False]
    det.close()
    assert all(c.released for c in contexts.values())


def test_malformed_part_roles_are_a_manifest_error(det_spec):
    for roles in (("det", "det@x"), ("det", "det@01"), ("det", "det@2")):
        specs = {role: det_spec for role in roles}
        with pytest.raises(ManifestError, match="det"):
            open_roles(specs, lambda f: Recorder(f, []))


def test_roles_in_parts_are_one_session_with_all_their_shapes(det_spec):
    specs = {
        "det": replace(det_spec, file="a", shapes=[[1, 3, 32, 32]]),
        "det@1": replace(det_spec, file="b", shapes=[[1, 3, 32, 64], [1, 3, 64, 32]]),
        "rec": replace(det_spec, file="c", shapes=[[1, 3, 48, 320]]),
    }
    opened: list[str] = []
    sessions, merged = open_roles(specs, lambda f: opened.append(f) or Recorder(f, []))
    assert opened == ["c"]  # whole roles open at once, parts when first fed
    assert isinstance(sessions["det"], ShapeRouter) and set(sessions) == {"det", "rec"}
    assert merged["det"].shapes == [[1, 3, 32, 32], [1, 3, 32, 64], [1, 3, 64, 32]]
    assert merged["det"].file == "a"
    del specs["det"]
    with pytest.raises(ManifestError, match="one is missing"):
        open_roles(specs, lambda f: Recorder(f, []))


def test_pipeline_reads_through_a_detector_in_parts(tmp_path, model_dir, shared, monkeypatch):
    """The fake NPU backend (tests/fake_rknnlite.py) over a fake conversion of the shipped
    profile: the static pipeline reads through the parts as through one model, and opens
    only the parts its images need."""
    fake = fake_rknnlite.install(monkeypatch)
    root = fake_convert(ocr_with_profile(model_dir, tmp_path, DEFAULT_PROFILE), "ocr")
    device = OcrPipeline.load(root, backend="rknn", core=0)
    cpu = OcrPipeline.load(tmp_path, backend="onnx", static_shapes=True)
    for name in ("rapidocr_en.jpg", "easyocr_french.jpg"):  # a strip and a page
        image = load_rgb(shared / "testdata/ocr" / name)
        assert device(image) == cpu(image)
    det_parts = {Path(c.path).name for c in fake.contexts if "_det_" in Path(c.path).name}
    assert 2 <= len(det_parts) < len(split_shapes(DEFAULT_PROFILE.shapes()["det"]))
