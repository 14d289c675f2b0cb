"""extract_seeds: multi-scale + flip CAMs and background-threshold seeds -> `cams`.

Per image, `cams/<id>.npz` holds the present classes' CAMs in two recipes of the same forwards
(each class divided by its max, so in [0, 1]), all float16, with `keys`, the K class ids:
- `cam` (K, H, W): the seed CAM of KTSE's inference (ReLU per forward after upsampling to H x W,
  summed); the seeds `seeds/<id>.png` and every seed score come from it;
- `irn_high_res` (K, H, W) and `irn_stride4` (K, ceil(H/4), ceil(W/4)): IRN's `make_cam`
  recipe (plain + un-flipped flip summed at feature resolution, then ReLU, then upsampled per
  scale: to ceil(H/16)·16 cropped back, and to the stride-4 grid). train_irn mines its IR
  labels from `irn_high_res`; export_masks walks `irn_stride4`.
On the images of `score_split` that have GT masks it reports `seed_miou_fixed` (the configured
threshold: the honest number), and `seed_miou` / `seed_threshold`, the best of a threshold
sweep scored against GT, which is the number papers report (docs/method.md §4, §10.12).
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from wsss.config.params import Params
from wsss.data.classes import IGNORE
from wsss.data.dataset import MultiScaleSet, SegmentationDataset, size_batches
from wsss.data.io import read_mask, write_mask
from wsss.errors import WsssError
from wsss.inference import multiscale_cams, seeds_from_cams
from wsss.kinds.cam_model import load_cam_model
from wsss.kinds.cams import CAM_ARRAYS, CAMS, cam_file
from wsss.kinds.dataset import load_index, require_splits
from wsss.metrics import ConfusionMatrix, image_miou, images_to_show
from wsss.plots import plot_overlays, plot_threshold_sweep
from wsss.progress import track
from wsss.runtime import describe, resolve_device


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    p, rt = params.extract_seeds, params.runtime
    index = load_index(inputs["dataset"].path, params.smoke.images)
    require_splits(index, "extract_seeds", p, "split", "score_split")
    score_ids = {s.id for s in index.split(p.score_split)}
    device = resolve_device(rt.device)
    model, meta = load_cam_model(inputs["cam_model"], device)
    if meta["num_classes"] != len(index.classes):
        raise WsssError(
            f"{inputs['cam_model'].path}: model has {meta['num_classes']} classes, "
            f"the dataset {len(index.classes)}"
        )
    dataset = SegmentationDataset(index, p.split)
    thresholds = np.round(np.arange(*p.sweep), 4).tolist()
    sweep = {t: ConfusionMatrix(index.num_classes) for t in thresholds}
    fixed = ConfusionMatrix(index.num_classes)
    (out / CAMS).mkdir()
    (out / "seeds").mkdir()
    scored = 0
    per_image: dict[str, float] = {}  # at the fixed threshold: the overlays show the range
    batches = size_batches(dataset, p.batch_size)
    loader = DataLoader(
        MultiScaleSet(dataset, p.scales),
        batch_sampler=batches,
        num_workers=rt.num_workers,
        collate_fn=list,
    )
    for items in track(loader, len(dataset), "extract_seeds", dataset.full_size):
        views = [
            torch.stack(v).to(device) for v in zip(*(it["views"] for it in items), strict=True)
        ]
        labels = torch.stack([it["labels"] for it in items]).to(device)
        maps = multiscale_cams(model, views, labels, tuple(items[0]["image"].shape[-2:]), p.flip)
        arrays = {name: getattr(maps, name).cpu() for name in CAM_ARRAYS}
        for i, item in enumerate(items):
            keys = item["labels"].nonzero().flatten()
            np.savez_compressed(
                cam_file(out, item["id"]),
                **{name: a[i, keys].numpy().astype(np.float16) for name, a in arrays.items()},
                keys=keys.numpy().astype(np.int64),
            )
            cam = arrays["cam"][i]
            seed = seeds_from_cams(cam, p.threshold).numpy().astype(np.uint8)
            write_mask(out / "seeds" / f"{item['id']}.png", seed)
            gt = item["mask"].numpy()
            if item["id"] in score_ids and (gt != IGNORE).any():
                scored += 1
                fixed.update(seed, gt)
                per_image[item["id"]] = image_miou(seed, gt, index.num_classes)
                for t, matrix in sweep.items():
                    matrix.update(seeds_from_cams(cam, t).numpy(), gt)

    metrics: dict[str, float] = {"images": float(len(dataset))}
    if scored:
        mious = {t: m.miou() for t, m in sweep.items()}
        best = max(mious, key=mious.get)
        metrics |= {
            "seed_miou": mious[best],
            "seed_threshold": best,
            "seed_miou_fixed": fixed.miou(),
            "scored_images": float(scored),
        }
        (out / "seed_scores.json").write_text(
            json.dumps({"fixed": fixed.summary(), "sweep": mious}, indent=1) + "\n"
        )
        plot_threshold_sweep(mious, p.threshold, out / "threshold_sweep.png")
    _overlays(
        index, dataset, out, images_to_show([s.id for s in dataset.samples], per_image, p.overlays)
    )
    return metrics, describe(device)


def _overlays(index, dataset: SegmentationDataset, out: Path, shown: list[tuple[str, str]]):
    rows = []
    for image_id, label in shown:
        sample = index.samples[image_id]
        image = index.read_image(sample)
        npz = np.load(cam_file(out, sample.id))
        heat = (
            npz["cam"].astype(np.float32).max(0) if len(npz["keys"]) else np.zeros(image.shape[:2])
        )
        seed = read_mask(out / "seeds" / f"{sample.id}.png")
        gt = index.read_gt_mask(sample)
        rows.append((label, image, heat, seed, gt))
    if rows:
        plot_overlays(rows, out / "cam_overlays.png", index.names_with_background)
