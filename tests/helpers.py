"""Helpers for tests that hand-make artifacts (no fixtures here: plain functions)."""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from scipy.io import savemat

from wsss.artifacts.manifest import InputRef, Manifest, hash_tree, write_manifest
from wsss.artifacts.opening import open_artifact
from wsss.artifacts.uri import relative_uri
from wsss.config.params import digest
from wsss.data.io import read_mask
from wsss.kinds.cams import strided_size


def seal(out: Path, kind: str, stage: str, inputs: dict[str, Path]) -> None:
    """Write OUT's manifest as a stage would: OUT becomes a complete artifact of KIND."""
    refs = {}
    for name, path in inputs.items():
        upstream = open_artifact(path)
        refs[name] = InputRef(
            uri=relative_uri(out, str(path)),
            kind=upstream.manifest.kind,
            manifest_digest=upstream.manifest_digest,
        )
    write_manifest(
        out,
        Manifest(
            kind=kind,
            stage=stage,
            wsss_version="0",
            code_digest="test",
            params={"x": 1},
            params_digest=digest({"x": 1}),
            inputs=refs,
            files=hash_tree(out),
            metrics={"loss": 0.5},
            device="cpu",
        ),
    )


def write_cams(path: Path, keys: np.ndarray, cam: np.ndarray) -> None:
    """One image's `cams` file in which every recipe is CAM (K, H, W): the seed CAM and IRN's
    high-res CAM as they are, IRN's stride-4 CAM resampled to its grid."""
    grid = strided_size(cam.shape[-2:], 4)
    small = F.interpolate(
        torch.from_numpy(cam.astype(np.float32))[None], grid, mode="bilinear", align_corners=False
    )
    np.savez_compressed(
        path,
        cam=cam.astype(np.float16),
        irn_high_res=cam.astype(np.float16),
        irn_stride4=small[0].numpy().astype(np.float16),
        keys=keys,
    )


# train_cam briefly on the tiny ToyVOC, per method (each method has its own keys)
_TINY_CAM = {"epochs": 2, "batch_size": 4, "crop": 32, "long_side": [40, 56], "checkpoint_every": 2}
_TINY_CNN = _TINY_CAM | {"toy_width": 8}
_TINY_WARMUP = _TINY_CNN | {"warmup_epochs": 1, "warmup_batch_size": 4}
TINY_CAM = {
    "baseline": _TINY_WARMUP,
    "ktse": _TINY_WARMUP | {"par_iterations": 2},
    "destruction": _TINY_CNN,
    "fsr": _TINY_CAM | {"head": [32, 16, 64, 16], "par_iterations": 2},
}

# Every stage, trained and run briefly on the tiny ToyVOC of conftest.TINY
TINY_PARAMS = {
    "train_cam": TINY_CAM["ktse"],
    "extract_seeds": {"scales": [1.0, 1.5], "batch_size": 4, "overlays": 2},
    "train_irn": {"epochs": 1, "batch_size": 4, "crop": 32, "toy_width": 8, "radius": 4},
    "export_masks": {"batch_size": 4, "overlays": 2},
    "train_deeplab": {"epochs": 2, "batch_size": 4, "crop": 32, "toy_width": 8},
    "evaluate": {"scales": [1.0, 0.75], "examples": 2},
    "runtime": {"log_interval": 1},
}


def tiny_cam(method: str) -> dict:
    """METHOD's tiny train_cam keys (a method outside TINY_CAM: the CNN ones)."""
    return TINY_CAM.get(method, _TINY_CNN)


def tiny_params(path: Path, **sections: dict) -> Path:
    """TINY_PARAMS with SECTIONS' keys replaced, written to PATH; train_cam starts from its
    method's tiny keys (tiny_cam)."""
    base = TINY_PARAMS | {
        "train_cam": tiny_cam(sections.get("train_cam", {}).get("method", "ktse"))
    }
    merged = {k: base.get(k, {}) | sections.get(k, {}) for k in base | sections}
    path.write_text(yaml.safe_dump(merged))
    return path


# The 80 COCO category ids (1..90 with gaps), as in the official files.
COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def write_coco(root: Path) -> Path:
    """A COCO root with three images and an instances JSON of four annotations (one crowd RLE)."""
    images = [
        {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "height": 20, "width": 30},
        {"id": 25, "file_name": "COCO_train2014_000000000025.jpg", "height": 20, "width": 30},
        {"id": 30, "file_name": "COCO_train2014_000000000030.jpg", "height": 20, "width": 30},
    ]
    square = [[2, 2, 12, 2, 12, 12, 2, 12]]  # polygon x,y pairs
    small = [[4, 4, 8, 4, 8, 8, 4, 8]]
    crowd_rle = {"size": [20, 30], "counts": [20 * 20, 20 * 10]}  # column-major: right third

    def ann(i, image_id, category, segmentation, area, crowd=0):
        return {
            "id": i,
            "image_id": image_id,
            "category_id": category,
            "segmentation": segmentation,
            "area": area,
            "iscrowd": crowd,
        }

    annotations = [
        ann(1, 9, 1, square, 100),
        ann(2, 9, 90, small, 16),
        ann(3, 25, 3, square, 100),
        ann(4, 25, 1, crowd_rle, 200, crowd=1),
    ]
    categories = [{"id": i, "name": f"c{i}"} for i in COCO_IDS]
    ann = root / "annotations" / "instances_train2014.json"
    ann.parent.mkdir(parents=True)
    ann.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    (root / "train2014").mkdir()
    for im in images:
        Image.new("RGB", (30, 20), (90, 120, 30)).save(root / "train2014" / im["file_name"])
    return ann


def write_voc_and_sbd(toy: Path, base: Path) -> tuple[Path, Path]:
    """A VOC 2012 root and an SBD `dataset/` made from the ToyVOC root TOY, as the two downloads
    come: the root has train and val with their masks in SegmentationClass, SBD has the rest of
    train_aug plus two VOC train images (drawn empty, so that VOC's own mask must win) and one
    VOC val image in `cls/<id>.mat` files (MATLAB v5, as scipy writes SBD's format)."""
    lists = toy / "ImageSets" / "Segmentation"
    split = {s: (lists / f"{s}.txt").read_text().split() for s in ("train", "val", "train_aug")}
    voc, sbd = base / "VOC2012", base / "sbd"
    for sub in ("JPEGImages", "Annotations"):
        shutil.copytree(toy / sub, voc / sub)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "SegmentationClass").mkdir()
    for name in ("train", "val"):
        shutil.copy(lists / f"{name}.txt", voc / "ImageSets" / "Segmentation")
        for image_id in split[name]:
            shutil.copy(toy / "SegmentationClassAug" / f"{image_id}.png", voc / "SegmentationClass")
    only_sbd = [i for i in split["train_aug"] if i not in split["train"]]
    (sbd / "cls").mkdir(parents=True)
    for image_id in [*only_sbd, *split["train"][:2], split["val"][0]]:
        mask = read_mask(toy / "SegmentationClassAug" / f"{image_id}.png")
        mask = np.where(mask == 255, 0, mask) if image_id in only_sbd else np.zeros_like(mask)
        fields = {"Segmentation": mask, "Boundaries": np.zeros(1), "CategoriesPresent": 1}
        savemat(sbd / "cls" / f"{image_id}.mat", {"GTcls": fields})
    (sbd / "train.txt").write_text("".join(f"{i}\n" for i in only_sbd[1:]))
    val = [only_sbd[0], *split["train"][:2], split["val"][0]]
    (sbd / "val.txt").write_text("".join(f"{i}\n" for i in val))
    return voc, sbd
