"""Faces per second: our CPU pipeline against insightface 2.1's, same models, same threads.

Both run the real-size random-weight models (models/tools/make_face_models.py --size full:
an SCRFD-10GF-sized detector and an IResNet-50 recogniser, buffalo_l's contract) on the same
photos with onnxruntime at the same thread count, one photo at a time, passes interleaved
(ours, theirs, ours, ...) so both see the same machine; the best pass of each is compared.
insightface runs as the sidecars use it: detector at 640x640, then the recogniser once per
face. Also measured: the recogniser's cost per face at each batch size (the NPU conversion's
batch, models/convert/plan.py FACE_REC_BATCH).

    nice -n 10 python -m benchmarks.bench_face --threads 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from models.face.install import install_face_files
from models.face.packs import get_pack
from models.face.pipeline import FacePipeline
from models.tools.make_face_models import generate

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "photos"


def load_photos(folder: Path) -> list[tuple[str, np.ndarray]]:
    photos = []
    for path in sorted(folder.iterdir()):
        with Image.open(path) as img:
            photos.append((path.name, np.asarray(ImageOps.exif_transpose(img).convert("RGB"))))
    return photos


def theirs(det: Path, rec: Path, threads: int):
    import onnxruntime as ort
    from insightface.app.common import Face
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    detector = SCRFD(str(det), session=ort.InferenceSession(str(det), options, providers=providers))
    detector.prepare(-1, input_size=(640, 640))
    recognizer = ArcFaceONNX(str(rec), session=ort.InferenceSession(str(rec), options,
                                                                    providers=providers))

    def run(rgb: np.ndarray, threshold: float) -> int:
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # the sidecars decode with OpenCV
        dets, points = detector.detect(bgr, det_thresh=threshold)
        for index in range(dets.shape[0]):
            face = Face(bbox=dets[index, :4], kps=points[index], det_score=dets[index, 4])
            recognizer.get(bgr, face)
            _ = face.normed_embedding
        return int(dets.shape[0])

    return run


def ours(model_dir: Path, threads: int):
    from models.face.pipeline import l2_normalised

    pipeline = FacePipeline.load(model_dir, threads=threads)

    def run(rgb: np.ndarray, threshold: float) -> int:
        faces = pipeline(rgb, threshold)
        l2_normalised(faces.embeddings)
        return len(faces)

    return run, pipeline


def timed_pass(run, photos, threshold: float) -> tuple[float, int]:
    started, faces = time.perf_counter(), 0
    for _, rgb in photos:
        faces += run(rgb, threshold)
    return time.perf_counter() - started, faces


def batch_costs(pipeline: FacePipeline, sizes: tuple[int, ...], rounds: int) -> dict[int, float]:
    """Milliseconds per face for each recogniser batch size (best of ``rounds``)."""
    crops = np.random.default_rng(0).integers(0, 256, (max(sizes), 112, 112, 3), dtype=np.uint8)
    costs = {}
    for size in sizes:
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            pipeline.recognizer(crops[:size])
            best = min(best, time.perf_counter() - started)
        costs[size] = 1000 * best / size
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--min-score", type=float, default=0.98,
                        help="detection threshold; the random detector's scores saturate, "
                             "0.98 leaves 0-6 faces on most shared photos, ~130 on two")
    parser.add_argument("--models", type=Path, default=None,
                        help="folder with det_10g.onnx and w600k_r50.onnx (default: generate "
                             "the real-size random models)")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", FutureWarning)  # scikit-image's estimate() rename
    with tempfile.TemporaryDirectory(prefix="bench-face-") as tmp:
        source = args.models or Path(tmp) / "src"
        if args.models is None:
            generate(source, "full")
        det, rec = source / "det_10g.onnx", source / "w600k_r50.onnx"
        install_face_files(Path(tmp) / "models", get_pack("buffalo_l"), det, rec, pinned=False,
                           progress=lambda _: None)
        photos = load_photos(args.photos)
        mine, pipeline = ours(Path(tmp) / "models", args.threads)
        reference = theirs(det, rec, args.threads)
        for run in (mine, reference):  # warm-up: arenas and caches on both sides
            timed_pass(run, photos[:2], args.min_score)
        best = {"ours": (float("inf"), 0), "insightface": (float("inf"), 0)}
        for index in range(args.passes):
            for name, run in (("ours", mine), ("insightface", reference)):
                seconds, faces = timed_pass(run, photos, args.min_score)
                print(f"pass {index + 1} {name:11s}: {seconds:7.2f} s, {faces} faces, "
                      f"{faces / seconds:6.1f} faces/s")
                best[name] = min(best[name], (seconds, faces))
        ratio = best["ours"][0] / best["insightface"][0]
        print(f"{len(photos)} photos, {best['ours'][1]} faces, {args.threads} threads: ours "
              f"{best['ours'][0]:.2f} s, insightface {best['insightface'][0]:.2f} s, ratio "
              f"{ratio:.2f}x its time")
        costs = batch_costs(pipeline, (1, 2, 4, 8), rounds=3)
        print("recogniser ms per face by batch: "
              + ", ".join(f"{b}: {ms:.1f}" for b, ms in costs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
