"""COCO 2014 in the layout WSSS work uses, and the converter from the official instances JSON.

Layout under ROOT: <subset>/<id>.jpg (subset = train2014 | val2014, read from the id
"COCO_<subset>_NNNNNNNNNNNN"), SegmentationClass/<subset>/<id>.png (0 = background, 1..80 = the
80 classes in category-id order, 255 = ignore) and ImageSets/<split>.txt. Image-level labels are
the classes present in each mask.
"""

import json
import re
from pathlib import Path

import numpy as np

from wsss.data.classes import COCO_CLASSES, IGNORE
from wsss.data.index import DatasetIndex, Sample, read_split_list
from wsss.data.io import read_mask, write_mask
from wsss.errors import WsssError

_ID = re.compile(r"^COCO_([a-z]+\d{4})_\d+$")


def is_coco_root(root: Path) -> bool:
    return (root / "SegmentationClass").is_dir() and any((root / "ImageSets").glob("*.txt"))


def _subset(image_id: str) -> str | None:
    match = _ID.match(image_id)
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


def instances_to_masks(instances: Path, root: Path, split: str | None = None) -> tuple[str, int]:
    """Render an official instances_<subset>.json into per-image semantic PNGs under ROOT.

    Larger objects are drawn first so that small ones stay visible; crowd regions become 255.
    Images without any non-crowd object are left out of the split list (they have no label).
    Returns (split name, number of images listed).
    """
    from pycocotools import mask as mask_utils  # the standard RLE/polygon decoder

    try:
        data = json.loads(instances.read_text())
        categories = sorted(c["id"] for c in data["categories"])
        images = {im["id"]: im for im in data["images"]}
        annotations = data["annotations"]
    except FileNotFoundError:
        raise WsssError(f"{instances}: file not found") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise WsssError(f"{instances}: not a COCO instances JSON ({exc!r})") from None
    if len(categories) != len(COCO_CLASSES):
        raise WsssError(f"{instances}: expected 80 categories, found {len(categories)}")
    class_of = {cat: i + 1 for i, cat in enumerate(categories)}

    by_image: dict[int, list[dict]] = {i: [] for i in images}
    for ann in annotations:
        by_image.setdefault(ann["image_id"], []).append(ann)
    listed: list[str] = []
    subset = None
    for image_id, anns in sorted(by_image.items()):
        info = images[image_id]
        name = Path(info["file_name"]).stem
        subset = _subset(name)
        if subset is None:
            raise WsssError(f"{instances}: file_name '{info['file_name']}' is not COCO_<subset>_N")
        height, width = info["height"], info["width"]
        label = np.zeros((height, width), dtype=np.uint8)
        for ann in sorted(anns, key=lambda a: -a["area"]):
            segm = ann["segmentation"]
            if isinstance(segm, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
            elif isinstance(segm["counts"], list):
                rle = mask_utils.frPyObjects(segm, height, width)
            else:
                rle = segm
            region = mask_utils.decode(rle).astype(bool)
            label[region] = IGNORE if ann.get("iscrowd", 0) else class_of[ann["category_id"]]
        out = root / "SegmentationClass" / subset / f"{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_mask(out, label)
        if any(not a.get("iscrowd", 0) for a in anns):
            listed.append(name)
    split = split or (re.sub(r"\d+$", "", subset) if subset else "train")
    lists = root / "ImageSets"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / f"{split}.txt").write_text("".join(f"{n}\n" for n in listed))
    return split, len(listed)
