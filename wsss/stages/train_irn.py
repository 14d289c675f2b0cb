"""train_irn: IR labels mined from a `cams` artifact, then IRNet trained on them -> `irn_model`.

The labels are mined from the artifact's `irn_high_res` CAMs (IRN's own CAM recipe, as in the
official pipeline), not from the seed CAMs.

The IR labels (`ir_labels/<id>.png`: class id + 1 of confident foreground, 0 confident
background, 255 unknown) stay in the artifact, so what IRN learned from can be inspected.
Mining runs image by image in data-loader workers (the CRF is CPU work); training goes through
the shared loop (poly SGD, autocast, checkpoint and resume, logging).
"""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from wsss.config.params import Params, TrainIrnParams
from wsss.data.classes import IGNORE
from wsss.data.dataset import AugmentedSet, SegmentationDataset
from wsss.data.index import DatasetIndex
from wsss.data.io import write_mask
from wsss.data.transforms import irn_train_transforms
from wsss.kinds.cams import read_cam
from wsss.kinds.dataset import load_index, require_splits
from wsss.losses.irn import irn_loss
from wsss.models.irn import build_irnet
from wsss.optim import poly_factor, sgd
from wsss.progress import track
from wsss.refine.affinity import (
    forward_offsets,
)
from wsss.refine.ir_labels import ir_label
from wsss.runtime import (
    describe,
)
from wsss.training import fit, initial_weights, place_model, start

IR_LABELS = "ir_labels"


class _Mining(Dataset):
    """Item i: the IR label of image i written to OUT (and scored against its GT, if any)."""

    def __init__(self, index: DatasetIndex, split: str, cams: Path, out: Path, p: TrainIrnParams):
        self.index, self.samples = index, index.split(split)
        self.cams, self.out, self.p = cams, out, p

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> np.ndarray:
        sample = self.samples[i]
        image = self.index.read_image(sample)
        cam, keys = read_cam(self.cams, sample.id, sample.labels, image.shape[:2], "irn_high_res")
        p = self.p
        label = ir_label(image, cam, keys, p.fg_threshold, p.bg_threshold, p.crf)
        write_mask(self.out / f"{sample.id}.png", label)
        gt = self.index.read_gt_mask(sample)
        if gt is None:
            return np.zeros(3, np.int64)
        known, scorable = label != IGNORE, gt != IGNORE
        correct = (known & scorable & (label == gt)).sum()
        return np.array([correct, (known & scorable).sum(), scorable.sum()], np.int64)


def mine_ir_labels(
    index: DatasetIndex, split: str, cams: Path, out: Path, p: TrainIrnParams, workers: int
) -> dict[str, float]:
    """Write every IR label of SPLIT into OUT; returns their precision and coverage on GT."""
    out.mkdir(exist_ok=True)
    mining = _Mining(index, split, cams, out, p)
    counts = np.zeros(3, np.int64)
    loader = DataLoader(mining, batch_size=1, num_workers=workers, collate_fn=list)
    for rows in track(loader, len(mining), "ir_labels", index.full_size(split)):
        counts += np.asarray(rows[0])
    if not counts[2]:
        return {}
    return {
        "ir_label_precision": float(counts[0] / max(counts[1], 1)),  # right among labelled
        "ir_label_coverage": float(counts[1] / counts[2]),  # labelled share of GT pixels
    }


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    p, rt = params.train_irn, params.runtime
    index = load_index(inputs["dataset"].path, params.smoke.images)
    require_splits(index, "train_irn", p, "split")
    job = start("train_irn", inputs, out, params)
    device, dist = job.device, job.dist

    metrics = {}
    if dist.is_main:
        metrics = mine_ir_labels(
            index, p.split, inputs["cams"].path, out / IR_LABELS, p, rt.num_workers
        )
    if dist.world_size > 1:
        torch.distributed.barrier()  # the other ranks read rank 0's IR labels

    weights = initial_weights("train_irn", p.backbone, p.weights)
    model = build_irnet(p.backbone, weights, p.toy_width, p.edge_width, p.disp_width)
    place_model(model, device, dist)
    edge_params, disp_params = model.branch_parameters()
    base = SegmentationDataset(index, p.split, masks=out / IR_LABELS)
    offsets = forward_offsets(p.radius)
    meta = {
        "backbone": p.backbone,
        "toy_width": p.toy_width,
        "edge_width": p.edge_width,
        "disp_width": p.disp_width,
    }
    history, total = fit(
        job,
        model=model,
        optimizer=sgd([(edge_params, p.lr), (disp_params, p.lr * p.disp_lr_scale)], p),
        dataset=AugmentedSet(base, irn_train_transforms(p.scale, p.crop, p.hflip), rt.seed),
        batch_sizes=[p.batch_size] * p.epochs,
        lr_factor=lambda step, total: poly_factor(step, total, p.poly_power),
        loss_fn=lambda batch, epoch: irn_loss(model, batch, offsets),
        meta=meta,
    )
    last = history[-1]
    metrics["train_loss"] = last["total"]
    metrics |= {f"loss_{k}": last[k] for k in ("pos", "neg", "dp_fg", "dp_bg")}
    metrics["steps"] = float(total)
    return metrics, describe(device, dist.world_size)
