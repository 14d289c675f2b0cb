"""How the CNN CAM methods (KTSE, baseline, destruction) optimize: SGD with poly decay."""

import torch
from torch import nn

from wsss.params import TrainCamParams
from wsss.training import poly_factor, sgd


class SgdPoly:
    p: TrainCamParams

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """SGD on every trainable parameter at train_cam.lr (one group: docs/method.md §2)."""
        return sgd([(model.trainable_parameters(), self.p.lr)], self.p)

    def lr_factor(self, step: int, total: int) -> float:
        return poly_factor(step, self.p.poly_horizon_steps or total, self.p.poly_power)
