"""The CNN CAM methods' shared part (baseline, KTSE, destruction): a backbone with the CAM head,
SGD with poly decay."""

from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from wsss.methods.base import CamMethod
from wsss.models.backbones import build_backbone
from wsss.models.cam import CamNet
from wsss.params import TrainCamParams, Width
from wsss.training import poly_factor, sgd


class CnnCamParams(TrainCamParams):
    backbone: Literal["toy", "resnet38d", "resnet50", "resnet101", "efficientnet_lite0"] = "toy"
    # weights: MXNet .params (resnet38d) or a torch state dict; null for toy
    toy_width: Width = 16
    # step_batch: BatchNorm whose derived forwards (KTSE's partner, stacked pair, erased copy)
    # reuse the anchor batch's statistics (StepBatchNorm2d); group: GroupNorm, DDP-split invariant
    toy_norm: Literal["step_batch", "group"] = "step_batch"
    lr: float = Field(default=0.3, gt=0)  # ToyVOC trains from scratch: 30x the ImageNet-init lr
    momentum: float = Field(default=0.0005, ge=0, lt=1)  # the official effective value (§10.1)
    weight_decay: float = Field(default=5e-4, ge=0)
    poly_power: float = Field(default=0.9, ge=0)
    poly_horizon_steps: int | None = Field(default=None, ge=1)  # None: the steps actually run


class CnnCamMethod(CamMethod):
    p: CnnCamParams

    @property
    def network(self) -> str:
        return self.p.backbone

    def network_meta(self) -> dict:
        return {
            "backbone": self.p.backbone,
            "toy_width": self.p.toy_width,
            "toy_norm": self.p.toy_norm,
        }

    @staticmethod
    def build_network(meta: dict, weights: Path | None) -> CamNet:
        backbone = build_backbone(meta["backbone"], weights, meta["toy_width"], meta["toy_norm"])
        return CamNet(backbone, meta["num_classes"])

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """SGD on every trainable parameter at train_cam.lr (one group: docs/method.md §2)."""
        return sgd([(model.trainable_parameters(), self.p.lr)], self.p)

    def lr_factor(self, step: int, total: int) -> float:
        return poly_factor(step, self.p.poly_horizon_steps or total, self.p.poly_power)
