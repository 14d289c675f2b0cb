"""Where IRN's stage gains or loses mask quality, step by step, on make run's artifacts: the seeds,
the IR labels IRN learns from, IRN's boundary map against GT boundaries, the random walk (its
length, with and without the boundary map, and how the result depends on the background
threshold), and the pseudo-masks export_masks wrote.

    make run && python -m benchmarks.irn_stage [--artifacts artifacts]

Every number is measured on export_masks' `score_split` (GT masks). The boundary map is scored on
the stride-4 grid: a cell is a GT boundary where its 4x4 block holds two classes or ToyVOC's
ignore band; precision and recall allow one cell of slack. The threshold sweep reads GT, so its
best value is a diagnostic (how much the fixed threshold leaves), not a result.
Writes results/irn_stage.json (fractions).
"""

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import run_benchmark, write_json
from wsss.artifacts.opening import open_artifact
from wsss.config.params import ExportMasksParams
from wsss.data.classes import IGNORE
from wsss.data.dataset import SegmentationDataset
from wsss.data.io import read_mask
from wsss.data.transforms import eval_transforms
from wsss.kinds.cams import read_cam
from wsss.kinds.dataset import load_index
from wsss.kinds.irn_model import load_irn_model
from wsss.kinds.pseudo_masks import mask_file
from wsss.metrics import ConfusionMatrix
from wsss.refine.affinity import random_walk, transition_weights
from wsss.stages.export_masks import boundaries

STEPS = (0, 2, 8, 32, 256)  # 0: no walk, the CAMs times (1 - boundary) as they are
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.61, 0.05))


def gt_boundary_cells(gt: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(h, w) bool on the stride-4 grid: the cell's 4x4 block holds two classes or ignore."""
    h, w = grid
    padded = np.full((4 * h, 4 * w), IGNORE, np.uint8)
    padded[: gt.shape[0], : gt.shape[1]] = gt
    blocks = padded.reshape(h, 4, w, 4).transpose(0, 2, 1, 3).reshape(h, w, 16)
    return (blocks == IGNORE).any(-1) | (blocks.min(-1) != blocks.max(-1))


def dilate(cells: np.ndarray) -> np.ndarray:
    grown = torch.from_numpy(cells.astype(np.float32))[None, None]
    return F.max_pool2d(grown, 3, 1, 1)[0, 0].numpy() > 0


def walked(
    cams: torch.Tensor, boundary: torch.Tensor, steps: int, p: ExportMasksParams
) -> torch.Tensor:
    """export_masks' scores without the background channel: (K, H', W') at 4x the grid, divided
    by their maximum (the walk of `steps` steps; 0: none)."""
    x = cams * (1 - boundary[None])
    if steps:
        x = random_walk(x[None], transition_weights(boundary[None], p.beta, p.radius), steps)[0]
    up = F.interpolate(x[None], scale_factor=4, mode="bilinear", align_corners=False)[0]
    return up / up.max().clamp(min=1e-5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--radius", type=int, help="the walk's radius (default: export_masks')")
    args = parser.parse_args()
    if args.radius is not None and args.radius < 2:
        parser.error(f"--radius {args.radius}: at least 2 (a smaller one pairs no cells)")
    art = args.artifacts
    index = load_index(open_artifact(art / "dataset", "dataset").path)
    cams = open_artifact(art / "cams", "cams").path
    irn = open_artifact(art / "irn_model", "irn_model")
    masks = open_artifact(art / "pseudo_masks", "pseudo_masks")
    p = ExportMasksParams(**masks.manifest.params["export_masks"])
    p = p.model_copy(update={"radius": args.radius or p.radius})
    model, _ = load_irn_model(irn, torch.device("cpu"))
    dataset = SegmentationDataset(index, p.score_split, eval_transforms())
    n = index.num_classes
    seeds, ir, final = ConfusionMatrix(n), ConfusionMatrix(n), ConfusionMatrix(n)
    ir_counts = np.zeros(3, np.int64)  # right, labelled, scorable
    edges = np.zeros(4, np.int64)  # true positives (pred), predicted, true positives (gt), gt
    thresholds = sorted({*THRESHOLDS, p.bg_threshold})
    sweep = {(s, b): [ConfusionMatrix(n) for _ in thresholds] for s in STEPS for b in (1, 0)}
    for item in dataset:
        sample = index.samples[item["id"]]
        gt = item["mask"].numpy()
        if not (gt != IGNORE).any():
            continue
        seeds.update(read_mask(cams / "seeds" / f"{sample.id}.png"), gt)
        final.update(read_mask(mask_file(masks.path, sample.id)), gt)
        label = read_mask(irn.path / "ir_labels" / f"{sample.id}.png")
        known, scorable = label != IGNORE, gt != IGNORE
        ir_counts += [
            (known & scorable & (label == gt)).sum(),
            (known & scorable).sum(),
            scorable.sum(),
        ]
        ir.update(np.where(known, label, IGNORE), gt)
        image = item["image"][None]
        boundary = boundaries(model, image, p.flip)[0]
        truth = gt_boundary_cells(gt, tuple(boundary.shape))
        predicted = boundary.numpy() > 0.5
        edges += [
            (predicted & dilate(truth)).sum(),
            predicted.sum(),
            (truth & dilate(predicted)).sum(),
            truth.sum(),
        ]
        keys = tuple(item["labels"].nonzero().flatten().tolist())
        size = tuple(image.shape[-2:])
        cam, key = read_cam(cams, sample.id, keys, size, "irn_stride4")
        ids = np.concatenate([[0], np.asarray(key) + 1])
        cam = torch.from_numpy(cam).float()
        for steps, use in sweep:
            up = walked(cam, boundary * use, steps, p)[:, : size[0], : size[1]]
            for matrix, t in zip(sweep[steps, use], thresholds, strict=True):
                scores = torch.cat([torch.full_like(up[:1], t), up])
                matrix.update(ids[scores.argmax(0).numpy()].astype(np.uint8), gt)
    precision, recall = edges[0] / max(edges[1], 1), edges[2] / max(edges[3], 1)
    result = {
        "split": p.score_split,
        "bg_threshold": p.bg_threshold,
        "exp_times": p.exp_times,
        "radius": p.radius,
        "seed_miou": seeds.miou(),
        "ir_label_precision": float(ir_counts[0] / max(ir_counts[1], 1)),
        "ir_label_coverage": float(ir_counts[1] / max(ir_counts[2], 1)),
        "ir_label_miou_where_labelled": ir.miou(),
        "boundary_precision": float(precision),
        "boundary_recall": float(recall),
        "boundary_f": float(2 * precision * recall / max(precision + recall, 1e-9)),
        "pseudo_mask_miou": final.miou(),
        "walk": [
            {
                "steps": steps,
                "boundary": bool(use),
                "miou_at_bg_threshold": matrices[thresholds.index(p.bg_threshold)].miou(),
                "best_miou": max(m.miou() for m in matrices),
                "best_bg_threshold": thresholds[int(np.argmax([m.miou() for m in matrices]))],
            }
            for (steps, use), matrices in sweep.items()
        ],
    }
    write_json("irn_stage" + (f"_radius{args.radius}" if args.radius else ""), result)
    print(f"on {p.score_split}: seeds {result['seed_miou']:.3f}")
    print(
        f"IR labels: precision {result['ir_label_precision']:.3f}, coverage "
        f"{result['ir_label_coverage']:.3f}, mIoU where labelled "
        f"{result['ir_label_miou_where_labelled']:.3f}"
    )
    print(f"boundary map: P {precision:.3f} R {recall:.3f} F {result['boundary_f']:.3f}")
    print(f"{'steps':>5} {'boundary':>8} {'at bg ' + str(p.bg_threshold):>11} {'best (thr)':>14}")
    for row in result["walk"]:
        print(
            f"{row['steps']:>5} {row['boundary']!s:>8} {row['miou_at_bg_threshold']:>11.3f} "
            f"{row['best_miou']:>8.3f} ({row['best_bg_threshold']:.2f})"
        )
    print(f"pseudo-masks (export_masks): {result['pseudo_mask_miou']:.3f}")


if __name__ == "__main__":
    run_benchmark(main)
