"""DeepLabV2 (docs/method.md §6): a dilated backbone and ASPP as the sum of four 3x3 convolutions.

ResNet-101 at output stride 8 (torchvision, strides 1/2/1/1 in layers 1-4 with dilations 2 and
4 in layers 3 and 4), trainable BatchNorm, ASPP rates 6/12/18/24 with N(0, 0.01) weights; logits
are upsampled bilinearly to the input size. ToyVOC uses the toy CNN (stride 4) with rates scaled
to its smaller feature maps.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from wsss.errors import WsssError
from wsss.models.backbones import TorchvisionResNet, ToyNet
from wsss.models.efficientnet import EfficientNetLite0
from wsss.models.weights import load_weights

TOY_CONTEXT = 2  # the toy backbone's receptive field must span a whole ToyVOC object


class ASPP(nn.Module):
    """Sum over RATES of a 3x3 conv with that dilation (bias), each straight to the classes."""

    def __init__(self, in_channels: int, num_classes: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r) for r in rates
        )
        for conv in self.branches:
            nn.init.normal_(conv.weight, 0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


class DeepLabV2(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, rates: tuple[int, ...]):
        super().__init__()
        self.backbone = backbone
        self.aspp = ASPP(backbone.out_channels, num_classes, rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, num_classes, H, W) logits."""
        logits = self.aspp(self.backbone(x))
        return F.interpolate(logits, x.shape[-2:], mode="bilinear", align_corners=False)

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(backbone, ASPP head): the head is new, the backbone may be ImageNet-initialized."""
        return list(self.backbone.parameters()), list(self.aspp.parameters())


def build_deeplab(
    name: str, weights: Path | None, num_classes: int, rates: tuple[int, ...], width: int = 16
) -> DeepLabV2:
    """DeepLabV2 on the named backbone; ResNet-101 and EfficientNet-Lite0 (output stride 8) take a
    local ImageNet state dict."""
    if name == "toy":
        if weights is not None:
            raise WsssError("train_deeplab.weights: the toy backbone trains from scratch; null")
        return DeepLabV2(ToyNet(width, context=TOY_CONTEXT), num_classes, rates)
    backbones = {
        "resnet101": lambda: TorchvisionResNet(101),
        "efficientnet_lite0": EfficientNetLite0,
    }
    if name not in backbones:
        raise WsssError(
            f"train_deeplab.backbone: unknown '{name}' "
            "(expected toy, resnet101, efficientnet_lite0)"
        )
    backbone = backbones[name]()
    if weights is not None:
        backbone.load_imagenet(load_weights(weights, mxnet_names=False))
    return DeepLabV2(backbone, num_classes, rates)
