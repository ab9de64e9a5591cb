"""Chinese-CLIP image tower: a 224x224 RGB picture in, the unnormalised 512-d vector out.

The front resizes (bicubic, straight to 224x224, no crop: cn_clip's recipe) because it decodes;
this class only arranges pixels the way the manifest says the model wants them. An ONNX export
takes normalised float32 NCHW; a converted model with mean/std folded in (RKNN) takes the raw
uint8 pixels, usually NHWC. Reading both from the manifest is what keeps them from drifting.
"""

from __future__ import annotations

import numpy as np

from models.manifest import ModelSpec
from models.preprocess import normalize_chw, to_model_order
from models.runtime import Session

LAYOUTS = ("NCHW", "NHWC")


class ClipImageEncoder:
    """One image at a time; ``bgr_compat`` swaps R and B like the official services do.

    The official ONNX/OpenVINO/RKNN sidecars hand the model OpenCV's BGR pixels as if they were
    RGB. An index built by them only matches vectors made with the same swap, so the switch
    exists; the default is the true colours Chinese-CLIP was trained on.
    """

    def __init__(self, session: Session, spec: ModelSpec, bgr_compat: bool = False) -> None:
        if spec.layout not in LAYOUTS:
            raise ValueError(f"CLIP image model layout {spec.layout!r}; supported: {LAYOUTS}")
        self.session = session
        self.spec = spec
        self.bgr_compat = bgr_compat
        dims = spec.shape[2:4] if spec.layout == "NCHW" else spec.shape[1:3]
        self.size: tuple[int, int] = (int(dims[0]), int(dims[1]))

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """The model's input tensor (batch of one) for an HxWx3 uint8 RGB image of ``size``."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected HxWx3 uint8 RGB, got {rgb.dtype}{list(rgb.shape)}")
        if rgb.shape[:2] != self.size:
            raise ValueError(
                f"expected a {self.size[1]}x{self.size[0]} image (resized by the caller, bicubic, "
                f"no crop), got {rgb.shape[1]}x{rgb.shape[0]}"
            )
        recipe = self.spec.preprocess
        pixels = to_model_order(rgb, recipe)
        if self.bgr_compat:
            pixels = pixels[..., ::-1]
        if self.spec.mean_std_folded:
            hwc = pixels.astype(self.spec.dtype, copy=False)
            tensor = hwc.transpose(2, 0, 1) if self.spec.layout == "NCHW" else hwc
        else:
            chw = normalize_chw(pixels, recipe)
            tensor = chw if self.spec.layout == "NCHW" else chw.transpose(1, 2, 0)
        return np.ascontiguousarray(tensor[None])

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The unnormalised embedding, float32 of shape (512,)."""
        out = self.session.run({self.spec.input_name: self.prepare(rgb)})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)
