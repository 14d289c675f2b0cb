"""The CAM network: backbone -> C+1-channel head -> gated pyramid pooling logits
(docs/method.md §2).

Fall = fc9(ReLU(fc8(x))) has C+1 channels, channel 0 = background; the CAM feature is
F = Fall[:, 1:].
The image-level logit of class c comes from GPP: q_c = mean(ReLU F_c * ReLU G_c) -
mean(ReLU(-F_c) * ReLU(-G_c)), G being F's pyramid (2/4/8/16 bins) fused by three gates.
"""

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wsss.models.backbones import StepBatchNorm2d

PYRAMID = (2, 4, 8, 16)


class Gate(nn.Module):
    """g(x, y): the positive and negative parts of two maps, mixed by learned per-pixel gates."""

    def __init__(self, channels: int):
        super().__init__()
        self.pos = nn.Conv2d(2 * channels, 2, 3, padding=1, bias=False)
        self.neg = nn.Conv2d(2 * channels, 2, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a_p = torch.sigmoid(self.pos(torch.cat([F.relu(x), F.relu(y)], 1)))
        a_n = torch.sigmoid(self.neg(torch.cat([F.relu(-x), F.relu(-y)], 1)))
        positive = F.relu(x) * a_p[:, :1] + F.relu(y) * a_p[:, 1:]
        negative = F.relu(-x) * a_n[:, :1] + F.relu(-y) * a_n[:, 1:]
        return (positive - negative) / 2


class GatedPyramidPooling(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.gates = nn.ModuleList(Gate(num_classes) for _ in PYRAMID[1:])

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """Image-level logits (B, C) from the CAM feature F (B, C, h, w)."""
        size = feat.shape[-2:]
        levels = [
            F.interpolate(
                F.adaptive_avg_pool2d(feat, k), size, mode="bilinear", align_corners=False
            )
            for k in PYRAMID
        ]
        fused = levels[0]
        for gate, level in zip(self.gates, levels[1:], strict=True):
            fused = gate(fused, level)
        pos = (F.relu(feat) * F.relu(fused)).mean((2, 3))
        neg = (F.relu(-feat) * F.relu(-fused)).mean((2, 3))
        return pos - neg


@dataclass
class CamOutput:
    logits: torch.Tensor  # (B, C) image-level
    fall: torch.Tensor  # (B, C+1, h, w), channel 0 = background

    @property
    def cam(self) -> torch.Tensor:
        """F: the foreground CAM feature (B, C, h, w)."""
        return self.fall[:, 1:]


class CamNet(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, hidden: int = 256):
        super().__init__()
        self.backbone = backbone
        self.stride = backbone.stride
        self.fc8 = nn.Conv2d(backbone.out_channels, hidden, 1, bias=False)
        self.fc9 = nn.Conv2d(hidden, num_classes + 1, 1, bias=False)
        self.gpp = GatedPyramidPooling(num_classes)
        for conv in (self.fc8, self.fc9):
            nn.init.xavier_uniform_(conv.weight)
        self._freeze()

    def forward(self, x: torch.Tensor) -> CamOutput:
        fall = self.fc9(F.relu(self.fc8(self.backbone(x))))
        return CamOutput(self.gpp(fall[:, 1:]), fall)

    def train(self, mode: bool = True) -> "CamNet":
        """Pretrained backbones keep BatchNorm in eval mode (frozen statistics,
        docs/method.md §2)."""
        super().train(mode)
        if self.backbone.pretrained_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    @contextmanager
    def auxiliary(self):
        """Forwards of derived images (a partner, a stacked pair, an erased copy) normalized with
        the statistics of the step's anchor batch, which KTSE compares them with (L_kt, L_local);
        see StepBatchNorm2d. ImageNet backbones have BatchNorm frozen: nothing changes for them."""
        norms = [m for m in self.modules() if isinstance(m, StepBatchNorm2d) and m.training]
        for m in norms:
            m.reuse = True
        try:
            yield self
        finally:
            for m in norms:
                m.reuse = False

    def _freeze(self) -> None:
        """The backbone's frozen prefixes and pretrained BatchNorm affines never train
        (docs/method.md §2): they stop requiring gradients once, when the network is built."""
        for name, module in self.backbone.named_modules():
            pretrained_norm = isinstance(module, nn.modules.batchnorm._BatchNorm) and bool(
                self.backbone.pretrained_bn
            )
            if (name and name.startswith(self.backbone.frozen_prefixes)) or pretrained_norm:
                module.requires_grad_(False)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]
