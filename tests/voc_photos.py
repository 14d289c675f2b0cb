"""A real-VOC fixture: labelme's three PASCAL VOC 2011 photographs laid out as a VOC 2012 root.

`make install` downloads labelme's sdist (pinned with its hash in tests/voc_photos.lock) into
.venv/downloads/; nothing is downloaded at test time. Its examples/ hold the photos with
SegmentationClass masks (instance_segmentation/) and, for the same photos, annotation XML
(bbox_detection/, whose boxes name only some objects: the masks hold classes the XML lacks)."""

import re
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "tests" / "voc_photos.lock"
DOWNLOADS = REPO / ".venv" / "downloads"
EXAMPLES = "examples/{}/data_dataset_voc"
# source folder in the sdist -> folder of the VOC root
FOLDERS = {
    EXAMPLES.format("instance_segmentation") + "/JPEGImages": "JPEGImages",
    EXAMPLES.format("instance_segmentation") + "/SegmentationClass": "SegmentationClass",
    EXAMPLES.format("bbox_detection") + "/Annotations": "Annotations",
}
SPLITS = {
    "train_aug": ["2011_000003", "2011_000006", "2011_000025"],
    "train": ["2011_000003", "2011_000006"],
    "val": ["2011_000025"],
}


def sdist() -> Path:
    name, version = re.search(r"^(\w+)==(\S+)", LOCK.read_text(), flags=re.M).groups()
    path = DOWNLOADS / f"{name}-{version}.tar.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; `make install` downloads it ({LOCK.name})")
    return path


def write_voc_root(root: Path) -> Path:
    """ROOT as a VOC root holding the three photos, their masks, their XML and SPLITS."""
    with tarfile.open(sdist()) as archive:
        for member in archive.getmembers():
            folder, _, name = member.name.partition("/")[2].rpartition("/")
            if folder in FOLDERS and member.isfile():
                target = root / FOLDERS[folder] / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    for split, ids in SPLITS.items():
        (lists / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root
