"""PASCAL VOC 2012 (+ SBD SegmentationClassAug) reader (docs/design.md §2, docs/method.md §1).

Layout under ROOT: JPEGImages/X.jpg, Annotations/X.xml, SegmentationClassAug/X.png or
SegmentationClass/X.png, ImageSets/Segmentation/<split>.txt. Image-level labels come from the
Annotations XML, every object counted (difficult and truncated ones too), as the KTSE code does.
"""

import xml.etree.ElementTree as ET
from pathlib import Path

from wsss.data.classes import VOC_CLASSES
from wsss.data.index import DatasetIndex, Sample, read_split_list
from wsss.errors import WsssError

MASK_DIRS = ("SegmentationClassAug", "SegmentationClass")


def is_voc_root(root: Path) -> bool:
    return (root / "ImageSets" / "Segmentation").is_dir() and (root / "JPEGImages").is_dir()


def read_xml_labels(path: Path) -> tuple[int, ...]:
    """Sorted class ids of every <object><name> in a VOC annotation file."""
    if not path.is_file():
        raise WsssError(f"{path}: annotation file not found")
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        raise WsssError(f"{path}: malformed annotation XML ({exc})") from None
    ids = set()
    for obj in tree.getroot().iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise WsssError(
                f"{path}: unknown class name '{name}' (expected one of the 20 VOC classes)"
            )
        ids.add(VOC_CLASSES.index(name))
    if not ids:
        raise WsssError(f"{path}: no <object>; every image needs at least one class label")
    return tuple(sorted(ids))


def read_voc(root: Path, splits: list[str], mask_dir: str = "auto") -> DatasetIndex:
    """Index the named splits of a VOC root; every listed image must have an image and an XML."""
    if mask_dir == "auto":
        mask_dir = next((d for d in MASK_DIRS if (root / d).is_dir()), MASK_DIRS[0])
    lists = root / "ImageSets" / "Segmentation"
    index = DatasetIndex("voc", root, VOC_CLASSES, {})
    for split in splits:
        ids = read_split_list(
            lists / f"{split}.txt", lambda i: (root / "JPEGImages" / f"{i}.jpg").is_file()
        )
        index.splits[split] = ids
        index.sources.append(f"ImageSets/Segmentation/{split}.txt")
        for image_id in ids:
            if image_id in index.samples:
                continue
            index.sources.append(f"Annotations/{image_id}.xml")
            mask = f"{mask_dir}/{image_id}.png"
            index.samples[image_id] = Sample(
                id=image_id,
                image=f"JPEGImages/{image_id}.jpg",
                mask=mask if (root / mask).is_file() else None,
                labels=read_xml_labels(root / "Annotations" / f"{image_id}.xml"),
            )
    return index
