"""Faces: SCRFD detection, ArcFace alignment and recognition, InsightFace's packs."""

from models.face.packs import DEFAULT_PACK, PACKS
from models.face.pipeline import FacePipeline, Faces

__all__ = ["DEFAULT_PACK", "PACKS", "FacePipeline", "Faces"]
