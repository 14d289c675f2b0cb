"""extract_seeds: multi-scale + flip CAMs and background-threshold seeds -> `cams`.

Per image: CAMs of the present classes (`cams/<id>.npz`: `cam` float16 (K, H, W) normalized to
[0, 1], `keys` the K class ids) and the seed label map at the configured threshold
(`seeds/<id>.png`). On the images of `score_split` that have GT masks it reports
`seed_miou_fixed` (the configured threshold: the honest number), and `seed_miou` /
`seed_threshold`, the best of a threshold sweep scored against GT, which is the number papers
report (METHOD §4, §10.12).
"""

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from wsss.data.classes import IGNORE
from wsss.data.dataset import SegmentationDataset, size_batches
from wsss.data.io import read_image, read_mask, write_mask
from wsss.data.transforms import eval_transforms
from wsss.errors import WsssError
from wsss.metrics import ConfusionMatrix
from wsss.models.cam import CamNet
from wsss.params import Params
from wsss.plots import plot_overlays, plot_threshold_sweep
from wsss.runtime import autocast, describe, resolve_device
from wsss.stages.prepare_data import load_index, require_splits
from wsss.stages.train_cam import load_cam_model


@torch.no_grad()
def multiscale_cams(
    model: CamNet, images: torch.Tensor, labels: torch.Tensor, scales, flip: bool
) -> torch.Tensor:
    """(B, C, H, W) CAMs: per scale (and its flip) ReLU of the raw CAM upsampled to H x W, summed,
    absent classes zeroed, each class divided by its max (+1e-5)."""
    size = images.shape[-2:]
    total = torch.zeros(images.shape[0], labels.shape[1], *size, device=images.device)
    for scale in scales:
        x = (
            images
            if scale == 1
            else F.interpolate(images, scale_factor=scale, mode="bicubic", align_corners=False)
        )
        batch = torch.cat([x, x.flip(-1)]) if flip else x
        with autocast(images.device):
            cam = model(batch).cam.float()
        cam = F.relu(F.interpolate(cam, size, mode="bilinear", align_corners=False))
        if flip:
            plain, flipped = cam.chunk(2)
            cam = plain + flipped.flip(-1)
        total += cam
    total *= labels[:, :, None, None]
    return total / (total.amax(dim=(2, 3), keepdim=True) + 1e-5)


def read_cam(cams: Path, image_id: str, labels: tuple[int, ...], size: tuple[int, int]):
    """(cam (K, H, W) float32, keys (K,)) of one image from a `cams` artifact directory, checked
    against the image's labels and size (H, W); a mismatch is a one-line WsssError."""
    path = cams / "cams" / f"{image_id}.npz"
    try:
        with np.load(path) as npz:
            cam, keys = npz["cam"].astype(np.float32), npz["keys"]
    except FileNotFoundError:
        raise WsssError(f"{path}: no CAM for image '{image_id}'") from None
    except (OSError, KeyError, ValueError) as exc:
        raise WsssError(f"{path}: not a CAM array file ({exc})") from None
    if sorted(keys.tolist()) != sorted(labels):
        raise WsssError(
            f"{path}: CAM classes {keys.tolist()} disagree with the image labels {sorted(labels)}"
        )
    if cam.shape != (len(keys), *size):
        raise WsssError(
            f"{path}: CAM shape {cam.shape}, expected ({len(keys)}, {size[0]}, {size[1]})"
        )
    return cam, keys


def seeds_from_cams(cams: torch.Tensor, threshold: float) -> torch.Tensor:
    """argmax over [threshold; CAMs]: 0 = background, c+1 = class c. CAMS (..., C, H, W)."""
    bg = torch.full_like(cams[..., :1, :, :], threshold)
    return torch.cat([bg, cams], dim=-3).argmax(dim=-3)


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    p, rt = params.extract_seeds, params.runtime
    index = load_index(inputs["dataset"].path)
    require_splits(index, "extract_seeds", p, "split", "score_split")
    score_ids = {s.id for s in index.split(p.score_split)}
    device = resolve_device(rt.device)
    model, meta = load_cam_model(inputs["cam_model"], device)
    if meta["num_classes"] != len(index.classes):
        raise WsssError(
            f"{inputs['cam_model'].path}: model has {meta['num_classes']} classes, "
            f"the dataset {len(index.classes)}"
        )
    dataset = SegmentationDataset(index, p.split, eval_transforms())
    thresholds = np.round(np.arange(*p.sweep), 4).tolist()
    sweep = {t: ConfusionMatrix(index.num_classes) for t in thresholds}
    fixed = ConfusionMatrix(index.num_classes)
    (out / "cams").mkdir()
    (out / "seeds").mkdir()
    scored = 0
    batches = size_batches(dataset, p.batch_size)
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=rt.num_workers, collate_fn=list)
    for items in tqdm(loader, total=len(batches), desc="extract_seeds", disable=None):
        images = torch.stack([it["image"] for it in items]).to(device)
        labels = torch.stack([it["labels"] for it in items]).to(device)
        cams = multiscale_cams(model, images, labels, p.scales, p.flip).cpu()
        for item, cam in zip(items, cams, strict=True):
            keys = item["labels"].nonzero().flatten()
            np.savez_compressed(
                out / "cams" / f"{item['id']}.npz",
                cam=cam[keys].numpy().astype(np.float16),
                keys=keys.numpy().astype(np.int64),
            )
            seed = seeds_from_cams(cam, p.threshold).numpy().astype(np.uint8)
            write_mask(out / "seeds" / f"{item['id']}.png", seed)
            gt = item["mask"].numpy()
            if item["id"] in score_ids and (gt != IGNORE).any():
                scored += 1
                fixed.update(seed, gt)
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
    _overlays(index, dataset, out, p.overlays)
    return metrics, describe(device)


def _overlays(index, dataset: SegmentationDataset, out: Path, count: int) -> None:
    rows = []
    for sample in dataset.samples[:count]:
        image = read_image(index.image_path(sample))
        npz = np.load(out / "cams" / f"{sample.id}.npz")
        heat = (
            npz["cam"].astype(np.float32).max(0) if len(npz["keys"]) else np.zeros(image.shape[:2])
        )
        seed = read_mask(out / "seeds" / f"{sample.id}.png")
        gt_path = index.mask_path(sample)
        gt = read_mask(gt_path) if gt_path is not None else None
        rows.append((sample.id, image, heat, seed, gt))
    if rows:
        plot_overlays(rows, out / "cam_overlays.png")
