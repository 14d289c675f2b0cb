"""Tensor helpers shared by the losses and inference."""

import torch
import torch.nn.functional as F


def up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to SIZE (align_corners=False, as all the official code)."""
    return F.interpolate(x, tuple(size), mode="bilinear", align_corners=False)
