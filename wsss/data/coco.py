"""COCO 2014 in the layout WSSS work uses, and the converter from the official instances JSON.

Layout under ROOT: <subset>/<id>.jpg (subset = train2014 | val2014, read from the id
"COCO_<subset>_NNNNNNNNNNNN"), SegmentationClass/<subset>/<id>.png (0 = background, 1..80 = the
80 classes in category-id order, 255 = ignore) and ImageSets/<split>.txt. Image-level labels are
the classes present in each mask.
"""

import re
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pycocotools import mask as mask_utils  # the standard RLE/polygon decoder
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from wsss.artifacts.manifest import write_text_atomic
from wsss.data.classes import COCO_CLASSES, IGNORE
from wsss.data.index import DatasetIndex, Sample, read_split_list
from wsss.data.io import read_mask, replaced_whole, write_mask
from wsss.errors import WsssError
from wsss.safe_paths import file_name

_ID = re.compile(r"COCO_([a-z]+\d{4})_\d+")


def is_coco_root(root: Path) -> bool:
    return (root / "SegmentationClass").is_dir() and any((root / "ImageSets").glob("*.txt"))


def _subset(image_id: str) -> str | None:
    match = _ID.fullmatch(image_id)
    return match.group(1) if match else None


def read_coco(root: Path, splits: list[str]) -> DatasetIndex:
    """Index the named splits of a COCO root; labels come from decoding each listed mask."""
    index = DatasetIndex("coco", root, COCO_CLASSES, {})

    def exists(image_id: str) -> bool:
        subset = _subset(image_id)
        return subset is not None and (root / subset / f"{image_id}.jpg").is_file()

    for split in splits:
        ids = read_split_list(root / "ImageSets" / f"{split}.txt", exists)
        index.splits[split] = ids
        index.sources.append(f"ImageSets/{split}.txt")
        for image_id in ids:
            if image_id in index.samples:
                continue
            subset = _subset(image_id)
            mask = f"SegmentationClass/{subset}/{image_id}.png"
            values = np.unique(read_mask(root / mask))
            labels = tuple(int(v) - 1 for v in values if 0 < v <= len(COCO_CLASSES))
            if not labels:
                raise WsssError(f"{root / mask}: no foreground class; every image needs a label")
            index.samples[image_id] = Sample(image_id, f"{subset}/{image_id}.jpg", mask, labels)
    return index


# A COCO image is at most 640 px a side; the pixel limit of every reader is 4096 x 4096.
Side = Annotated[int, Field(ge=1, le=4096)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)


class Image(_Strict):
    id: int
    file_name: str
    height: Side
    width: Side

    @field_validator("file_name")
    @classmethod
    def _coco_name(cls, name: str) -> str:
        file_name(name, "file_name")  # one safe segment: it names the mask file
        if not name.endswith(".jpg") or _subset(name.removesuffix(".jpg")) is None:
            raise ValueError(f"'{name}' is not COCO_<subset>_N.jpg")
        return name


class Rle(_Strict):
    size: tuple[Side, Side]
    counts: list[Annotated[int, Field(ge=0)]] | str

    @model_validator(mode="after")
    def _covers_the_image(self) -> "Rle":
        if isinstance(self.counts, list) and sum(self.counts) != self.size[0] * self.size[1]:
            raise ValueError(f"RLE counts sum to {sum(self.counts)}, not height x width")
        return self


def _polygon(points: list[float]) -> list[float]:
    if len(points) < 6 or len(points) % 2:
        raise ValueError(f"a polygon of {len(points)} numbers; expected x,y pairs, 3 or more")
    return points


Polygon = Annotated[list[float], AfterValidator(_polygon)]


class Annotation(_Strict):
    image_id: int
    category_id: int
    segmentation: Annotated[
        Annotated[Annotated[list[Polygon], Field(min_length=1)], Tag("polygons")]
        | Annotated[Rle, Tag("rle")],
        Discriminator(lambda v: "polygons" if isinstance(v, list) else "rle"),
    ]
    area: Annotated[float, Field(ge=0)]
    iscrowd: Literal[0, 1] = 0


class Category(_Strict):
    id: int


class Instances(_Strict):
    images: list[Image]
    annotations: list[Annotation]
    categories: list[Category]


def read_instances(path: Path) -> Instances:
    """An official instances JSON, validated whole before anything is drawn: types (no string
    for a number), sizes, polygons, RLEs, and every id an annotation names; else one line."""
    try:
        data = Instances.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise WsssError(f"{path}: file not found") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise WsssError(f"{path}: not a COCO instances JSON ({loc}: {msg})"[:300]) from None
    if len(data.categories) != len(COCO_CLASSES) or len({c.id for c in data.categories}) != len(
        COCO_CLASSES
    ):
        raise WsssError(f"{path}: expected 80 categories, found {len(data.categories)}")
    images = {im.id: im for im in data.images}
    if len(images) != len(data.images):
        raise WsssError(f"{path}: an image id is listed twice")
    if len({_subset(im.file_name.removesuffix(".jpg")) for im in data.images}) > 1:
        raise WsssError(f"{path}: images of several subsets; an instances file holds one")
    categories = {c.id for c in data.categories}
    for i, ann in enumerate(data.annotations):
        if ann.image_id not in images or ann.category_id not in categories:
            what = "image" if ann.image_id not in images else "category"
            raise WsssError(f"{path}: annotations.{i}: an unknown {what} id")
        size = (images[ann.image_id].height, images[ann.image_id].width)
        if isinstance(ann.segmentation, Rle) and ann.segmentation.size != size:
            raise WsssError(f"{path}: annotations.{i}: RLE size {ann.segmentation.size} != {size}")
    return data


def instances_to_masks(instances: Path, root: Path, split: str | None = None) -> tuple[str, int]:
    """Render an official instances_<subset>.json into per-image semantic PNGs under ROOT.

    Larger objects are drawn first so that small ones stay visible; crowd regions become 255.
    Images without any non-crowd object are left out of the split list (they have no label).
    Returns (split name, number of images listed).
    """
    data = read_instances(instances)
    categories = sorted(c.id for c in data.categories)
    images = {im.id: im for im in data.images}
    class_of = {cat: i + 1 for i, cat in enumerate(categories)}

    by_image: dict[int, list[Annotation]] = {i: [] for i in images}
    for ann in data.annotations:
        by_image[ann.image_id].append(ann)
    subset = _subset(data.images[0].file_name.removesuffix(".jpg")) if data.images else "train2014"
    with replaced_whole(root / "SegmentationClass" / str(subset)) as masks:
        listed = _draw_masks(by_image, images, class_of, masks)
    split = split or re.sub(r"\d+$", "", str(subset))
    lists = root / "ImageSets"
    lists.mkdir(parents=True, exist_ok=True)
    write_text_atomic(lists / f"{split}.txt", "".join(f"{n}\n" for n in listed))
    return split, len(listed)


def _draw_masks(
    by_image: dict[int, list[Annotation]],
    images: dict[int, Image],
    class_of: dict[int, int],
    out: Path,
) -> list[str]:
    """Each image's semantic PNG in OUT (larger objects first, crowds 255); the ids listed."""
    listed: list[str] = []
    for image_id, anns in sorted(by_image.items()):
        info = images[image_id]
        name = info.file_name.removesuffix(".jpg")
        label = np.zeros((info.height, info.width), dtype=np.uint8)
        for ann in sorted(anns, key=lambda a: -a.area):
            segm = ann.segmentation
            if isinstance(segm, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(segm, info.height, info.width))
            elif isinstance(segm.counts, list):
                rle = mask_utils.frPyObjects(segm.model_dump(), info.height, info.width)
            else:
                rle = segm.model_dump() | {"counts": segm.counts.encode()}
            region = mask_utils.decode(rle).astype(bool)
            label[region] = IGNORE if ann.iscrowd else class_of[ann.category_id]
        write_mask(out / f"{name}.png", label)
        if any(not a.iscrowd for a in anns):
            listed.append(name)
    return listed
