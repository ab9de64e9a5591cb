"""Export a Chinese-CLIP checkpoint to the ONNX pair the MT-Photos sidecar runs, on today's torch.

cn_clip 1.6.0's ``deploy/pytorch_to_onnx.py`` fails on a current stack (tried with torch 2.13):
torch >= 2.9 exports with dynamo by default, which cannot bring LayerNormalization down to the
requested opset 13; with the TorchScript exporter, torch >= 2 routes ``nn.MultiheadAttention`` to
``scaled_dot_product_attention``, which opset 13 cannot express; and its fp16 step calls an
onnxmltools function that now only raises. This module keeps that script's fp32 recipe (model
built by cn_clip's ``create_model``, names ``image``/``unnorm_image_features`` and
``text``/``unnorm_text_features``, opset 13, dynamic image batch, no constant folding on the image
side) and avoids the three failures. It needs torch and cn_clip; the fetch runs it as a child::

    python -m models.tools.export_clip CHECKPOINT OUT_DIR [--arch ViT-B-16]

and finds ``vit-b-16.img.fp32.onnx``, ``vit-b-16.txt.fp32.onnx`` and cn_clip's ``vocab.txt``
in OUT_DIR.
"""

from __future__ import annotations

import argparse
import enum
import importlib.util
import inspect
import shutil
import sys
import types
from pathlib import Path

import numpy as np
from PIL import Image

CONTEXT_LENGTH = 52
MISSING = "exporting a checkpoint needs torch and cn_clip in {python}: pip install torch cn_clip"


def install_torchvision_stand_in() -> None:
    """Let ``cn_clip.clip`` import without torchvision (no CPU wheel of it reaches every host).

    ``cn_clip/clip/utils.py`` imports four transforms at import time and uses them only in
    ``image_transform``. The stand-ins do what torchvision does for PIL input (``Resize``: PIL
    ``resize`` to (w, h); ``ToTensor``: uint8 HWC to float CHW divided by 255; ``Normalize``:
    subtract mean, divide by std), so cn_clip's own recipe runs unchanged. A real torchvision,
    when installed, is used instead.
    """
    if importlib.util.find_spec("torchvision") is not None:
        return
    import torch

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    pil_modes = {
        InterpolationMode.NEAREST: Image.NEAREST,
        InterpolationMode.BILINEAR: Image.BILINEAR,
        InterpolationMode.BICUBIC: Image.BICUBIC,
    }

    class Compose:
        def __init__(self, transforms):
            self.transforms = list(transforms)

        def __call__(self, value):
            for transform in self.transforms:
                value = transform(value)
            return value

    class Resize:
        def __init__(self, size, interpolation=InterpolationMode.BILINEAR):
            self.size, self.interpolation = tuple(size), interpolation  # (height, width)

        def __call__(self, img):
            return img.resize(self.size[::-1], pil_modes[self.interpolation])

    class ToTensor:
        def __call__(self, pic):
            pixels = np.array(pic, dtype=np.uint8, copy=True).reshape(pic.size[1], pic.size[0], -1)
            return torch.from_numpy(pixels).permute(2, 0, 1).contiguous().float().div(255)

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = mean, std

        def __call__(self, tensor):
            mean = torch.as_tensor(self.mean, dtype=tensor.dtype).view(-1, 1, 1)
            std = torch.as_tensor(self.std, dtype=tensor.dtype).view(-1, 1, 1)
            return tensor.clone().sub_(mean).div_(std)

    transforms = types.ModuleType("torchvision.transforms")
    for cls in (Compose, Resize, ToTensor, Normalize, InterpolationMode):
        setattr(transforms, cls.__name__, cls)
    package = types.ModuleType("torchvision")
    package.transforms = transforms
    sys.modules["torchvision"] = package
    sys.modules["torchvision.transforms"] = transforms


def use_explicit_attention() -> None:
    """Make the ViT blocks trace to MatMul/Softmax, as cn_clip's opset-13 exports have them.

    cn_clip calls ``nn.MultiheadAttention(..., need_weights=False)``. Under the torch of its
    time that computed attention with explicit batched matmuls; torch 2 routes it to
    ``scaled_dot_product_attention``. ``need_weights=True`` takes the explicit path (same
    arithmetic; the unused weights are pruned from the graph).
    """
    from cn_clip.clip.model import ResidualAttentionBlock

    def attention(self, x):
        mask = None if self.attn_mask is None else self.attn_mask.to(x.dtype)
        return self.attn(x, x, x, need_weights=True, attn_mask=mask)[0]

    ResidualAttentionBlock.attention = attention


def export_pair(model, image_path: Path, text_path: Path, resolution: int = 224) -> None:
    """Write the image and text towers as cn_clip's script does (fp32, opset 13, same names)."""
    import torch
    from cn_clip.clip import tokenize
    from cn_clip.clip.utils import image_transform

    image = image_transform(resolution)(Image.new("RGB", (resolution, resolution))).unsqueeze(0)
    text = tokenize([""], context_length=CONTEXT_LENGTH)
    has_dynamo = "dynamo" in inspect.signature(torch.onnx.export).parameters  # torch >= 2.5
    legacy = {"dynamo": False} if has_dynamo else {}
    with torch.no_grad():
        torch.onnx.export(
            model, (image, None), str(image_path), input_names=["image"],
            output_names=["unnorm_image_features"], export_params=True,
            do_constant_folding=False, opset_version=13,
            dynamic_axes={"image": {0: "batch"}}, **legacy,
        )
        torch.onnx.export(
            model, (None, text), str(text_path), input_names=["text"],
            output_names=["unnorm_text_features"], export_params=True, opset_version=13,
            **legacy,
        )


def load_checkpoint(path: Path, arch: str):
    """cn_clip's model of ``arch`` with the checkpoint's weights, fp32, eval mode."""
    import torch
    from cn_clip.clip.utils import _MODEL_INFO, create_model

    with open(path, "rb") as fh:
        checkpoint = torch.load(fh, map_location="cpu", weights_only=True)
    return create_model(_MODEL_INFO[arch]["struct"], checkpoint).float().eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a cn_clip .pt checkpoint")
    parser.add_argument("out", type=Path, help="directory for the two ONNX files and vocab.txt")
    parser.add_argument("--arch", default="ViT-B-16", help="cn_clip model name (ViT-B-16)")
    args = parser.parse_args(argv)
    if not all(importlib.util.find_spec(name) for name in ("torch", "cn_clip")):
        print(MISSING.format(python=sys.executable), file=sys.stderr)
        return 2
    install_torchvision_stand_in()
    import cn_clip.clip
    from cn_clip.clip.utils import _MODEL_INFO

    use_explicit_attention()
    model = load_checkpoint(args.checkpoint, args.arch)
    prefix = args.out / args.arch.lower()
    image_path, text_path = Path(f"{prefix}.img.fp32.onnx"), Path(f"{prefix}.txt.fp32.onnx")
    args.out.mkdir(parents=True, exist_ok=True)
    export_pair(model, image_path, text_path, _MODEL_INFO[args.arch]["input_resolution"])
    shutil.copy(Path(cn_clip.clip.__file__).parent / "vocab.txt", args.out / "vocab.txt")
    for path in (image_path, text_path):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
