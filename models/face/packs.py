"""The InsightFace model packs a user can pick with FACE_MODEL, and what each one holds.

Every pack pairs an SCRFD detector (input ``input.1``, 9 outputs: scores, boxes and 5-point
landmarks at strides 8, 16, 32, two anchors per cell) with an ArcFace recogniser (112x112 RGB
in, 512 numbers out): the same contract, other weights. Only the two files the pipeline runs
are installed; the packs' landmark, age and gender models are left in the archive.

Digests are those of the files in InsightFace's v0.7 release archives (the release the MT-Photos
InsightFace sidecars and Immich's exports were made from); a downloaded file that differs is
refused. The archive digest is pinned where it is published (buffalo_l).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

RELEASE_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7"
DEFAULT_PACK = "buffalo_l"
ROLES = ("det", "rec")  # the two files of a pack the pipeline runs


@dataclass(frozen=True)
class PackFile:
    """One model file inside a pack archive."""

    name: str  # the file's name in the archive (any folder inside it is ignored)
    sha256: str


@dataclass(frozen=True)
class FacePack:
    name: str
    detector: str  # what /check and the status page call the detector
    det: PackFile
    rec: PackFile
    archive_sha256: str | None = None  # None: no published digest; the files' digests decide

    @property
    def archive(self) -> str:
        return f"{self.name}.zip"

    def file(self, role: str) -> PackFile:
        return {"det": self.det, "rec": self.rec}[role]


PACKS: dict[str, FacePack] = {
    "buffalo_l": FacePack(
        "buffalo_l", "SCRFD-10GF",
        PackFile("det_10g.onnx",
                 "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"),
        PackFile("w600k_r50.onnx",
                 "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43"),
        archive_sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
    ),
    # the same detector as buffalo_l under its training name, a ResNet-100 on Glint360K
    "antelopev2": FacePack(
        "antelopev2", "SCRFD-10GF",
        PackFile("scrfd_10g_bnkps.onnx",
                 "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"),
        PackFile("glintr100.onnx",
                 "4ab1d6435d639628a6f3e5008dd4f929edf4c4124b1a7169e1048f9fef534cdf"),
    ),
    "buffalo_s": FacePack(
        "buffalo_s", "SCRFD-500MF",
        PackFile("det_500m.onnx",
                 "5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a"),
        PackFile("w600k_mbf.onnx",
                 "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f"),
    ),
}


def get_pack(name: str) -> FacePack:
    """The pack called ``name`` (case-insensitive); ValueError naming the choices."""
    pack = PACKS.get(name.strip().lower())
    if pack is None:
        raise ValueError(f"unknown face model {name!r}; choose from {', '.join(PACKS)}")
    return pack


def pack_of_files(det_file: str, rec_file: str) -> FacePack | None:
    """The pack whose two files have these names (a converted ``.rknn`` of the same stem, or a
    path to the ONNX file, counts)."""
    stems = (PurePath(det_file).stem, PurePath(rec_file).stem)
    for pack in PACKS.values():
        if (PurePath(pack.det.name).stem, PurePath(pack.rec.name).stem) == stems:
            return pack
    return None
