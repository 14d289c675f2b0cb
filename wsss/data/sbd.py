"""SBD (the Semantic Boundaries Dataset) into a VOC 2012 root: `SegmentationClassAug/` and
`ImageSets/Segmentation/train_aug.txt`, the 10,582 training images of every VOC WSSS paper
(docs/datasets.md). SBD's `dataset/` holds `cls/<id>.mat` (MATLAB v5, a struct `GTcls` whose
`Segmentation` is the class map: 0 background, 1-20 the VOC classes) and `train.txt`, `val.txt`.
"""

import shutil
from pathlib import Path

import numpy as np
from scipy.io import loadmat  # the standard reader of MATLAB v5 files

from wsss.artifacts.manifest import write_text_atomic
from wsss.data.classes import VOC_CLASSES
from wsss.data.index import read_split_list
from wsss.data.io import image_size, read_mask, replaced_whole, write_mask
from wsss.errors import WsssError

AUG_MASKS = "SegmentationClassAug"
AUG_SPLIT = "train_aug"


def read_sbd_mask(path: Path) -> np.ndarray:
    """The class map of one of SBD's `cls/<id>.mat` files."""
    if not path.is_file():
        raise WsssError(f"{path}: SBD mask file not found")
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # loadmat raises a dozen types on damaged bytes
        raise WsssError(f"{path}: unreadable MATLAB file ({type(exc).__name__}: {exc})") from None
    seg = getattr(mat.get("GTcls"), "Segmentation", None)
    if not isinstance(seg, np.ndarray) or seg.ndim != 2 or seg.dtype.kind not in "iu":
        raise WsssError(f"{path}: no GTcls.Segmentation class map (is it a file of SBD's cls/?)")
    if seg.size and (seg.min() < 0 or seg.max() > len(VOC_CLASSES)):
        raise WsssError(f"{path}: class ids {seg.min()}..{seg.max()}, expected 0..20")
    return seg.astype(np.uint8)


def voc_aug(sbd: Path, root: Path) -> int:
    """Write ROOT's SegmentationClassAug (VOC's own mask where VOC 2012 has one, SBD's elsewhere)
    and train_aug.txt (VOC train, SBD train and SBD val, less VOC val); returns its length.
    Each appears whole or not at all: a damaged or missing file stops it with both as they were."""
    if not (sbd / "cls").is_dir():
        raise WsssError(f"{sbd}: no cls/ directory (SBD's benchmark_RELEASE/dataset has it)")
    lists = root / "ImageSets" / "Segmentation"

    def has_image(image_id: str) -> bool:
        return (root / "JPEGImages" / f"{image_id}.jpg").is_file()

    voc = {s: read_split_list(lists / f"{s}.txt", has_image) for s in ("train", "val")}
    sbd_ids = {i for s in ("train", "val") for i in read_split_list(sbd / f"{s}.txt", has_image)}
    train_aug = sorted((set(voc["train"]) | sbd_ids) - set(voc["val"]))
    own = set(voc["train"]) | set(voc["val"])
    with replaced_whole(root / AUG_MASKS) as masks:
        for image_id in sorted(own):
            source = root / "SegmentationClass" / f"{image_id}.png"
            _check_size(read_mask(source).shape, root, image_id, source)
            shutil.copyfile(source, masks / source.name)
        for image_id in sorted(sbd_ids - own):
            source = sbd / "cls" / f"{image_id}.mat"
            mask = read_sbd_mask(source)
            _check_size(mask.shape, root, image_id, source)
            write_mask(masks / f"{image_id}.png", mask)
    write_text_atomic(lists / f"{AUG_SPLIT}.txt", "".join(f"{i}\n" for i in train_aug))
    return len(train_aug)


def _check_size(shape: tuple[int, ...], root: Path, image_id: str, source: Path) -> None:
    width, height = image_size(root / "JPEGImages" / f"{image_id}.jpg")
    if shape != (height, width):
        raise WsssError(
            f"{source}: a {shape[1]} x {shape[0]} mask for a {width} x {height} image "
            f"(JPEGImages/{image_id}.jpg)"
        )
