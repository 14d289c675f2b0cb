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
from tqdm import tqdm

from wsss.artifacts.lineage import format_tree, lineage
from wsss.data.dataset import SegmentationDataset, size_batches
from wsss.data.io import write_mask
from wsss.data.transforms import eval_transforms
from wsss.errors import WsssError
from wsss.inference import predict_batch
from wsss.kinds.dataset import load_index, require_splits
from wsss.kinds.seg_model import load_seg_model
from wsss.metrics import ConfusionMatrix
from wsss.params import Params
from wsss.plots import (
    confusion_rows,
    plot_class_iou,
    plot_confusion,
    plot_examples,
    write_plot_data,
)
from wsss.report import write_report
from wsss.runtime import describe, resolve_device


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    p, rt = params.evaluate, params.runtime
    index = load_index(inputs["dataset"].path)
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
    examples = []
    batches = size_batches(dataset, p.batch_size)
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=rt.num_workers, collate_fn=list)
    for items in tqdm(loader, total=len(batches), desc="evaluate", disable=None):
        images = torch.stack([it["image"] for it in items]).to(device)
        raw = [index.read_image(index.samples[it["id"]]) for it in items]
        for item, rgb, pred in zip(items, raw, predict_batch(model, images, raw, p), strict=True):
            write_mask(out / "predictions" / f"{item['id']}.png", pred)
            gt = item["mask"].numpy().astype(np.uint8)
            matrix.update(pred, gt)
            if len(examples) < p.examples:
                examples.append((item["id"], rgb, gt, pred))

    summary = matrix.summary()
    metrics = {"miou": summary["miou"], "pixel_acc": summary["pixel_acc"]}
    metrics["images"] = float(len(dataset))
    names = ["background", *index.classes]
    per_class = dict(zip(names, summary["iou"], strict=True))
    scores = {**summary, "iou_per_class": per_class, "confusion": matrix.counts.tolist()}
    (out / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    _report(out, metrics, per_class, matrix, names, examples, inputs, params)
    return metrics, describe(device)


def _report(out, metrics, per_class, matrix, names, examples, inputs, params) -> None:
    figures = [
        (out / "class_iou.png", "IoU per class"),
        (out / "confusion.png", "Confusion matrix (rows: GT, normalized)"),
    ]
    plot_class_iou(list(per_class.values()), names, figures[0][0])
    plot_confusion(matrix.counts, names, figures[1][0])
    iou_rows = [{"class": c, "iou": v} for c, v in per_class.items() if v is not None]
    write_plot_data(out / "class_iou.json", iou_rows)
    write_plot_data(out / "confusion.json", confusion_rows(matrix.counts, names))
    if examples:
        figures.append((out / "examples.png", "image | GT | prediction"))
        plot_examples(examples, figures[-1][0])
    # without run records: the report is part of the artifact, whose bytes must not depend on when
    tree = format_tree(lineage(inputs["seg_model"].path, runs=False), "seg_model")
    write_report(
        out / "report.html",
        "wsss evaluation",
        metrics,
        per_class,
        figures,
        "\n".join(tree),
        {"evaluate": params.evaluate.model_dump(mode="json")},
    )
