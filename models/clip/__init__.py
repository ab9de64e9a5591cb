"""Chinese-CLIP ViT-B-16: tokenizer, image and text encoders, and their loader."""

from models.clip.pipeline import ClipModels, l2_normalise

__all__ = ["ClipModels", "l2_normalise"]
