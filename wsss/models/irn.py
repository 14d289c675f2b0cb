"""IRNet (docs/method.md §5): a boundary branch and a displacement branch on a five-level feature
pyramid, trained from IR labels through inter-pixel affinities.

Pyramids: torchvision ResNet-50 at output stride 16 (strides 2, 2, 2, 1, no dilation), frozen
with ImageNet weights, levels stem/layer1..4 (64/256/512/1024/2048 channels); EfficientNet-Lite0,
frozen the same way; or a small one trained from scratch for ToyVOC. Both branches predict on
the stride-4 grid of level 0.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50

from wsss.errors import WsssError
from wsss.models.backbones import TorchvisionResNet, conv_norm_relu
from wsss.models.efficientnet import EfficientNetLite0
from wsss.models.weights import load_weights


class FrozenPyramid(nn.Module):
    """An ImageNet pyramid IRN does not train: BatchNorm in eval mode, features detached.
    Subclasses give `levels` (the five feature maps) and `channels`."""

    trainable = False

    def train(self, mode: bool = True) -> "FrozenPyramid":
        return super().train(False)  # BatchNorm statistics stay ImageNet's

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return self.levels(x)


class ResNet50Pyramid(FrozenPyramid):
    """Frozen ImageNet ResNet-50 at output stride 16, levels stem/layer1..4."""

    def __init__(self):
        super().__init__()
        net = resnet50(weights=None)
        net.layer4[0].conv2.stride = (1, 1)  # stride 1 in the last stage, no dilation: OS16
        net.layer4[0].downsample[0].stride = (1, 1)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.channels = (64, 256, 512, 1024, 2048)
        self.requires_grad_(False)

    def load_imagenet(self, state: dict[str, torch.Tensor]) -> None:
        TorchvisionResNet.load_imagenet(self, state)

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [self.stem(x)]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            levels.append(layer(levels[-1]))
        return levels


class EfficientNetPyramid(FrozenPyramid, EfficientNetLite0):
    """Frozen ImageNet EfficientNet-Lite0 at output stride 16 (its last stride-2 stage dilated),
    levels at strides 4, 4, 8, 16, 16 (24/24/40/112/320 channels)."""

    def __init__(self):
        super().__init__(output_stride=16)
        self.requires_grad_(False)


class ToyPyramid(nn.Module):
    """From scratch for ToyVOC: strides 4, 4, 8, 8, 8 (the last two dilated), trained with the
    branches (there are no pretrained features to freeze)."""

    trainable = True

    def __init__(self, width: int = 16):
        w = width
        super().__init__()
        self.levels = nn.ModuleList(
            [
                nn.Sequential(conv_norm_relu(3, w, 2), conv_norm_relu(w, 2 * w, 2)),
                conv_norm_relu(2 * w, 2 * w),
                conv_norm_relu(2 * w, 4 * w, 2),
                conv_norm_relu(4 * w, 4 * w, dilation=2),
                conv_norm_relu(4 * w, 8 * w, dilation=4),
            ]
        )
        self.channels = (2 * w, 2 * w, 4 * w, 4 * w, 8 * w)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = []
        for level in self.levels:
            x = level(x)
            levels.append(x)
        return levels


def _unit(cin: int, cout: int, groups: int) -> nn.Sequential:
    """1x1 conv (no bias) -> GroupNorm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 1, bias=False), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True)
    )


def _resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


class IRNet(nn.Module):
    """Boundary logits (B, 1, h, w) and displacements (B, 2, h, w) on level 0's grid.

    Edge: each level -> 1x1 -> EDGE channels -> GN(4) -> ReLU, resized to the grid, concatenated,
    1x1 (bias) -> 1. Displacement: levels 0/1 -> DISP/4 (GN 8) and DISP/2 (GN 16); levels 2-4 ->
    DISP (GN 16) at level 2's size, concatenated -> DISP, resized to the grid; all -> DISP -> 1x1
    -> 2. EDGE 32 and DISP 256 are IRN's widths; the toy preset uses fewer.
    """

    def __init__(self, pyramid: nn.Module, edge: int = 32, disp: int = 256):
        super().__init__()
        self.pyramid = pyramid
        c = pyramid.channels
        self.edge_levels = nn.ModuleList(_unit(ch, edge, 4) for ch in c)
        self.edge_out = nn.Conv2d(5 * edge, 1, 1)
        self.disp_low = nn.ModuleList([_unit(c[0], disp // 4, 8), _unit(c[1], disp // 2, 16)])
        self.disp_high = nn.ModuleList(_unit(ch, disp, 16) for ch in c[2:])
        self.disp_mid = _unit(3 * disp, disp, 16)
        self.disp_out = nn.Sequential(
            _unit(disp // 4 + disp // 2 + disp, disp, 16), nn.Conv2d(disp, 2, 1)
        )

    def branch_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(edge branch [+ a trainable pyramid], displacement branch): IRN trains the second
        at 10x the learning rate."""
        disp = [*self.disp_low.parameters(), *self.disp_high.parameters()]
        disp += [*self.disp_mid.parameters(), *self.disp_out.parameters()]
        edge = [*self.edge_levels.parameters(), *self.edge_out.parameters()]
        if self.pyramid.trainable:
            edge += list(self.pyramid.parameters())
        return edge, disp

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        levels = self.pyramid(x)
        grid = levels[0].shape[-2:]
        edge = [_resize(u(f), grid) for u, f in zip(self.edge_levels, levels, strict=True)]
        high_size = levels[2].shape[-2:]
        high = [_resize(u(f), high_size) for u, f in zip(self.disp_high, levels[2:], strict=True)]
        mid = _resize(self.disp_mid(torch.cat(high, 1)), grid)
        low = [u(f) for u, f in zip(self.disp_low, levels[:2], strict=True)]
        return self.edge_out(torch.cat(edge, 1)), self.disp_out(torch.cat([*low, mid], 1))


def build_irnet(name: str, weights: Path | None, width: int, edge: int, disp: int) -> IRNet:
    """IRNet on the named pyramid; ResNet-50 takes a local ImageNet state dict."""
    if name == "toy":
        if weights is not None:
            raise WsssError("train_irn.weights: the toy pyramid trains from scratch; set null")
        return IRNet(ToyPyramid(width), edge, disp)
    pyramids = {"resnet50": ResNet50Pyramid, "efficientnet_lite0": EfficientNetPyramid}
    if name not in pyramids:
        raise WsssError(
            f"train_irn.backbone: unknown '{name}' (expected toy, resnet50, efficientnet_lite0)"
        )
    pyramid = pyramids[name]()
    if weights is not None:
        pyramid.load_imagenet(load_weights(weights, mxnet_names=False))
    return IRNet(pyramid, edge, disp)
