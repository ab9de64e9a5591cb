"""Generate the tiny random-weight Chinese-CLIP the test suite runs on, plus torch's answers.

Why: the real ViT-B-16 pair is ~730 MB and no reachable registry holds it, yet the CLIP code must
be tested end to end on the same architecture and the official export's ONNX contract. This
script builds cn_clip's own ``CLIP`` class with few, narrow layers (random weights, fixed seed),
exports it the way ``cn_clip/deploy/pytorch_to_onnx.py`` does, and records what the torch model
computes on the shared photos and a set of texts (torchvision, absent here, is stood in for:
see export_clip.install_torchvision_stand_in). The outputs are committed, so the tests need
neither torch nor cn_clip.

Run it in a scratch venv, never in the project's (torch is large and not a project dependency)::

    python3 -m venv /tmp/clipgen
    /tmp/clipgen/bin/pip install torch==2.13.0            # the CPU wheel
    /tmp/clipgen/bin/pip install --no-deps cn-clip==1.6.0
    /tmp/clipgen/bin/pip install "numpy<=1.26.4" "onnx<=1.18" onnxruntime pillow six
    cd <repo> && /tmp/clipgen/bin/python -m models.tools.make_tiny_clip

Re-running rewrites ``tests/fixtures/clip/{image.onnx,text.onnx,reference.npz}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from models.tools.export_clip import (
    export_pair,
    install_torchvision_stand_in,
    use_explicit_attention,
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "clip"
PHOTOS = REPO.parent / "shared" / "testdata" / "photos"
SEED = 20240611
CONTEXT_LENGTH = 52
RESOLUTION = 224

# cn_clip's CLIP(**config): the ViT-B-16@RoBERTa-wwm-ext-base-chinese family, shrunk. Kept: the
# 224 input, 16 px patches, the 21128-word vocab, 512 positions, 512-d output. Shrunk: depth
# and width (the real model has 12 layers of 768 on both sides), so each ONNX stays ~1 MB.
TINY_CONFIG = {
    "embed_dim": 512,
    "image_resolution": RESOLUTION,
    "vision_layers": 2,
    "vision_width": 64,
    "vision_patch_size": 16,
    "vision_head_width": 32,  # 2 heads, so the multi-head reshapes are exercised
    "vocab_size": 21128,
    "text_attention_probs_dropout_prob": 0.1,
    "text_hidden_act": "gelu",
    "text_hidden_dropout_prob": 0.1,
    "text_hidden_size": 12,
    # BERT's 0.02 is for 768 wide layers; at width 12 every text came out at cosine > 0.99999 to
    # every other, so a wrong token id could not fail a test. 0.3 spreads them (median ~0.95).
    "text_initializer_range": 0.3,
    "text_intermediate_size": 48,
    "text_max_position_embeddings": 512,
    "text_num_attention_heads": 2,
    "text_num_hidden_layers": 2,
    "text_type_vocab_size": 2,
}

TEXTS = [
    "",
    "一只猫",
    "一只狗在草地上奔跑",
    "红色的汽车",
    "蓝色的汽车",
    "a photo of a cat",
    "A Red Car parked on the street",
    "皮卡丘 Pikachu",
    "iPhone 15 Pro 拍摄的夜景",
    "2024年春节 北京 天安门",
    "Café crème brûlée",
    "  多个   空格\t和\n换行  ",
    "😀 emoji 表情 🐱",
    "ＦＵＬＬ－ＷＩＤＴＨ 全角字符",  # noqa: RUF001 - full-width on purpose
    "日本語のテキスト と カタカナ",
    "한국어 텍스트",
    "unaffable 运行速度 supercalifragilisticexpialidocious",
    "!!!???。。。，，，《》",  # noqa: RUF001 - CJK punctuation on purpose
    "3.1415926 π ≈ 22/7",
    "春眠不觉晓处处闻啼鸟夜来风雨声花落知多少" * 4,
    " ".join(["the quick brown fox jumps over the lazy dog"] * 8),
]


def build_model():
    """cn_clip's CLIP with TINY_CONFIG, seeded; biases and norm gains made non-zero/non-one.

    Zero-initialised biases (attention in/out projections, every BERT Linear, LayerNorm shifts)
    and unit LayerNorm gains would let a converter drop or mis-handle a tensor unnoticed (RKNN
    folds constant-zero adds); random values make every parameter count in the comparison.
    """
    import torch
    from cn_clip.clip.model import CLIP

    torch.manual_seed(SEED)
    model = CLIP(**TINY_CONFIG)
    noise = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for _name, param in sorted(model.named_parameters()):
            if param.dim() == 1 and bool(torch.all(param == 0)):
                param.copy_(torch.randn(param.shape, generator=noise) * 0.02)
            elif param.dim() == 1 and bool(torch.all(param == 1)):
                param.add_(torch.randn(param.shape, generator=noise) * 0.05)
    return model.float().eval()


def export(model, out: Path) -> tuple[Path, Path]:
    """The checkpoint exporter's recipe (models/tools/export_clip.py), under fixture names."""
    image_path, text_path = out / "image.onnx", out / "text.onnx"
    export_pair(model, image_path, text_path, RESOLUTION)
    for path in (image_path, text_path):
        label(path)
    return image_path, text_path


def label(path: Path) -> None:
    """Say in the file itself that it is a random test model, not Chinese-CLIP."""
    import onnx

    proto = onnx.load(str(path))
    proto.doc_string = "tiny random-weight Chinese-CLIP test fixture; not a usable model"
    del proto.metadata_props[:]
    for key, value in (("generator", "models/tools/make_tiny_clip.py"), ("seed", str(SEED))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def photo_inputs(names: list[str]) -> tuple[list, list[str], np.ndarray]:
    """cn_clip's image_transform on each EXIF-applied photo; the resized pixels' sha256; the LUT.

    The model input is elementwise in (channel, uint8 value), so torch's ToTensor+Normalize is
    fully described by a 3x256 table; the tests rebuild torch's exact input tensor from that
    table and the resized pixels, whose sha256 pins the resize.
    """
    import torch
    from cn_clip.clip.utils import image_transform

    transform = image_transform(RESOLUTION)
    ramp = Image.fromarray(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2))
    for step in transform.transforms[1:]:  # the recipe after its Resize: RGB, ToTensor, Normalize
        ramp = step(ramp)
    lut = ramp.numpy()[:, 0, :]
    tensors, digests = [], []
    for name in names:
        with Image.open(PHOTOS / name) as img:
            img = ImageOps.exif_transpose(img)
            tensor = transform(img)
            resized = img.resize((RESOLUTION, RESOLUTION), Image.BICUBIC).convert("RGB")
        pixels = np.asarray(resized, dtype=np.uint8)
        rebuilt = torch.from_numpy(lut[np.arange(3)[:, None, None], pixels.transpose(2, 0, 1)])
        assert torch.equal(rebuilt, tensor), f"{name}: LUT does not reproduce the input tensor"
        tensors.append(tensor)
        digests.append(hashlib.sha256(pixels.tobytes()).hexdigest())
    return tensors, digests, lut.astype(np.float32)


def reference(model, out: Path) -> dict[str, np.ndarray]:
    """torch's vectors for the shared photos and TEXTS, plus what the tests need to redo them."""
    import cn_clip
    import torch
    from cn_clip.clip import tokenize

    names = sorted(p.name for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    tensors, digests, lut = photo_inputs(names)
    tokens = tokenize(TEXTS, context_length=CONTEXT_LENGTH)
    with torch.no_grad():
        image_features = model(torch.stack(tensors), None).numpy()
        text_features = model(None, tokens).numpy()
    meta = {
        "seed": SEED,
        "config": TINY_CONFIG,
        "torch": torch.__version__,
        "cn_clip": getattr(cn_clip, "__version__", "1.6.0"),
        "image_input": "EXIF-applied photo -> cn_clip image_transform(224)",
    }
    arrays = {
        "image_names": np.array(names),
        "image_pixels_sha256": np.array(digests),
        "normalise_lut": lut,
        "image_input_sums": np.array([float(t.double().sum()) for t in tensors]),
        "image_features": image_features.astype(np.float32),
        "texts": np.array(TEXTS),
        "text_tokens": tokens.numpy().astype(np.int64),
        "text_features": text_features.astype(np.float32),
        "meta": np.array(json.dumps(meta, ensure_ascii=False)),
    }
    np.savez_compressed(out / "reference.npz", **arrays)
    return arrays


def check_onnx(paths: tuple[Path, Path], arrays: dict[str, np.ndarray]) -> tuple[float, float]:
    """onnxruntime on the exported files must reproduce torch (worst cosine image, text)."""
    import onnxruntime as ort
    import torch
    from cn_clip.clip.utils import image_transform

    image_session = ort.InferenceSession(str(paths[0]), providers=["CPUExecutionProvider"])
    text_session = ort.InferenceSession(str(paths[1]), providers=["CPUExecutionProvider"])
    transform = image_transform(RESOLUTION)
    worst_image = worst_text = 1.0
    for name, want in zip(arrays["image_names"], arrays["image_features"]):
        with Image.open(PHOTOS / str(name)) as img:
            batch = torch.stack([transform(ImageOps.exif_transpose(img))]).numpy()
        got = image_session.run(None, {"image": batch})[0][0]
        worst_image = min(worst_image, cosine(got, want))
    for ids, want in zip(arrays["text_tokens"], arrays["text_features"]):
        got = text_session.run(None, {"text": ids[None, :]})[0][0]
        worst_text = min(worst_text, cosine(got, want))
    return worst_image, worst_text


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture directory")
    args = parser.parse_args(argv)
    install_torchvision_stand_in()
    import cn_clip.clip

    use_explicit_attention()

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    vocab = Path(cn_clip.clip.__file__).parent / "vocab.txt"
    if (out / "vocab.txt").read_bytes() != vocab.read_bytes():
        raise SystemExit(f"{out / 'vocab.txt'} differs from cn_clip's {vocab}")
    model = build_model()
    paths = export(model, out)
    arrays = reference(model, out)
    worst_image, worst_text = check_onnx(paths, arrays)
    for path in (*paths, out / "reference.npz"):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"wrote {path} ({path.stat().st_size:,} bytes, sha256 {digest})")
    print(
        f"{len(arrays['image_names'])} photos, {len(TEXTS)} texts; onnxruntime vs torch: "
        f"worst cosine image {worst_image:.9f}, text {worst_text:.9f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
