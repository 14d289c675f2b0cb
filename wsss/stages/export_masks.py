"""export_masks: IRN boundaries + random walk of the CAMs -> `pseudo_masks` (docs/method.md §5).

Per image: B = sigmoid of the boundary logits (averaged with the flipped image's), the CAMs on
the stride-4 grid (the `cams` artifact's `irn_stride4`, IRN's recipe) times (1 - B) walked
2^exp_times steps on the boundary-aware transition matrix, upsampled x4, divided by their
maximum, a background score prepended, argmax: `masks/<id>.png` (VOC palette) and
`confidence/<id>.png` (255 on the half of each predicted class's pixels with the largest
top-1 - top-2 margin, 0 elsewhere). Images of one size are processed as one batch on the
device; `pseudo_mask_miou` is scored on `score_split`.
"""

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from wsss.config.params import ExportMasksParams, Params
from wsss.data.classes import IGNORE
from wsss.data.dataset import SegmentationDataset, size_batches
from wsss.data.io import read_mask, write_mask
from wsss.data.transforms import eval_transforms
from wsss.kinds.cams import read_cam, strided_size
from wsss.kinds.dataset import load_index, require_splits
from wsss.kinds.irn_model import load_irn_model
from wsss.kinds.pseudo_masks import CONFIDENCE, MASKS, confidence_file, mask_file
from wsss.metrics import ConfusionMatrix, image_miou, images_to_show
from wsss.models.irn import IRNet
from wsss.plots import plot_overlays
from wsss.progress import track
from wsss.refine.affinity import random_walk, transition_weights
from wsss.refine.ir_labels import confidence_mask
from wsss.runtime import autocast, describe, resolve_device


@torch.no_grad()
def boundaries(model: IRNet, images: torch.Tensor, flip: bool) -> torch.Tensor:
    """(B, 3, H, W) -> (B, h, w) boundary probabilities on the stride-4 grid."""
    batch = torch.cat([images, images.flip(-1)]) if flip else images
    with autocast(images.device):
        logits = model(batch)[0].float()[:, 0]
    if flip:
        plain, flipped = logits.chunk(2)
        logits = (plain + flipped.flip(-1)) / 2
    return torch.sigmoid(logits)


@torch.no_grad()
def walk_cams(
    cams: torch.Tensor, boundary: torch.Tensor, size: tuple[int, int], p: ExportMasksParams
) -> torch.Tensor:
    """CAMs (B, K, h, w) and boundaries (B, h, w) on the stride-4 grid -> (B, K+1, H, W) scores,
    channel 0 the background. Images with fewer classes are zero-padded to K channels; zeros
    stay zero."""
    weights = transition_weights(boundary, p.beta, p.radius)
    walked = random_walk(cams * (1 - boundary[:, None]), weights, 2**p.exp_times)
    up = F.interpolate(walked, scale_factor=4, mode="bilinear", align_corners=False)
    up = up[..., : size[0], : size[1]]
    up = up / up.flatten(1).amax(1).clamp(min=1e-5)[:, None, None, None]
    bg = torch.full_like(up[:, :1], p.bg_threshold)
    return torch.cat([bg, up], 1)


def run(inputs: dict, out: Path, params: Params) -> tuple[dict[str, float], str]:
    p, rt = params.export_masks, params.runtime
    index = load_index(inputs["dataset"].path, params.smoke.images)
    require_splits(index, "export_masks", p, "split", "score_split")
    score_ids = {s.id for s in index.split(p.score_split)}
    device = resolve_device(rt.device)
    model, _ = load_irn_model(inputs["irn_model"], device)
    cams_dir = inputs["cams"].path
    dataset = SegmentationDataset(index, p.split, eval_transforms())
    for sub in (MASKS, CONFIDENCE):
        (out / sub).mkdir()
    matrix, confident = ConfusionMatrix(index.num_classes), ConfusionMatrix(index.num_classes)
    per_image: dict[str, float] = {}  # the overlays show the range
    batches = size_batches(dataset, p.batch_size)
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=rt.num_workers, collate_fn=list)
    for items in track(loader, len(dataset), "export_masks", dataset.full_size):
        images = torch.stack([it["image"] for it in items]).to(device)
        size = tuple(images.shape[-2:])
        cams, keys = zip(
            *(read_cam(cams_dir, it["id"], _labels(it), size, "irn_stride4") for it in items),
            strict=True,
        )
        stacked = torch.zeros(len(items), max(1, *map(len, keys)), *strided_size(size, 4))
        for i, cam in enumerate(cams):
            stacked[i, : len(cam)] = torch.from_numpy(cam)
        scores = walk_cams(stacked.to(device), boundaries(model, images, p.flip), size, p)
        for item, score, key in zip(items, scores, keys, strict=True):
            score = score[: len(key) + 1]
            ids = torch.cat([torch.zeros(1, dtype=torch.long), torch.as_tensor(key) + 1])
            mask = ids[score.argmax(0).cpu()].numpy().astype(np.uint8)
            conf = confidence_mask(score).cpu().numpy()
            write_mask(mask_file(out, item["id"]), mask)
            write_mask(confidence_file(out, item["id"]), conf.astype(np.uint8) * 255)
            gt = item["mask"].numpy()
            if item["id"] in score_ids and (gt != IGNORE).any():
                matrix.update(mask, gt)
                per_image[item["id"]] = image_miou(mask, gt, index.num_classes)
                confident.update(np.where(conf, mask, IGNORE), np.where(conf, gt, IGNORE))

    metrics: dict[str, float] = {"images": float(len(dataset))}
    if matrix.counts.sum():
        metrics |= {
            "pseudo_mask_miou": matrix.miou(),
            "confident_miou": confident.miou(),  # inside the confidence masks only
            "confident_fraction": float(confident.counts.sum() / matrix.counts.sum()),
        }
        (out / "mask_scores.json").write_text(json.dumps(matrix.summary(), indent=1) + "\n")
    shown = images_to_show([s.id for s in dataset.samples], per_image, p.overlays)
    _overlays(index, dataset, model, out, shown, p.flip, device)
    return metrics, describe(device)


def _labels(item: dict) -> tuple[int, ...]:
    return tuple(item["labels"].nonzero().flatten().tolist())


def _overlays(
    index, dataset, model, out: Path, shown: list[tuple[str, str]], flip: bool, device
) -> None:
    position = {s.id: i for i, s in enumerate(dataset.samples)}
    rows = []
    for image_id, label in shown:
        sample = index.samples[image_id]
        image = index.read_image(sample)
        tensor = dataset[position[image_id]]["image"][None].to(device)
        edge = boundaries(model, tensor, flip)[None]
        heat = F.interpolate(edge, scale_factor=4, mode="bilinear", align_corners=False)
        heat = heat[0, 0, : image.shape[0], : image.shape[1]].cpu().numpy()
        mask = read_mask(mask_file(out, sample.id))
        gt = index.read_gt_mask(sample)
        rows.append((label, image, heat, mask, gt))
    if rows:
        titles = ("image", "boundary", "pseudo-mask", "GT")
        plot_overlays(rows, out / "mask_overlays.png", index.names_with_background, titles)
