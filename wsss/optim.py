"""The SGD and poly learning-rate schedule the CNN methods, IRN and DeepLab share."""

import torch
from pydantic import BaseModel


def poly_factor(step: int, horizon: int, power: float) -> float:
    """(1 - step/horizon)^power, the poly schedule (held at its last value past the horizon)."""
    return (1 - min(step, horizon - 1) / horizon) ** power


def sgd(groups: list[tuple[list[torch.nn.Parameter], float]], p: BaseModel) -> torch.optim.SGD:
    """SGD over GROUPS (parameters, base lr) with P's lr, momentum and weight decay; the Loop
    sets each group's lr to its base_lr times the schedule every step."""
    return torch.optim.SGD(
        [{"params": params, "base_lr": lr} for params, lr in groups],
        lr=p.lr,
        momentum=p.momentum,
        weight_decay=p.weight_decay,
    )
