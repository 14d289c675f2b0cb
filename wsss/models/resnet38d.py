"""ResNet38d (wide pre-activation ResNet, OS8), the KTSE/PSA/AFA CAM backbone (docs/method.md §2).

Module names follow the convention the original MXNet ImageNet weights map onto (b2, b2_1, ...,
bn_branch2a, conv_branch2a, ...), so `wsss.models.weights` can load them without renaming tables.
"""

import torch
import torch.nn.functional as F
from torch import nn


class _Block(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3, BN-ReLU-conv3x3, 1x1 shortcut on change."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1, first_dil: int = 1, dil=1):
        super().__init__()
        self.same_shape = cin == cout and stride == 1
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, mid, 3, stride, first_dil, first_dil, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(mid)
        self.conv_branch2b1 = nn.Conv2d(mid, cout, 3, 1, dil, dil, bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn_branch2a(x))
        shortcut = x if self.same_shape else self.conv_branch1(act)
        out = self.conv_branch2a(act)
        out = self.conv_branch2b1(F.relu(self.bn_branch2b1(out)))
        return out + shortcut


class _Bottleneck(nn.Module):
    """Pre-activation bottleneck: 1x1 (out/4) -> 3x3 dilated (out/2) -> 1x1 (out), dropout."""

    def __init__(self, cin: int, cout: int, dil: int, dropout: float):
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, cout // 4, 1, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(cout // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(cout // 4, cout // 2, 3, 1, dil, dil, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(cout // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(cout // 2, cout, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(act)
        out = self.conv_branch2a(act)
        out = self.conv_branch2b1(self.dropout_2b1(F.relu(self.bn_branch2b1(out))))
        out = self.conv_branch2b2(self.dropout_2b2(F.relu(self.bn_branch2b2(out))))
        return out + shortcut


class ResNet38d(nn.Module):
    """Features (B, 4096, H/8, W/8). conv1a and b2* are frozen in KTSE (see `frozen_prefixes`)."""

    out_channels = 4096
    stride = 8
    mid_level = "b4_5"  # at stride 8; the dilated b5..b7 follow
    frozen_prefixes = ("conv1a", "b2")  # plus every BatchNorm (eval mode, frozen affine)
    pretrained_bn = True

    def __init__(self, dropout: float = 0.2):
        super().__init__()
        self.conv1a = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.b2 = _Block(64, 128, 128, stride=2)
        self.b2_1 = _Block(128, 128, 128)
        self.b2_2 = _Block(128, 128, 128)
        self.b3 = _Block(128, 256, 256, stride=2)
        self.b3_1 = _Block(256, 256, 256)
        self.b3_2 = _Block(256, 256, 256)
        self.b4 = _Block(256, 512, 512, stride=2)
        for i in range(1, 6):
            setattr(self, f"b4_{i}", _Block(512, 512, 512))
        self.b5 = _Block(512, 512, 1024, first_dil=1, dil=2)
        self.b5_1 = _Block(1024, 512, 1024, first_dil=2, dil=2)
        self.b5_2 = _Block(1024, 512, 1024, first_dil=2, dil=2)
        self.b6 = _Bottleneck(1024, 2048, dil=4, dropout=dropout)
        self.b7 = _Bottleneck(2048, 4096, dil=4, dropout=dropout)
        self.bn7 = nn.BatchNorm2d(4096)
        self._blocks = [
            "b2",
            "b2_1",
            "b2_2",
            "b3",
            "b3_1",
            "b3_2",
            "b4",
            *[f"b4_{i}" for i in range(1, 6)],
            "b5",
            "b5_1",
            "b5_2",
            "b6",
            "b7",
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1a(x)
        for name in self._blocks:
            x = getattr(self, name)(x)
        return F.relu(self.bn7(x))
