"""prepare_data: index and validate a dataset root into the small `dataset` artifact.

The artifact holds labels, classes, splits, stats, the root URI and a digest of the root's files
that the index uses; never the images themselves (docs/design.md §4: datasets are big).
"""

import hashlib
import json
import os
import sys
from collections import Counter
from pathlib import Path

from wsss.artifacts.storage import sync_root
from wsss.artifacts.uri import is_remote, relative_uri
from wsss.config.params import Params
from wsss.data.coco import is_coco_root, read_coco
from wsss.data.index import DatasetIndex
from wsss.data.io import read_hashed
from wsss.data.verify import check_samples
from wsss.data.voc import is_voc_root, read_voc
from wsss.errors import WsssError
from wsss.kinds.dataset import FULL_SPLITS, ROOT_FILES, SOURCE
from wsss.progress import Progress


def read_root(root: Path, params: Params) -> DatasetIndex:
    p = params.dataset
    if not root.is_dir():
        raise WsssError(f"{root}: dataset root not found")
    fmt = p.format
    if fmt == "auto":
        fmt = "voc" if is_voc_root(root) else "coco" if is_coco_root(root) else ""
        if not fmt:
            raise WsssError(
                f"{root}: not a VOC 2012 root (ImageSets/Segmentation, JPEGImages) "
                "nor a COCO 2014 root (SegmentationClass, ImageSets/*.txt)"
            )
    if fmt == "voc":
        return read_voc(root, p.splits, p.mask_dir)
    return read_coco(root, p.splits)


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    p = params.dataset
    unknown = [s for s in p.mask_splits if s not in p.splits]
    if unknown:
        raise WsssError(f"params: dataset.mask_splits: '{unknown[0]}' is not in dataset.splits")
    root = _local_root(inputs["root"])
    index = read_root(root, params)
    full = len(index.samples)
    if params.smoke.on:  # only the cut's images are checked and recorded
        index = index.smoke_cut(params.smoke.images)
    for split in p.mask_splits:
        for sample in index.split(split):
            if sample.mask is None:
                raise WsssError(
                    f"{root}: no GT mask for '{sample.id}' "
                    f"(split '{split}' is in dataset.mask_splits)"
                )

    samples = sorted(index.samples.values(), key=lambda s: s.id)
    workers = params.runtime.num_workers or os.cpu_count() or 1
    files: dict[str, tuple[str, int]] = {}
    heights, widths = [], []
    unlabelled: dict[str, list[str]] = {}
    progress = Progress(len(samples), name="prepare_data", unit="image", full=full)
    every = max(len(samples) // 10, 1)
    for check in check_samples(index, samples, p.verify, workers):
        files.update(check.files)
        heights.append(check.height)
        widths.append(check.width)
        if check.unlabelled:
            unlabelled[check.id] = [index.classes[c] for c in check.unlabelled]
        progress.update(1, 1)
        if progress.done % every == 0 or progress.done == len(samples):  # ~10 lines in all
            checked = {"checked": progress.done, "of": len(samples)}
            print(json.dumps({"stage": "prepare_data"} | checked | progress.facts()), flush=True)
    if unlabelled:
        _warn_unlabelled(unlabelled, len(samples))
    for rel in index.sources:
        _, files[rel] = read_hashed(root / rel)

    root_files = {k: {"sha256": v[0], "size": v[1]} for k, v in sorted(files.items())}
    root_digest = hashlib.sha256(json.dumps(root_files, sort_keys=True).encode()).hexdigest()
    index.save(out)
    class_images = Counter(c for s in samples for c in s.labels)
    stats = {
        "images": len(samples),
        "splits": {name: len(ids) for name, ids in index.splits.items()},
        "masks": sum(s.mask is not None for s in samples),
        "class_images": {name: class_images[i] for i, name in enumerate(index.classes)},
        "labels_per_image": dict(sorted(Counter(len(s.labels) for s in samples).items())),
        "height": [min(heights), max(heights)] if p.verify else None,
        "width": [min(widths), max(widths)] if p.verify else None,
        "masks_with_unlabelled_classes": dict(sorted(unlabelled.items())),
    }
    _write_json(out / "stats.json", stats)
    _write_json(out / ROOT_FILES, root_files)
    _write_json(
        out / SOURCE,
        {
            "format": index.format,
            "root": relative_uri(out, inputs["root"]),
            "root_digest": root_digest,
            "files": len(root_files),
        }
        | ({FULL_SPLITS: index.full_sizes} if index.full_sizes else {}),
    )
    metrics = {"images": len(samples), "classes": len(index.classes), "masks": stats["masks"]}
    metrics |= {f"images_{name}": n for name, n in stats["splits"].items()}
    return metrics, "cpu"


def _warn_unlabelled(unlabelled: dict[str, list[str]], images: int) -> None:
    """Say so when GT masks hold classes the image labels lack: seeds can only find labelled
    classes, so those pixels count against the seeds and pseudo-masks when they are scored."""
    first = ", ".join(f"{i}: {'/'.join(c)}" for i, c in sorted(unlabelled.items())[:3])
    more = ", …" if len(unlabelled) > 3 else ""
    print(
        f"warning: {len(unlabelled)} of {images} GT masks hold classes their image labels lack "
        f"({first}{more}; stats.json lists them): seeds and pseudo-masks cannot hold those "
        "classes, and scoring them counts those pixels as misses",
        file=sys.stderr,
    )


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n")


def _local_root(uri: str) -> Path:
    """The root to index: a local path as it is, an s3:// prefix copied into the cache first."""
    return sync_root(uri) if is_remote(uri) else Path(uri)
