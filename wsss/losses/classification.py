"""L_cls, the image-level loss every CAM method trains with (KTSE's Eq. 1)."""

import torch
import torch.nn.functional as F


def cls_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label soft margin of (B, C) LOGITS against 0/1 LABELS, in float32 (under bf16
    autocast the logits come in bf16)."""
    return F.multilabel_soft_margin_loss(logits.float(), labels)
