"""Put a Chinese-CLIP ONNX pair and its vocab into ``<model_dir>/clip`` with a manifest.

One function serves every route (download, export from a checkpoint, files copied by hand, the
tests' tiny model): it places the files, checks each against a known sha256 where there is one,
checks that the ONNX files honour the official export's contract, and writes the manifest last,
so a directory with a manifest is always complete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from models.clip.tokenizer import CONTEXT_LENGTH
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

FAMILY = "clip"
IMAGE_FILE = "vit-b-16.img.fp32.onnx"  # names of cn_clip's export, kept by the MT-Photos sidecar
TEXT_FILE = "vit-b-16.txt.fp32.onnx"
VOCAB_FILE = "vocab.txt"
VOCAB_SHA256 = "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c"  # cn_clip 1.6.0
EMBED_DIM = 512
IMAGE_SIZE = 224  # the front resizes to protocol.images.CLIP_SIZE; a test keeps them equal
VOCAB_SIZE = 21128

# Chinese-CLIP's image recipe (cn_clip image_transform): RGB, /255, OpenAI CLIP's mean and std.
IMAGE_PREPROCESS = Preprocess(
    channel_order="RGB",
    scale=1 / 255,
    mean=(0.48145466, 0.4578275, 0.40821073),
    std=(0.26862954, 0.26130258, 0.27577711),
)
# Text and vocab take no pixels; the manifest format still wants a recipe.
NO_PIXELS = Preprocess(channel_order="none", scale=1.0, mean=(), std=())

# role -> (input name, output name) of cn_clip/deploy/pytorch_to_onnx.py's export
CONTRACT = {"image": ("image", "unnorm_image_features"), "text": ("text", "unnorm_text_features")}


def clip_manifest(sha256: Mapping[str, str], sources: Mapping[str, str]) -> Manifest:
    """The manifest of an fp32 ONNX pair with external mean/std (vocab listed as a third file).

    Roles: ``image``, ``text`` and ``vocab``; the vocab is not a model but gets the same
    sha256 check, so it is listed with a spec that names no tensor.
    """
    image = ModelSpec(
        file=IMAGE_FILE, source=sources["image"], sha256=sha256["image"], input_name="image",
        layout="NCHW", dtype="float32", shape=(1, 3, IMAGE_SIZE, IMAGE_SIZE),
        mean_std_folded=False, preprocess=IMAGE_PREPROCESS,
    )
    text = ModelSpec(
        file=TEXT_FILE, source=sources["text"], sha256=sha256["text"], input_name="text",
        layout="NL", dtype="int64", shape=(1, CONTEXT_LENGTH), mean_std_folded=False,
        preprocess=NO_PIXELS,
    )
    vocab = ModelSpec(
        file=VOCAB_FILE, source=sources["vocab"], sha256=sha256["vocab"], input_name="",
        layout="lines", dtype="utf-8", shape=(VOCAB_SIZE,), mean_std_folded=False,
        preprocess=NO_PIXELS,
    )
    return Manifest(family=FAMILY, models={"image": image, "text": text, "vocab": vocab})


def install_clip_files(
    model_dir: Path,
    image_onnx: Path,
    text_onnx: Path,
    vocab: Path,
    *,
    sources: Mapping[str, str] | None = None,
    expected: Mapping[str, str | None] | None = None,
    move: bool = False,
    progress: Callable[[str], None] = print,
) -> Path:
    """Copy (or ``move``) the three files into ``<model_dir>/clip``, verify, write the manifest.

    ``expected`` pins a sha256 per role; the vocab is always checked against cn_clip's. A role
    without a pin gets the digest of the file as found, recorded in the manifest. ``sources``
    says where each file came from (default: its local path). Returns the family directory.
    """
    given = {"image": Path(image_onnx), "text": Path(text_onnx), "vocab": Path(vocab)}
    pins = {"vocab": VOCAB_SHA256, **(expected or {})}
    digests: dict[str, str] = {}
    for role, path in given.items():
        digests[role] = sha256_file(path)
        pin = pins.get(role)
        if pin and digests[role] != pin:
            raise ModelIntegrityError(
                f"{path} has sha256 {digests[role]}, expected {pin}: not the published {role} file"
            )
    for role in CONTRACT:
        check_contract(role, given[role])
    target = family_dir(model_dir, FAMILY)
    install_files(target, clip_manifest(digests, local_sources(given, sources)), given,
                  move=move, progress=progress)
    return target


def check_contract(role: str, path: Path) -> None:
    """Load the file and run it once: the official names, one input, a [1, 512] float32 out."""
    input_name, output_name = CONTRACT[role]
    session = open_candidate(path)
    if session.input_names != [input_name]:
        raise ModelIntegrityError(
            f"{path}: inputs {session.input_names}, expected [{input_name!r}] "
            f"(the {role} model of cn_clip's ONNX export)"
        )
    if role == "image":
        feed = np.zeros((1, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    else:
        feed = np.zeros((1, CONTEXT_LENGTH), dtype=np.int64)
        feed[0, :2] = (101, 102)  # [CLS] [SEP]: the empty text
    out = session.run({input_name: feed})
    if len(out) != 1 or out[0].shape != (1, EMBED_DIM) or out[0].dtype != np.float32:
        shapes = [(o.dtype.name, o.shape) for o in out]
        raise ModelIntegrityError(
            f"{path}: outputs {shapes}, expected {output_name} float32 [1, {EMBED_DIM}]"
        )
