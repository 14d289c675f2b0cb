"""FSR's self-distillation loss (DINO's cross-entropy, docs/method.md §8)."""

import torch
import torch.nn.functional as F


def dino_loss(
    teacher: torch.Tensor, student: torch.Tensor, center: torch.Tensor, t_temp: float, s_temp: float
) -> torch.Tensor:
    """Cross-entropy of the student's prototype distribution against the centred, sharpened
    teacher's, averaged over rows; 0 for no rows."""
    if len(student) == 0:
        return student.sum() * 0
    target = F.softmax((teacher - center) / t_temp, dim=-1)
    return -(target * F.log_softmax(student / s_temp, dim=-1)).sum(-1).mean()
