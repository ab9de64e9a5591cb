"""Chinese-CLIP text tower: a query string in, the unnormalised 512-d vector out."""

from __future__ import annotations

import numpy as np

from models.clip.tokenizer import ClipTokenizer
from models.manifest import ModelSpec
from models.runtime import Session


class ClipTextEncoder:
    """Tokenizer and session together, so the ids always fit the model's context length."""

    def __init__(self, session: Session, tokenizer: ClipTokenizer, spec: ModelSpec) -> None:
        if tokenizer.context_length != spec.shape[-1]:
            raise ValueError(
                f"tokenizer gives {tokenizer.context_length} ids, the text model takes "
                f"{spec.shape[-1]}"
            )
        self.session = session
        self.tokenizer = tokenizer
        self.spec = spec

    def tokens(self, text: str) -> np.ndarray:
        """The model input: int64 ids of shape (1, context_length)."""
        return self.tokenizer.encode(text)[None, :]

    def __call__(self, text: str) -> np.ndarray:
        """The unnormalised embedding, float32 of shape (512,)."""
        out = self.session.run({self.spec.input_name: self.tokens(text)})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)
