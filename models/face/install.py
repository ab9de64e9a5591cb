"""Put a face pack's detector and recogniser into ``<model_dir>/face`` with a manifest.

Every route (the release download, files given with ``--from``, the tests' generated models)
ends here: the files are checked against the digests pinned for the pack when there are pins,
loaded and run once to prove they honour the SCRFD and ArcFace contracts, copied under the
pack's own file names (which is how a loader knows which pack is installed), and the manifest
is written last, so a directory with a manifest is always complete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from models.face.align import ALIGNED_SIZE
from models.face.detect import ANCHORS, DET_SIZE, OUTPUTS, STRIDES
from models.face.packs import FacePack
from models.face.recognize import EMBEDDING_SIZE
from models.manifest import (
    Manifest,
    ModelIntegrityError,
    ModelSpec,
    Preprocess,
    family_dir,
    install_files,
    local_sources,
    sha256_file,
)
from models.runtime import open_candidate

FAMILY = "face"
# SCRFD: RGB, (x - 127.5) / 128 (insightface scrfd.py); ArcFace: RGB, (x - 127.5) / 127.5.
DET_PREPROCESS = Preprocess(channel_order="RGB", scale=1.0, mean=(127.5,) * 3, std=(128.0,) * 3)
REC_PREPROCESS = Preprocess(channel_order="RGB", scale=1.0, mean=(127.5,) * 3, std=(127.5,) * 3)
# An MXNet-exported ArcFace normalises inside the graph (insightface arcface_onnx.py tells by
# Sub and Mul nodes among the first 8): it takes the pixels as they are.
RAW_PREPROCESS = Preprocess(channel_order="RGB", scale=1.0, mean=(0.0,) * 3, std=(1.0,) * 3)


def face_manifest(pack: FacePack, sha256: Mapping[str, str], sources: Mapping[str, str],
                  input_names: Mapping[str, str], rec_preprocess: Preprocess = REC_PREPROCESS
                  ) -> Manifest:
    """The manifest of a pack's ONNX pair: the detector as the pipeline feeds it (one 640x640
    canvas), the recogniser with a free batch size."""
    det = ModelSpec(
        file=pack.det.name, source=sources["det"], sha256=sha256["det"],
        input_name=input_names["det"], layout="NCHW", dtype="float32",
        shape=(1, 3, DET_SIZE, DET_SIZE), mean_std_folded=False, preprocess=DET_PREPROCESS,
    )
    rec = ModelSpec(
        file=pack.rec.name, source=sources["rec"], sha256=sha256["rec"],
        input_name=input_names["rec"], layout="NCHW", dtype="float32",
        shape=(-1, 3, ALIGNED_SIZE, ALIGNED_SIZE), mean_std_folded=False,
        preprocess=rec_preprocess,
    )
    return Manifest(family=FAMILY, models={"det": det, "rec": rec})


def install_face_files(
    model_dir: Path, pack: FacePack, det_onnx: Path, rec_onnx: Path, *,
    sources: Mapping[str, str] | None = None, pinned: bool = True, move: bool = False,
    progress: Callable[[str], None] = print,
) -> Path:
    """Verify and install the two files as ``pack``; return ``<model_dir>/face``.

    ``pinned`` checks each file against the pack's published sha256 (the tests install their
    generated models with it off). ``sources`` says where each file came from.
    """
    given = {"det": Path(det_onnx), "rec": Path(rec_onnx)}
    digests = {role: sha256_file(path) for role, path in given.items()}
    if pinned:
        for role, path in given.items():
            want = pack.file(role).sha256
            if digests[role] != want:
                raise ModelIntegrityError(
                    f"{path} has sha256 {digests[role]}, expected {want}: not {pack.name}'s "
                    f"{pack.file(role).name}"
                )
    names = {"det": check_detector(given["det"]), "rec": check_recognizer(given["rec"])}
    recipe = RAW_PREPROCESS if normalises_inside(given["rec"]) else REC_PREPROCESS
    manifest = face_manifest(pack, digests, local_sources(given, sources), names, recipe)
    target = family_dir(model_dir, FAMILY)
    install_files(target, manifest, given, move=move, progress=progress, superseded="*.onnx")
    return target


def check_detector(path: Path) -> str:
    """Run the detector once on a black 640x640 canvas; its input name. ModelIntegrityError
    unless it gives SCRFD's 9 heads (scores, boxes, landmarks at strides 8, 16, 32)."""
    session = open_candidate(path)
    if len(session.input_names) != 1:
        raise ModelIntegrityError(f"{path}: inputs {session.input_names}, SCRFD has one")
    name = session.input_names[0]
    try:
        outputs = session.run({name: np.zeros((1, 3, DET_SIZE, DET_SIZE), np.float32)})
    except Exception as exc:
        raise ModelIntegrityError(f"{path}: does not run on a 1x3x640x640 input: {exc}") from exc
    widths = (1, 4, 10)
    expected = [((DET_SIZE // s) ** 2 * ANCHORS, widths[i // 3]) for i, s in
                enumerate(STRIDES * 3)]
    found = [(int(np.asarray(o).size // o.shape[-1]), int(o.shape[-1])) for o in outputs]
    if len(outputs) != OUTPUTS or found != expected:
        raise ModelIntegrityError(f"{path}: outputs {found}, expected SCRFD's {expected} "
                                  "(5-point landmarks, strides 8/16/32, 2 anchors)")
    return name


def check_recognizer(path: Path) -> str:
    """Run the recogniser on two black crops; its input name. ModelIntegrityError unless it
    maps N x 3 x 112 x 112 to N x 512."""
    session = open_candidate(path)
    if len(session.input_names) != 1:
        raise ModelIntegrityError(f"{path}: inputs {session.input_names}, ArcFace has one")
    name = session.input_names[0]
    try:
        outputs = session.run({name: np.zeros((2, 3, ALIGNED_SIZE, ALIGNED_SIZE), np.float32)})
    except Exception as exc:
        raise ModelIntegrityError(f"{path}: does not run on 2x3x112x112 input ({exc}); an "
                                  "ArcFace recogniser takes any batch size") from exc
    if len(outputs) != 1 or outputs[0].shape != (2, EMBEDDING_SIZE):
        shapes = [list(o.shape) for o in outputs]
        raise ModelIntegrityError(f"{path}: outputs {shapes}, expected one [N, 512]")
    return name


def normalises_inside(path: Path) -> bool:
    """InsightFace's test for an MXNet export that subtracts and scales in the graph."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    names = [node.name for node in graph.node[:8]]
    sub = any(n.startswith(("Sub", "_minus")) for n in names)
    mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return sub and mul
