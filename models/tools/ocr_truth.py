"""OCR ground truth: known text rendered onto real photos, seeded and deterministic.

Each sample is a real photo (``shared/testdata/photos``, ``formats/``) scaled to a chosen size,
with a few lines of known text drawn on it the way text appears in photos: signs on plates,
captions, small print, prices, dates, vertical Chinese, in several scripts, slightly rotated,
sometimes blurred, then JPEG-compressed. The truth is each line's text, script group and its
4 corners in the final image. The same seed gives the same bytes (Pillow's rendering with the
same fonts is deterministic), so accuracy figures are reproducible and the set can be kept out
of git and rebuilt anywhere with Debian's ``fonts-noto-cjk`` and ``fonts-dejavu-core``.

Every phrase below was written for this set (no corpus was copied).
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
NOTO_CJK_BOLD = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DEJAVU_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
CJK_INDEX = {"ja": 0, "ko": 1, "zh-hans": 2, "zh-hant": 3}  # faces in the Noto CJK collection

GROUPS = ("en", "latin", "num", "zh-hans", "zh-hant", "ja", "ko", "mixed", "vertical")
LATIN_GROUPS = ("en", "latin", "num", "ko")  # words are separated by spaces
CJK_GROUPS = ("zh-hans", "zh-hant", "mixed", "vertical")  # words found by jieba

PHRASES: dict[str, tuple[str, ...]] = {
    "en": (
        "Wash your hands before eating", "Fresh bread baked every morning",
        "Please keep this door closed", "Welcome to the harbour market",
        "No parking in front of the gate", "Emergency exit on the left",
        "Open daily except public holidays", "Mind the step when leaving",
        "Coffee tea and cold drinks", "Quiet zone for reading only",
        "Turn left for the museum garden", "Bicycles must be walked here",
        "Happy birthday to our little star", "Summer sale on all shoes",
        "Gentle stream trail to the lake", "Lost and found at reception",
        "Visitors please sign in here", "Do not feed the ducks",
    ),
    "latin": (
        "Grüße aus München", "Çok güzel bir gün", "Café crème à emporter", "Frühstück ab 7 Uhr",
        "Señales de tráfico", "Bitte nicht stören", "Ürünler indirimde", "Déjà vu à la gare",
        "Łódź Główna", "Tiếng Việt có dấu", "Smörgåsbord på söndag", "Ação de graças",
    ),
    "num": (
        "$12.99", "Total 48.50 EUR", "2026-11-21", "09:30 - 18:00", "Tel 0755 8866 1234",
        "Room 1207", "No. 36", "15 % off", "Platform 3", "1,280 km", "Flight CA 1834",
        "Gate B42", "Exp 08/27", "Km 113", "20.5 C", "Order 77031",
    ),
    "zh-hans": (
        "欢迎光临", "今天营业到晚上十点", "请勿吸烟", "小心地滑", "出口在左手边",
        "新鲜水果每天到货", "图书馆阅览室", "地铁站二号口", "停车场入口", "生日快乐",
        "本店支持手机支付", "禁止停车", "春节期间正常营业", "洗手间在二楼",
        "北京烤鸭", "公园南门",
    ),
    "zh-hant": (
        "歡迎光臨", "營業時間", "請勿吸煙", "小心地滑", "臺灣高鐵", "藥局",
        "圖書館閱覽室", "停車場入口", "新鮮水果", "樂透彩券", "郵政總局", "麵包店",
    ),
    "ja": (
        "いらっしゃいませ", "営業時間", "本日のおすすめ", "駅前商店街", "ラーメン",
        "コーヒー", "お会計はこちら", "足元にご注意ください", "東京行き", "温泉旅館",
        "営業中", "禁煙席",
    ),
    "ko": (
        "안녕하세요", "영업 시간", "출입 금지", "화장실", "지하철 역", "오늘의 메뉴",
        "주차장 입구", "감사합니다", "커피 한 잔", "서울 시청",
    ),
    "mixed": (
        "iPhone 16 售价 5999元", "2026年3月15日 Open", "WiFi 密码 88886666", "3号门 Gate 3",
        "营业时间 9:00-21:00", "T恤 原价 199 现价 99", "B2 停车场 Parking", "咖啡 Coffee 18元",
        "电话 010-6543 2100", "第5站 Station",
    ),
    "vertical": (
        "中华老字号", "福满人间", "天天向上", "平安喜乐", "茶馆", "书法展览", "山水画",
        "万事如意",
    ),
}


@dataclass(frozen=True)
class TruthLine:
    text: str
    group: str
    box: tuple[tuple[float, float], ...]  # 4 corners, clockwise from top-left, final image pixels
    vertical: bool = False


@dataclass(frozen=True)
class Sample:
    name: str
    jpeg: bytes
    width: int
    height: int
    lines: tuple[TruthLine, ...]
    background: str


@dataclass(frozen=True)
class SampleSpec:
    """One image to generate: background, size, text groups, seed."""

    name: str
    background: Path
    long_side: int
    aspect: float  # width / height of the output
    groups: tuple[str, ...]
    seed: int


def backgrounds(testdata: Path) -> list[Path]:
    """The real photos that decode here (JPEG, HEIC, AVIF, WebP, PNG)."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    found = []
    for folder in ("photos", "formats"):
        for path in sorted((testdata / folder).iterdir()):
            try:
                with Image.open(path) as image:
                    image.size  # noqa: B018 - opening is the check
                found.append(path)
            except Exception:  # e.g. JPEG XL without a plugin
                continue
    return found


def standard_specs(testdata: Path, seed: int = 14) -> list[SampleSpec]:
    """The benchmark's set: every group five times over, sizes from 1000 px to 12 MP phone
    photos (4032x3024), plus a few of 24 MP (6000x4000) and 48 MP (8000x6000)."""
    rng = random.Random(seed)
    photos = backgrounds(testdata)
    sizes = [(1000, 4 / 3), (1440, 3 / 2), (2000, 4 / 3), (2000, 3 / 4), (3000, 4 / 3),
             (4032, 4 / 3), (4032, 3 / 4)]
    specs = []
    index = 0
    for round_ in range(5):
        for group in GROUPS:
            long_side, aspect = sizes[(index + round_) % len(sizes)]
            others = rng.sample([g for g in GROUPS if g != group], 3)
            specs.append(SampleSpec(f"gt{index:03d}_{group}", photos[index % len(photos)],
                                    long_side, aspect, (group, group, *others),
                                    rng.randrange(1 << 30)))
            index += 1
    return specs + large_specs(testdata, seed)


def large_specs(testdata: Path, seed: int = 14, count: int = 4) -> list[SampleSpec]:
    """Large photos for the decode question: 12 MP (4032x3024), 24 MP and 48 MP."""
    rng = random.Random(seed + 1)
    photos = backgrounds(testdata)
    sizes = [(4032, 4 / 3), (6000, 3 / 2), (8000, 4 / 3), (4032, 3 / 4), (6000, 2 / 3),
             (4032, 4 / 3)]
    return [
        SampleSpec(f"large{k:02d}_{sizes[k % len(sizes)][0]}", photos[(3 * k + 1) % len(photos)],
                   *sizes[k % len(sizes)], tuple(rng.sample(GROUPS, 5)), rng.randrange(1 << 30))
        for k in range(count)
    ]


def font(group: str, size: int, bold: bool) -> ImageFont.FreeTypeFont:
    if group in ("en", "latin", "num"):
        return ImageFont.truetype(str(DEJAVU_BOLD if bold else DEJAVU), size)
    face = {"mixed": "zh-hans", "vertical": "zh-hans"}.get(group, group)
    path = NOTO_CJK_BOLD if bold else NOTO_CJK
    return ImageFont.truetype(str(path), size, index=CJK_INDEX[face])


def render(spec: SampleSpec) -> Sample:
    """The image and its truth for ``spec`` (same spec, same bytes)."""
    rng = random.Random(spec.seed)
    width, height = _size(spec.long_side, spec.aspect)
    image = _background(spec.background, width, height)
    taken: list[tuple[float, float, float, float]] = []
    lines = []
    for group in spec.groups:
        for _ in range(20):  # bounded: tries to find a free place for this line
            line = _place(image, group, rng, taken)
            if line is not None:
                lines.append(line)
                break
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.1) * width / 2000))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=rng.choice((70, 80, 88, 95)))
    return Sample(spec.name, out.getvalue(), width, height, tuple(lines), spec.background.name)


def generate(specs: Sequence[SampleSpec]) -> Iterator[Sample]:
    for spec in specs:
        yield render(spec)


def _size(long_side: int, aspect: float) -> tuple[int, int]:
    if aspect >= 1:
        return long_side, round(long_side / aspect)
    return round(long_side * aspect), long_side


def _background(path: Path, width: int, height: int) -> Image.Image:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    with Image.open(path) as opened:
        photo = ImageOps.exif_transpose(opened).convert("RGB")
    return ImageOps.fit(photo, (width, height), Image.Resampling.BICUBIC)


def _place(image: Image.Image, group: str, rng: random.Random,
           taken: list[tuple[float, float, float, float]]) -> TruthLine | None:
    """Draw one line of ``group`` somewhere free; None when it did not fit."""
    width, height = image.size
    text = rng.choice(PHRASES[group])
    vertical = group == "vertical"
    # small print to signs: 1% to 7% of the short side (14 px at least)
    size = max(14, round(min(width, height) * rng.uniform(0.01, 0.07)))
    face = font(group, size, bold=rng.random() < 0.4)
    tile = _text_tile(text, face, vertical, rng)
    angle = 0.0 if vertical else rng.uniform(-4, 4)
    rotated = tile.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    tw, th = rotated.size
    if tw >= width * 0.95 or th >= height * 0.95:
        return None
    x, y = rng.randrange(0, width - tw), rng.randrange(0, height - th)
    rect = (x, y, x + tw, y + th)
    if any(not (rect[2] < a or rect[0] > c or rect[3] < b or rect[1] > d) for a, b, c, d in taken):
        return None
    taken.append(rect)
    image.paste(rotated.convert("RGB"), (x, y), rotated.getchannel("A"))
    corners = _rotated_corners(tile.size, angle, (x, y), rotated.size)
    return TruthLine(text, group, corners, vertical)


def _text_tile(text: str, face: ImageFont.FreeTypeFont, vertical: bool,
               rng: random.Random) -> Image.Image:
    """RGBA tile of the text on a plate (signs) or bare with an outline (captions)."""
    size = face.size
    pad = round(size * 0.35)
    if vertical:
        step = round(size * 1.15)
        tw, th = size + 2 * pad, step * len(text) + 2 * pad
    else:
        left, top, right, bottom = face.getbbox(text)
        tw, th = right - left + 2 * pad, bottom - top + 2 * pad
    tile = Image.new("RGBA", (tw, th), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    dark = rng.random() < 0.5
    ink = (20, 20, 20, 255) if dark else (250, 250, 250, 255)
    plate = rng.random() < 0.6
    if plate:
        tone = (245, 240, 225, 230) if dark else (30, 60, 120, 230)
        draw.rounded_rectangle((0, 0, tw - 1, th - 1), radius=pad, fill=tone)
    stroke = 0 if plate else max(1, size // 12)
    outline = (250, 250, 250, 255) if dark else (10, 10, 10, 255)
    if vertical:
        for k, char in enumerate(text):
            draw.text((tw / 2, pad + k * step + step / 2), char, font=face, fill=ink, anchor="mm",
                      stroke_width=stroke, stroke_fill=outline)
    else:
        left, top, _, _ = face.getbbox(text)
        draw.text((pad - left, pad - top), text, font=face, fill=ink, stroke_width=stroke,
                  stroke_fill=outline)
    return tile


def _rotated_corners(size: tuple[int, int], angle: float, offset: tuple[int, int],
                     rotated: tuple[int, int]) -> tuple[tuple[float, float], ...]:
    """Corners of a ``size`` tile after Pillow's counter-clockwise ``rotate(angle, expand)``."""
    w, h = size
    cx, cy = w / 2, h / 2
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)
    out = []
    for px, py in ((0, 0), (w, 0), (w, h), (0, h)):
        dx, dy = px - cx, py - cy
        rx, ry = dx * cos + dy * sin, -dx * sin + dy * cos  # y grows downwards
        out.append((offset[0] + rotated[0] / 2 + rx, offset[1] + rotated[1] / 2 + ry))
    return tuple(out)

