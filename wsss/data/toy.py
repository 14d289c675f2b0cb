"""ToyVOC: a small, deterministic dataset in the exact VOC 2012 layout (docs/design.md §6).

It is built to make the weakly supervised problem real. Every class is an object made of
- a large *body* whose texture is shared by a family of four classes (classes 4f..4f+3 share
  body family f) and tinted by its class: a small shift of the family's colours, one of four
  directions per class, so the body narrows the class to four and weakly names it (as fur is
  weak evidence of a cat), and
- a *part* (about a sixth of the object, at its rim, like a head) whose shape and saturated hue
  belong to that class alone.
A classifier trained on image-level tags finds the part the decisive cue and the tint a weak one:
a plain CAM fires on the part and under-activates the body, the failure KTSE targets, while a
segmenter trained on dense labels can still learn every body pixel's class from its tint.
That needs parts large enough to be learnt before the tint: v2's (`parts="small"`, a tenth of
the object in one of five colours that the shape told apart) were not, and the plain CAM peaked
on them no more often than chance (measured: benchmarks/RESULTS.md).
Images hold 1-3 classes, sometimes two instances of one class, objects occlude each other, the
background is textured, and class-less distractor shapes sit behind or in front of objects.
The same seed gives byte-identical files (numpy's PCG64, OpenCV drawing, Pillow's codecs).
"""

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from wsss.data.classes import IGNORE, VOC_CLASSES
from wsss.data.io import write_mask
from wsss.errors import WsssError

MARKER = "toyvoc.json"
_YEAR = 2100  # ids: train_aug images are 2100_<n>, val images 2101_<n> (the split's rng code)
FAMILY_SIZE = 4
FAMILIES = len(VOC_CLASSES) // FAMILY_SIZE

# Body families: a pattern and two mid-saturation colours, distinct from the parts' colours.
_PATTERNS = ("hstripes", "checker", "dots", "rings", "waves")
_BODY_COLOURS = (
    ((70, 110, 170), (150, 180, 215)),
    ((160, 150, 60), (215, 205, 130)),
    ((60, 130, 140), (140, 200, 200)),
    ((170, 90, 100), (220, 160, 165)),
    ((110, 80, 170), (175, 160, 225)),
)
# The class tint (ToyConfig.tint RGB levels) points along one of four directions of the chroma
# plane (orthogonal to grey), a quarter turn apart.
_CHROMA_AXES = np.array([[1, -1, 0], [1, 1, -2]]) / np.array([[2**0.5], [6**0.5]])
# Small parts: 4 shapes x 5 saturated colours = 20 unique (shape, colour) pairs, one per class.
# Large parts: a saturated hue per class, 18 degrees apart, and a shape that differs in a family.
_PART_SHAPES = ("disc", "square", "triangle", "diamond")
_PART_COLOURS = ((235, 20, 20), (20, 225, 40), (30, 60, 240), (250, 230, 10), (240, 20, 230))
_PART_HUES = cv2.cvtColor(
    np.uint8([[[round(180 * c / len(VOC_CLASSES)), 255, 245] for c in range(len(VOC_CLASSES))]]),
    cv2.COLOR_HSV2RGB,
)[0]
# The part's radius, a uniform fraction of the body's minor radius.
_PART_RADIUS = {"small": (0.30, 0.40), "large": (0.45, 0.55)}


@dataclass(frozen=True)
class ToyConfig:
    seed: int = 0
    train: int = 400
    val: int = 100
    size: int = 96
    # RGB levels a class shifts its family's body colours by. At 32 neighbours in a family differ
    # by 45 levels (families by ~100, parts by 55 or more); with tint 0 and small parts this is
    # ToyVOC v1 byte for byte (the bodies of a family's four classes identical), with small parts
    # ToyVOC v2.
    tint: int = 32
    parts: str = "large"  # large (v3) | small (v1, v2): _PART_RADIUS


def body_family(class_id: int) -> int:
    """Classes 4f..4f+3 share body family f (their part colours all differ)."""
    return class_id // FAMILY_SIZE


def part_look(class_id: int, parts: str) -> tuple[str, np.ndarray]:
    """The shape and RGB colour of a class's part."""
    if parts == "small":
        colour = _PART_COLOURS[class_id % len(_PART_COLOURS)]
        return _PART_SHAPES[class_id // len(_PART_COLOURS)], np.array(colour, np.float32)
    return _PART_SHAPES[class_id % len(_PART_SHAPES)], _PART_HUES[class_id].astype(np.float32)


def body_colours(class_id: int, tint_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """The two colours of a class's body: its family's pair shifted by the class tint."""
    turn = np.pi / 2 * (class_id % FAMILY_SIZE)
    tint = tint_levels * (np.cos(turn) * _CHROMA_AXES[0] + np.sin(turn) * _CHROMA_AXES[1])
    tint = tint.astype(np.float32)  # float32 throughout: tint 0 gives v1's bytes
    a, b = (np.array(c, np.float32) + tint for c in _BODY_COLOURS[body_family(class_id)])
    return a, b


def _texture(
    class_id: int, config: ToyConfig, centre: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """The (size, size, 3) float texture of a class's body: its family's pattern with a random
    phase, in the class's tinted colours."""
    family, size = body_family(class_id), config.size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = max(4.0, size / 14)
    phase = rng.uniform(0, period)
    kind = _PATTERNS[family]
    if kind == "hstripes":
        t = np.sin(2 * np.pi * (yy + phase) / period)
    elif kind == "checker":
        t = np.sign(np.sin(np.pi * (xx + phase) / period) * np.sin(np.pi * (yy + phase) / period))
    elif kind == "dots":
        t = np.cos(2 * np.pi * (xx + phase) / period) * np.cos(2 * np.pi * (yy + phase) / period)
        t = (t > 0.5).astype(np.float32) * 2 - 1
    elif kind == "rings":
        r = np.hypot(yy - centre[0], xx - centre[1])
        t = np.sin(2 * np.pi * (r + phase) / period)
    else:  # waves
        t = np.sin(
            2 * np.pi * (yy + 0.25 * period * np.sin(2 * np.pi * xx / (2 * period))) / period
        )
    w = ((t + 1) / 2)[..., None]
    a, b = body_colours(class_id, config.tint)
    return a * (1 - w) + b * w


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """Low-saturation, low-frequency noise with faint random stripes: texture, not objects."""
    base = rng.uniform(90, 170, 3).astype(np.float32) * np.array([1.0, 0.97, 0.9], np.float32)
    coarse = rng.normal(0, 1, (6, 6, 3)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) * 14
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    stripes = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) / rng.uniform(2.0, 5.0))
    grey = field.mean(axis=2, keepdims=True)
    return base + 0.6 * field + 0.4 * grey + 8 * stripes[..., None]


def _part_mask(shape: str, size: int, centre: tuple[float, float], radius: float, angle: float):
    mask = np.zeros((size, size), np.uint8)
    cy, cx = centre
    if shape == "disc":
        cv2.circle(mask, (round(cx), round(cy)), max(1, round(radius)), 1, -1)
        return mask
    corners = {"square": 4, "triangle": 3, "diamond": 4}[shape]
    offset = angle + (np.pi / 4 if shape == "square" else 0.0)
    scale = radius * (1.25 if shape == "triangle" else 1.1)
    pts = [
        (
            cx + scale * np.cos(offset + 2 * np.pi * k / corners),
            cy + scale * np.sin(offset + 2 * np.pi * k / corners),
        )
        for k in range(corners)
    ]
    if shape == "diamond":  # a rhombus: stretch one axis
        pts = [(cx + (x - cx) * 0.6, y) for x, y in pts]
    cv2.fillPoly(mask, [np.round(np.array(pts)).astype(np.int32)], 1)
    return mask


@dataclass
class _Object:
    class_id: int
    body: np.ndarray  # (S, S) uint8 masks
    part: np.ndarray
    colour: np.ndarray  # the part's RGB
    texture: np.ndarray  # (S, S, 3) float


def _make_object(class_id: int, config: ToyConfig, rng: np.random.Generator) -> _Object:
    size = config.size
    major = rng.uniform(0.16, 0.30) * size
    minor = major * rng.uniform(0.55, 0.9)
    cy, cx = rng.uniform(0.15 * size, 0.85 * size, 2)
    rot = rng.uniform(0, 180)
    body = np.zeros((size, size), np.uint8)
    cv2.ellipse(body, (round(cx), round(cy)), (round(major), round(minor)), rot, 0, 360, 1, -1)
    # The part sits at the body's rim, on its minor or major axis; large ones can stick out.
    theta = np.deg2rad(rot) + rng.choice([0.0, np.pi / 2, np.pi, 3 * np.pi / 2])
    reach = 0.55 * (major if rng.random() < 0.5 else minor)
    centre = (cy + reach * np.sin(theta), cx + reach * np.cos(theta))
    radius = rng.uniform(*_PART_RADIUS[config.parts]) * minor
    shape, colour = part_look(class_id, config.parts)
    part = _part_mask(shape, size, centre, radius, rng.uniform(0, np.pi))
    texture = _texture(class_id, config, (cy, cx), rng)
    return _Object(class_id, body, part, colour, texture)


def _distractor(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A class-less irregular polygon with a flat, random, moderately saturated colour."""
    n = int(rng.integers(3, 8))
    cy, cx = rng.uniform(0, size, 2)
    r = rng.uniform(0.05, 0.18) * size
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = r * rng.uniform(0.5, 1.0, n)
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(40, 140), rng.integers(60, 220)]]])
    colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
    return mask, colour


def _compose(config: ToyConfig, rng: np.random.Generator):
    """One image: (rgb uint8, label map with 255 band, [(class_id, visible mask)], part map:
    True where a visible pixel belongs to an object's part)."""
    size = config.size
    while True:
        n_classes = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
        classes = rng.choice(len(VOC_CLASSES), n_classes, replace=False)
        wanted = [int(c) for c in classes for _ in range(1 if rng.random() < 0.8 else 2)]
        wanted = [wanted[i] for i in rng.permutation(len(wanted))]
        image = _background(size, rng)
        label = np.zeros((size, size), np.uint8)
        owner = np.full((size, size), -1, np.int32)  # which object a pixel shows
        part = np.zeros((size, size), bool)
        distractors = [_distractor(size, rng) for _ in range(int(rng.integers(0, 4)))]
        in_front = [rng.random() < 0.3 for _ in distractors]
        for (mask, colour), front in zip(distractors, in_front, strict=True):
            if not front:
                image[mask > 0] = colour
        objects = [_make_object(c, config, rng) for c in wanted]
        for k, obj in enumerate(objects):
            region = (obj.body | obj.part) > 0
            image[obj.body > 0] = obj.texture[obj.body > 0]
            image[obj.part > 0] = obj.colour
            label[region] = obj.class_id + 1
            owner[region] = k
            part[region] = obj.part[region] > 0
        for (mask, colour), front in zip(distractors, in_front, strict=True):
            if front:
                image[mask > 0] = colour
                label[mask > 0] = 0
                owner[mask > 0] = -1
                part[mask > 0] = False
        visible = [
            (obj.class_id, owner == k)
            for k, obj in enumerate(objects)
            if (owner == k).sum() >= 0.4 * ((obj.body | obj.part) > 0).sum()
        ]
        if {c for c, _ in visible} == set(wanted):  # every tagged class clearly visible
            break
    image += rng.normal(0, 5, image.shape).astype(np.float32)
    rgb = np.clip(np.round(image), 0, 255).astype(np.uint8)
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0.6)
    kernel = np.ones((3, 3), np.uint8)
    band = cv2.dilate(label, kernel) != cv2.erode(label, kernel)
    label[band] = IGNORE
    return rgb, label, visible, part


def _xml(image_id: str, size: int, objects: list[tuple[int, np.ndarray]]) -> str:
    lines = [
        "<annotation>",
        "\t<folder>VOC2012</folder>",
        f"\t<filename>{image_id}.jpg</filename>",
        "\t<source><database>ToyVOC</database></source>",
        f"\t<size><width>{size}</width><height>{size}</height><depth>3</depth></size>",
        "\t<segmented>1</segmented>",
    ]
    for class_id, visible in objects:
        ys, xs = np.nonzero(visible)
        lines += [
            "\t<object>",
            f"\t\t<name>{VOC_CLASSES[class_id]}</name>",
            "\t\t<pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>",
            f"\t\t<bndbox><xmin>{xs.min() + 1}</xmin><ymin>{ys.min() + 1}</ymin>"
            f"<xmax>{xs.max() + 1}</xmax><ymax>{ys.max() + 1}</ymax></bndbox>",
            "\t</object>",
        ]
    return "\n".join([*lines, "</annotation>", ""])


def image_ids(config: ToyConfig) -> dict[str, list[str]]:
    """VOC-shaped ids; like VOC, `train` is a subset of `train_aug` and `val` is disjoint."""
    train_aug = [f"{_YEAR}_{i:06d}" for i in range(config.train)]
    return {
        "train_aug": train_aug,
        "train": train_aug[: max(1, config.train // 4)],
        "val": [f"{_YEAR + 1}_{i:06d}" for i in range(config.val)],
    }


def _rng(config: ToyConfig, split_code: int, i: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([config.seed, split_code, i]))


def part_map(config: ToyConfig, image_id: str) -> np.ndarray:
    """Where IMAGE_ID shows an object's part (bool, H x W), recomputed from the seed: the VOC
    layout has no place for it, and benchmarks measure how much of a CAM falls on parts."""
    prefix, number = image_id.split("_")
    _, _, _, part = _compose(config, _rng(config, int(prefix) - _YEAR, int(number)))
    return part


def generate(out: Path, config: ToyConfig) -> None:
    """Write ToyVOC to OUT, atomically: a crash leaves no half-written dataset at OUT."""
    if config.train < 1 or config.val < 1 or config.size < 32 or not 0 <= config.tint <= 60:
        raise WsssError("toy: need --train >= 1, --val >= 1, --size >= 32 and --tint 0..60")
    if config.parts not in _PART_RADIUS:
        raise WsssError(f"toy: --parts must be one of {', '.join(_PART_RADIUS)}")
    if out.exists() and not (out / MARKER).is_file():
        raise WsssError(f"{out}: exists and is not a ToyVOC directory; refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for sub in ("JPEGImages", "SegmentationClassAug", "Annotations", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        splits = image_ids(config)
        for split_code, ids in enumerate((splits["train_aug"], splits["val"])):
            for i, image_id in enumerate(ids):
                rgb, label, objects, _ = _compose(config, _rng(config, split_code, i))
                Image.fromarray(rgb).save(tmp / "JPEGImages" / f"{image_id}.jpg", quality=92)
                write_mask(tmp / "SegmentationClassAug" / f"{image_id}.png", label)
                (tmp / "Annotations" / f"{image_id}.xml").write_text(
                    _xml(image_id, config.size, objects)
                )
        for name, ids in splits.items():
            (tmp / "ImageSets" / "Segmentation" / f"{name}.txt").write_text(
                "".join(f"{i}\n" for i in ids)
            )
        (tmp / MARKER).write_text(json.dumps(asdict(config), indent=1, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.chmod(0o755)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
