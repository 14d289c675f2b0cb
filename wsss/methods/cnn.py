"""The CNN CAM methods' shared part (baseline, KTSE, destruction): a backbone with the CAM head,
SGD with poly decay."""

from pathlib import Path

import torch
from torch import nn

from wsss.config.train_cam import CnnCamParams
from wsss.methods.base import CamMethod
from wsss.models.backbones import build_backbone
from wsss.models.cam import CamNet
from wsss.optim import poly_factor, sgd


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
