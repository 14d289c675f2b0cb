"""Multi-scale + flip inference of the trained networks: the CAMs of extract_seeds (KTSE's and
IRN's recipes from the same forwards) and the segmentation of evaluate, train_deeplab's
select_on_val and `wsss predict`."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from wsss.config.params import EvaluateParams
from wsss.kinds.cams import strided_size
from wsss.models.cam import CamNet
from wsss.models.deeplab import DeepLabV2
from wsss.refine.crf import crf_probs
from wsss.runtime import autocast
from wsss.tensors import up


def flip_forward(
    forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, flip: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """FORWARD's float output on X and, with FLIP, on mirrored X (still mirrored: each recipe
    mirrors it back at its own point), from one batch."""
    batch = torch.cat([x, x.flip(-1)]) if flip else x
    with autocast(x.device):
        out = forward(batch).float()
    if not flip:
        return out, None
    plain, flipped = out.chunk(2)
    return plain, flipped


@dataclass
class ImageCams:
    """Each (B, C, ., .), absent classes zeroed, each class divided by its max (+1e-5)."""

    cam: torch.Tensor  # the seed recipe, H x W
    irn_high_res: torch.Tensor  # IRN's recipe, H x W
    irn_stride4: torch.Tensor  # IRN's recipe, on the stride-4 grid


@torch.no_grad()
def multiscale_cams(
    model: CamNet,
    views: list[torch.Tensor],
    labels: torch.Tensor,
    size: tuple[int, int],
    flip: bool,
) -> ImageCams:
    """The CAMs of images of SIZE from VIEWS (the images at each inference scale, (B, 3, h, w)),
    in both recipes of the module docstring; each forward runs once and feeds both."""
    b, c = labels.shape
    up16 = tuple(16 * n for n in strided_size(size, 16))
    totals = {
        "cam": torch.zeros(b, c, *size, device=labels.device),
        "irn_high_res": torch.zeros(b, c, *up16, device=labels.device),
        "irn_stride4": torch.zeros(b, c, *strided_size(size, 4), device=labels.device),
    }

    for x in views:
        plain, flipped = flip_forward(lambda batch: model(batch).cam, x, flip)
        seed = F.relu(up(plain, size))
        irn = plain
        if flipped is not None:
            seed = seed + F.relu(up(flipped, size)).flip(-1)
            irn = plain + flipped.flip(-1)
        irn = F.relu(irn)
        totals["cam"] += seed
        for name in ("irn_high_res", "irn_stride4"):
            totals[name] += up(irn, totals[name].shape[-2:])
    totals["irn_high_res"] = totals["irn_high_res"][..., : size[0], : size[1]]
    present = labels[:, :, None, None]
    return ImageCams(
        **{
            k: v * present / ((v * present).amax((2, 3), keepdim=True) + 1e-5)
            for k, v in totals.items()
        }
    )


def seeds_from_cams(cams: torch.Tensor, threshold: float) -> torch.Tensor:
    """argmax over [threshold; CAMs]: 0 = background, c+1 = class c. CAMS (..., C, H, W)."""
    bg = torch.full_like(cams[..., :1, :, :], threshold)
    return torch.cat([bg, cams], dim=-3).argmax(dim=-3)


@torch.no_grad()
def segment(
    model: DeepLabV2, images: torch.Tensor, scales: tuple[float, ...], flip: bool, merge: str
) -> torch.Tensor:
    """(B, 3, H, W) -> (B, C, H, W) class probabilities: logits per scale (averaged with the
    flipped image's) at the input size, merged over scales by pixel-wise max or mean, softmax."""
    size = images.shape[-2:]
    merged = None
    for scale in scales:
        x = (
            images
            if scale == 1
            else F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False)
        )
        logits, flipped = flip_forward(model, x, flip)
        if flipped is not None:
            logits = (logits + flipped.flip(-1)) / 2
        logits = F.interpolate(logits, size, mode="bilinear", align_corners=False)
        if merged is None:
            merged = logits
        elif merge == "max":
            merged = torch.maximum(merged, logits)
        else:
            merged = merged + logits
    if merge == "mean":
        merged = merged / len(scales)
    return merged.softmax(1)


def predict_batch(
    model: DeepLabV2, images: torch.Tensor, raw: list[np.ndarray], p: EvaluateParams
) -> list[np.ndarray]:
    """Label maps (H, W) uint8 for a batch of normalized IMAGES (their RGB uint8 RAW for CRF)."""
    probs = segment(model, images, p.scales, p.flip, p.merge).cpu().numpy()
    if p.crf is not None:
        probs = np.stack(
            [crf_probs(rgb, prob, p.crf) for rgb, prob in zip(raw, probs, strict=True)]
        )
    return [prob.argmax(0).astype(np.uint8) for prob in probs]
