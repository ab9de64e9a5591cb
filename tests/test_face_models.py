"""Face family units: alignment against scikit-image, static recogniser batches, packs,
the installer's contract checks and the fetch routes (file:// release, --from a folder)."""

from __future__ import annotations

import dataclasses
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from models.face import packs
from models.face.align import ARCFACE_TEMPLATE, align, alignment_matrix
from models.face.install import install_face_files, normalises_inside
from models.face.packs import get_pack, pack_of_files
from models.face.pipeline import FacePipeline
from models.face.recognize import FaceRecognizer
from models.fetch import FetchError, fetch_face
from models.manifest import (
    MANIFEST_NAME,
    Manifest,
    ModelIntegrityError,
    ModelNotInstalled,
    sha256_file,
)
from models.runtime.onnx import OnnxSession
from tests.clip_fixtures import IMAGE_ONNX
from tests.face_fixtures import install_tiny, make_models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_models(tmp_path_factory.mktemp("face-tiny"))


def test_alignment_matrix_is_scikit_images_similarity():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(3)
    for _ in range(50):
        points = (ARCFACE_TEMPLATE * rng.uniform(0.2, 9) + rng.uniform(-50, 900, 2)
                  ).astype(np.float32) + rng.normal(0, 3, (5, 2)).astype(np.float32)
        angle = rng.uniform(-3, 3)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = (points @ rotation.T).astype(np.float32)
        expected = SimilarityTransform.from_estimate(points, ARCFACE_TEMPLATE).params[:2]
        assert np.abs(alignment_matrix(points) - expected).max() < 1e-9


def test_degenerate_landmarks_give_a_black_crop_not_a_crash():
    crop = align(np.full((50, 50, 3), 200, np.uint8), np.full((5, 2), 10, np.float32))
    assert crop.shape == (112, 112, 3) and not crop.any()


def test_static_batches_pad_and_drop_the_padding(tiny):
    _, rec = tiny
    session = OnnxSession(rec, threads=1)
    free = FaceRecognizer(session, _rec_spec(None))
    static = FaceRecognizer(session, _rec_spec([[4, 3, 112, 112], [1, 3, 112, 112]]))
    assert (static.batches, static.static) == ([1, 4], True)
    crops = np.random.default_rng(0).integers(0, 256, (9, 112, 112, 3), dtype=np.uint8)
    one_by_one = np.vstack([free(crops[i:i + 1]) for i in range(9)])
    for count in (0, 1, 3, 4, 9):
        assert np.allclose(static(crops[:count]), one_by_one[:count], rtol=0, atol=1e-5)
        assert np.allclose(free(crops[:count]), one_by_one[:count], rtol=0, atol=1e-5)


def _rec_spec(shapes):
    from models.face.install import REC_PREPROCESS
    from models.manifest import ModelSpec

    return ModelSpec(file="w600k_r50.onnx", source="test", sha256="", input_name="input.1",
                     layout="NCHW", dtype="float32", shape=(-1, 3, 112, 112),
                     mean_std_folded=False, preprocess=REC_PREPROCESS, shapes=shapes)


def test_packs_by_name_and_by_files():
    assert get_pack(" Buffalo_L ").name == "buffalo_l"
    with pytest.raises(ValueError, match="buffalo_l, antelopev2, buffalo_s"):
        get_pack("buffalo_xl")
    assert pack_of_files("scrfd_10g_bnkps.rknn", "../../face/glintr100.onnx").name == "antelopev2"
    assert pack_of_files("det_500m.onnx", "w600k_mbf.onnx").name == "buffalo_s"
    assert pack_of_files("det_10g.onnx", "glintr100.onnx") is None


def test_the_installed_pack_must_be_the_one_asked_for(tmp_path, tiny):
    det, rec = tiny
    install_face_files(tmp_path, get_pack("antelopev2"), det, rec, pinned=False,
                       progress=lambda _: None)
    assert FacePipeline.load(tmp_path, pack="antelopev2").pack.name == "antelopev2"
    with pytest.raises(ModelNotInstalled, match="holds antelopev2, FACE_MODEL asks for buffalo_l"):
        FacePipeline.load(tmp_path, pack="buffalo_l")
    with pytest.raises(ModelNotInstalled, match="mtai models fetch face"):
        FacePipeline.load(tmp_path / "empty")


def test_installer_refuses_foreign_and_unpinned_files(tmp_path, tiny):
    det, rec = tiny
    pack = get_pack("buffalo_l")
    with pytest.raises(ModelIntegrityError, match=r"not buffalo_l's det_10g\.onnx"):
        install_face_files(tmp_path, pack, det, rec, progress=lambda _: None)
    with pytest.raises(ModelIntegrityError, match="does not run on a 1x3x640x640 input"):
        install_face_files(tmp_path, pack, IMAGE_ONNX, rec, pinned=False, progress=lambda _: None)
    with pytest.raises(ModelIntegrityError, match=r"expected one \[N, 512\]|does not run"):
        install_face_files(tmp_path, pack, det, det, pinned=False, progress=lambda _: None)
    assert not (tmp_path / "face" / MANIFEST_NAME).exists()


def test_a_recogniser_normalising_inside_is_fed_raw_pixels(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])
    y = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 512])
    nodes = [helper.make_node("Sub", ["data", "c"], ["s"], name="_minus0"),
             helper.make_node("Mul", ["s", "c"], ["m"], name="_mul0"),
             helper.make_node("Flatten", ["m"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "w"], ["fc1"], name="fc")]
    init = [helper.make_tensor("c", TensorProto.FLOAT, [], [1.0]),
            helper.make_tensor("w", TensorProto.FLOAT, [3 * 112 * 112, 512],
                               np.zeros(3 * 112 * 112 * 512, np.float32).tobytes(), raw=True)]
    model = helper.make_model(helper.make_graph(nodes, "mx", [x], [y], init),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "mx.onnx")
    assert normalises_inside(tmp_path / "mx.onnx")


@pytest.fixture
def pinned_to_tiny(monkeypatch: pytest.MonkeyPatch, tiny) -> packs.FacePack:
    """buffalo_l with the generated models' digests in place of the published ones."""
    det, rec = tiny
    real = packs.PACKS["buffalo_l"]
    fake = dataclasses.replace(
        real, det=dataclasses.replace(real.det, sha256=sha256_file(det)),
        rec=dataclasses.replace(real.rec, sha256=sha256_file(rec)), archive_sha256=None)
    monkeypatch.setitem(packs.PACKS, "buffalo_l", fake)
    return fake


def _archive(folder: Path, det: Path, rec: Path, nested: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "buffalo_l/" if nested else ""
    with zipfile.ZipFile(folder / "buffalo_l.zip", "w") as zf:
        zf.write(det, prefix + "det_10g.onnx")
        zf.write(rec, prefix + "w600k_r50.onnx")
        zf.writestr(prefix + "genderage.onnx", b"not needed")
    return folder / "buffalo_l.zip"


def test_fetch_from_a_file_url_installs_verifies_and_is_idempotent(tmp_path, tiny,
                                                                   pinned_to_tiny):
    release = tmp_path / "release"
    _archive(release, *tiny, nested=True)
    said: list[str] = []
    target = fetch_face(tmp_path / "models", "buffalo_l", said.append,
                        base_url=f"file://{release}")
    manifest = Manifest.load(target / MANIFEST_NAME)
    assert {s.file for s in manifest.models.values()} == {"det_10g.onnx", "w600k_r50.onnx"}
    assert manifest.models["det"].source.startswith(f"file://{release}/buffalo_l.zip")
    assert not (target / "genderage.onnx").exists()
    FacePipeline.load(tmp_path / "models")
    fetch_face(tmp_path / "models", "buffalo_l", said.append, base_url=f"file://{release}")
    assert "present and verified" in said[-1]


def test_fetch_refuses_a_tampered_file_and_a_wrong_archive_digest(tmp_path, tiny,
                                                                  pinned_to_tiny, monkeypatch):
    det, rec = tiny
    bad = tmp_path / "bad" / "w600k_r50.onnx"
    bad.parent.mkdir()
    bad.write_bytes(rec.read_bytes() + b"\0")
    _archive(tmp_path / "release", det, bad)
    with pytest.raises(FetchError, match=r"not buffalo_l's w600k_r50\.onnx; nothing installed"):
        fetch_face(tmp_path / "models", "buffalo_l", lambda _: None,
                   base_url=f"file://{tmp_path / 'release'}")
    monkeypatch.setitem(packs.PACKS, "buffalo_l",
                        dataclasses.replace(pinned_to_tiny, archive_sha256="0" * 64))
    with pytest.raises(FetchError, match=r"not the published buffalo_l\.zip"):
        fetch_face(tmp_path / "models", "buffalo_l", lambda _: None,
                   base_url=f"file://{tmp_path / 'release'}")
    assert not (tmp_path / "models" / "face" / MANIFEST_NAME).exists()


def test_fetch_offline_tells_the_manual_route(tmp_path):
    with pytest.raises(FetchError, match="--from that/folder"):
        fetch_face(tmp_path, "buffalo_s", lambda _: None, base_url=f"file://{tmp_path}/none")


def test_install_from_a_folder_of_files_or_an_archive(tmp_path, tiny, pinned_to_tiny):
    det, rec = tiny
    loose = tmp_path / "loose" / "unpacked"
    loose.mkdir(parents=True)
    shutil.copy(det, loose)
    shutil.copy(rec, loose)
    fetch_face(tmp_path / "a", "buffalo_l", lambda _: None, folder=tmp_path / "loose")
    _archive(tmp_path / "zipped", det, rec)
    fetch_face(tmp_path / "b", "buffalo_l", lambda _: None, folder=tmp_path / "zipped")
    for name in ("a", "b"):
        assert len(FacePipeline.load(tmp_path / name)(np.zeros((8, 8, 3), np.uint8))) == 0
    with pytest.raises(FetchError, match=r"holds neither antelopev2\.zip"):
        fetch_face(tmp_path / "c", "antelopev2", lambda _: None, folder=tmp_path / "loose")


def test_installing_another_pack_replaces_the_first(tmp_path, tiny):
    install_tiny(tmp_path, tmp_path / "src")
    det, rec = tiny
    install_face_files(tmp_path, get_pack("buffalo_s"), det, rec, pinned=False,
                       progress=lambda _: None)
    assert sorted(p.name for p in (tmp_path / "face").glob("*.onnx")) == ["det_500m.onnx",
                                                                          "w600k_mbf.onnx"]
