"""Backbones for the CAM network: each maps images to a feature map and says how to train it.

Attributes every backbone has: `out_channels`, `stride`, `frozen_prefixes` (parameter-name
prefixes that stay fixed) and `pretrained_bn` (True: BatchNorm stays in eval mode with frozen
affine, as for ImageNet-initialized nets; False: BatchNorm trains, as for the from-scratch toy).
"""

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet50, resnet101

from wsss.errors import WsssError
from wsss.models.efficientnet import EfficientNetLite0
from wsss.models.resnet38d import ResNet38d
from wsss.models.weights import load_strict, load_weights


class StepBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that can normalize derived images with the last training batch's statistics.

    KTSE compares the CAMs of derived images (a partner, a stacked pair, an erased copy) with the
    anchor's. ImageNet backbones keep BatchNorm frozen, so every image of a step is normalized
    the same way. A from-scratch BatchNorm has no such fixed normalization: a derived batch's own
    statistics shift exactly the CAMs being compared, and the running statistics are not
    scale-invariant: training through them at a from-scratch learning rate blows up (a frozen
    toy BatchNorm diverged within a few steps at lr 0.3). The anchor batch's statistics are both
    the same for every image of the step and scale-invariant. With `reuse` off this is
    nn.BatchNorm2d; `reuse` on (training only) normalizes with the last training forward's batch
    statistics, gradients flowing into them, and leaves the running statistics alone."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.reuse = False
        self.step_stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        if self.reuse:
            if self.step_stats is None:
                raise RuntimeError("StepBatchNorm2d: reuse before any training forward")
            mean, var = self.step_stats
            scale = self.weight * torch.rsqrt(var + self.eps)
            shift = self.bias - mean * scale
            return (x.float() * scale[:, None, None] + shift[:, None, None]).to(x.dtype)
        flat = x.float().transpose(0, 1).flatten(1)
        self.step_stats = (flat.mean(1), flat.var(1, unbiased=False))
        return super().forward(x)


def conv_norm_relu(
    cin: int, cout: int, stride: int = 1, dilation: int = 1, norm: str = "batch"
) -> nn.Sequential:
    """3x3 conv (no bias) -> norm -> ReLU: the toy networks' one block. NORM: batch, step_batch
    (StepBatchNorm2d: only the CAM network has derived forwards; it costs two extra reductions
    per layer) or group (GroupNorm(8))."""
    norms = {"batch": nn.BatchNorm2d, "step_batch": StepBatchNorm2d}
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False),
        norms[norm](cout) if norm in norms else nn.GroupNorm(8, cout),
        nn.ReLU(inplace=True),
    )


class ToyNet(nn.Module):
    """A small CNN for ToyVOC on CPU, trained from scratch (0.2 M parameters with the head at
    width 16). Output stride 4: ToyVOC objects span a few dozen pixels. BatchNorm trains fastest
    from scratch; GroupNorm makes results independent of how a batch is split across processes.
    CONTEXT extra layers (dilation 4, 8, ...) widen the receptive field from 51 px to 147 px with
    two: a segmenter must see an object's discriminative part from anywhere on its body.
    """

    stride = 4
    mid_level = "features.3"  # last layer at full stride; the dilated ones follow
    frozen_prefixes: tuple[str, ...] = ()
    pretrained_bn = False

    def __init__(self, width: int = 16, norm: str = "batch", context: int = 0):
        super().__init__()
        w = width

        def conv(cin: int, cout: int, stride: int = 1, dil: int = 1) -> nn.Sequential:
            return conv_norm_relu(cin, cout, stride, dil, norm)

        self.features = nn.Sequential(
            conv(3, w, stride=2),
            conv(w, 2 * w),
            conv(2 * w, 4 * w, stride=2),
            conv(4 * w, 4 * w),
            conv(4 * w, 4 * w, dil=2),
            conv(4 * w, 8 * w, dil=2),
            *(conv(8 * w, 8 * w, dil=4 * 2**k) for k in range(context)),
        )
        self.out_channels = 8 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class TorchvisionResNet(nn.Module):
    """torchvision ResNet-50/101 at output stride 8 (layer3/4 dilated 2/4), no pooling head."""

    stride = 8
    mid_level = "layer2"  # at stride 8; the dilated layer3 and layer4 follow
    frozen_prefixes = ("stem", "layer1")
    pretrained_bn = True

    def __init__(self, depth: int):
        super().__init__()
        net = {50: resnet50, 101: resnet101}[depth](
            weights=None, replace_stride_with_dilation=[False, True, True]
        )
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.out_channels = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def load_imagenet(self, state: dict[str, torch.Tensor]) -> None:
        """Accept torchvision's own key names (conv1.*, bn1.*, layerN.*; fc.* is dropped)."""
        renamed = {}
        for key, value in state.items():
            if key.startswith("fc."):
                continue
            head = key.split(".", 1)[0]
            stem_index = {"conv1": "0", "bn1": "1"}.get(head)
            renamed[f"stem.{stem_index}.{key.split('.', 1)[1]}" if stem_index else key] = value
        load_strict(self, renamed, "torchvision ResNet")


def build_backbone(
    name: str, weights: Path | None, width: int = 16, norm: str = "step_batch"
) -> nn.Module:
    """A backbone by name, initialized from a local ImageNet weights file when given."""
    if name == "toy":
        if weights is not None:
            raise WsssError(
                "params: train_cam.weights: the toy backbone trains from scratch; set it to null"
            )
        return ToyNet(width, norm)
    if name == "resnet38d":
        net = ResNet38d()
        if weights is not None:
            load_strict(net, load_weights(weights, mxnet_names=True), "ResNet38d")
        return net
    if name in ("resnet50", "resnet101"):
        net = TorchvisionResNet(int(name[6:]))
        if weights is not None:
            net.load_imagenet(load_weights(weights, mxnet_names=False))
        return net
    if name == "efficientnet_lite0":
        net = EfficientNetLite0(output_stride=8)
        if weights is not None:
            net.load_imagenet(load_weights(weights, mxnet_names=False))
        return net
    raise WsssError(
        f"unknown backbone '{name}' (expected toy, resnet38d, resnet50, resnet101, "
        "efficientnet_lite0)"
    )
