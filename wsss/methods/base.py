"""What a CAM method is: its params model, its network, how it optimizes and its loss.

train_cam runs any method through wsss.training.fit; extract_seeds rebuilds its network from
`model.pt`'s metadata. A method's state that persists across steps (FSR's teacher, its DINO
centres) lives in its network as parameters or buffers, so checkpoints carry it.
"""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from wsss.config.train_cam import TrainCamParams

Loss = tuple[torch.Tensor, dict[str, float]]  # the weighted total and each part, for the log


class CamMethod(ABC):
    params: ClassVar[type[TrainCamParams]]  # its train_cam section
    needs_pairs: bool = False  # batches carry a partner image per anchor (KTSE's SIE)

    def __init__(self, p: TrainCamParams) -> None:
        self.p = p

    @property
    @abstractmethod
    def network(self) -> str:
        """The network's name (a backbone or an encoder): what `weights` initializes."""

    @abstractmethod
    def network_meta(self) -> dict:
        """What rebuilds the network (saved in model.pt beside `method` and the classes)."""

    @staticmethod
    @abstractmethod
    def build_network(meta: dict, weights: Path | None) -> nn.Module:
        """The network META describes, from ImageNet WEIGHTS when given; its forward returns
        at least `logits` and `cam` (what extract_seeds reads)."""

    @abstractmethod
    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Its parameter groups carry `base_lr`, which lr_factor scales."""

    @abstractmethod
    def lr_factor(self, step: int, total: int) -> float: ...

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict, epoch: int) -> Loss: ...

    def batch_sizes(self) -> list[int]:
        """Each epoch's per-process batch size."""
        return [self.p.batch_size] * self.p.epochs


def parts_to_floats(parts: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in parts.items()}
