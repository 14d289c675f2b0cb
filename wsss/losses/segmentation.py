"""The segmentation loss on pseudo-masks: pixel cross-entropy, 255 ignored, and pixels outside
the confidence mask ignored or down-weighted."""

import torch
import torch.nn.functional as F

from wsss.data.classes import IGNORE


def pseudo_mask_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    confidence: torch.Tensor | None = None,
    low_weight: float = 1.0,
) -> torch.Tensor:
    """Weighted mean of CE(logits, target) over the pixels whose target is not 255.

    CONFIDENCE (B, H, W) marks confident pixels (255 or True); the others weigh LOW_WEIGHT
    (0: ignored, 1: no effect). All pixels ignored -> 0 with a gradient path, never NaN."""
    ce = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="none")
    weight = (target != IGNORE).float()
    if confidence is not None:
        confident = confidence.bool() if confidence.dtype == torch.bool else confidence > 0
        weight = weight * torch.where(confident, 1.0, low_weight)
    return (ce * weight).sum() / weight.sum().clamp(min=1)
