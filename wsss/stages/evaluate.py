"""evaluate: a `seg_model` on the val split -> `evaluation` (docs/method.md §6).

Multi-scale + flip inference (scales merged by pixel-wise max or mean), an optional dense CRF,
then per-class IoU and the confusion matrix. The artifact holds the predictions
(`predictions/<id>.png`), `scores.json`, the figures (per-class IoU bars, confusion heat map,
image | GT | prediction grid) and `report.html`, one self-contained page with all of them and the
lineage of the model.
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from wsss.artifacts.lineage import find, lineage, read_json
from wsss.config.params import Params
from wsss.data.dataset import SegmentationDataset, size_batches
from wsss.data.io import read_mask, write_mask
from wsss.data.transforms import eval_transforms
from wsss.errors import WsssError
from wsss.inference import predict_batch
from wsss.kinds.dataset import load_index, require_splits
from wsss.kinds.seg_model import load_seg_model
from wsss.metrics import ConfusionMatrix, image_miou, images_to_show
from wsss.plots import plot_class_iou, plot_confusion, plot_examples
from wsss.progress import track
from wsss.report import facts, write_report
from wsss.runtime import describe, resolve_device


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    p, rt = params.evaluate, params.runtime
    index = load_index(inputs["dataset"].path, params.smoke.images)
    require_splits(index, "evaluate", p, "split")
    device = resolve_device(rt.device)
    model, meta = load_seg_model(inputs["seg_model"], device)
    if meta["num_classes"] != index.num_classes:
        raise WsssError(
            f"{inputs['seg_model'].path}: model has {meta['num_classes']} classes, "
            f"the dataset {index.num_classes}"
        )
    dataset = SegmentationDataset(index, p.split, eval_transforms())
    missing = [s.id for s in dataset.samples if index.mask_path(s) is None]
    if missing:
        raise WsssError(f"{p.split}: no GT mask for '{missing[0]}'; evaluate needs GT")
    (out / "predictions").mkdir()
    matrix = ConfusionMatrix(index.num_classes)
    per_image: dict[str, float] = {}  # to show the best, median and worst images
    batches = size_batches(dataset, p.batch_size)
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=rt.num_workers, collate_fn=list)
    for items in track(loader, len(dataset), "evaluate", dataset.full_size):
        images = torch.stack([it["image"] for it in items]).to(device)
        raw = [index.read_image(index.samples[it["id"]]) for it in items]
        for item, pred in zip(items, predict_batch(model, images, raw, p), strict=True):
            write_mask(out / "predictions" / f"{item['id']}.png", pred)
            gt = item["mask"].numpy().astype(np.uint8)
            matrix.update(pred, gt)
            per_image[item["id"]] = image_miou(pred, gt, index.num_classes)

    summary = matrix.summary()
    metrics = {"miou": summary["miou"], "pixel_acc": summary["pixel_acc"]}
    metrics["images"] = float(len(dataset))
    names = index.names_with_background
    per_class = dict(zip(names, summary["iou"], strict=True))
    scores = {**summary, "iou_per_class": per_class, "confusion": matrix.counts.tolist()}
    (out / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    ids = [s.id for s in dataset.samples]
    examples = [
        _example(index, out, image_id, label)
        for image_id, label in images_to_show(ids, per_image, p.examples)
    ]
    _report(out, metrics, per_class, matrix, names, examples, inputs, params)
    return metrics, describe(device)


def _example(index, out: Path, image_id: str, label: str) -> tuple:
    """One row of the examples grid, read back: (label, image, GT, prediction)."""
    sample = index.samples[image_id]
    prediction = read_mask(out / "predictions" / f"{image_id}.png")
    return label, index.read_image(sample), read_mask(index.mask_path(sample)), prediction


def _report(out, metrics, per_class, matrix, names, examples, inputs, params) -> None:
    # without run records: the report is part of the artifact, whose bytes must not depend on when
    tree = lineage(inputs["seg_model"].path, runs=False)
    columns = {**_upstream_iou(tree, names), "val": per_class}
    figures = [
        (out / "class_iou.png", "IoU per class: seeds, pseudo-masks (train) and val"),
        (out / "confusion.png", "val confusion matrix (rows: GT, normalized)"),
    ]
    plot_class_iou({k: list(v.values()) for k, v in columns.items()}, names, figures[0][0])
    plot_confusion(matrix.counts, names, figures[1][0])
    if examples:
        caption = "image | GT | prediction: best to worst per-image mIoU, evenly spaced"
        figures.append((out / "examples.png", caption))
        plot_examples(examples, figures[-1][0], names)
    header = facts(tree, params.evaluate.split)
    own = {"evaluate": params.evaluate.model_dump()}
    write_report(out / "report.html", header, metrics, columns, figures, tree, own)


def _upstream_iou(tree: dict, names: list[str]) -> dict[str, dict[str, float | None]]:
    """IoU per class of the seeds and the pseudo-masks that made the model, from the score
    files of those artifacts (found by the lineage; a column is left out if unreadable)."""
    columns = {}
    sources = [
        ("seeds", "cams", "seed_scores.json", "fixed"),
        ("pseudo-masks", "pseudo_masks", "mask_scores.json", None),
    ]
    for label, kind, rel, key in sources:
        node = find(tree, kind)
        scores = read_json(node["uri"], rel) if node and "error" not in node else None
        if scores is not None:
            iou = (scores[key] if key else scores)["iou"]
            columns[label] = dict(zip(names, iou, strict=True))
    return columns
