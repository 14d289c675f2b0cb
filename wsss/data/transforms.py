"""Joint image/mask transforms (torchvision.transforms.v2): one random draw moves both alike.

Masks are tv_tensors.Mask, so v2 resizes them with nearest neighbour and pads them with 255.
"""

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from wsss.data.classes import IGNORE

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_float() -> list[v2.Transform]:
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]


def train_transforms(
    crop: int, scale: tuple[float, float] = (0.5, 1.0), hflip: float = 0.5
) -> v2.Compose:
    """RandomResizedCrop to CROP (area fraction SCALE, aspect 3/4..4/3), flip, normalize."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(crop, scale=scale, ratio=(3 / 4, 4 / 3), antialias=True),
            v2.RandomHorizontalFlip(hflip),
            *_to_float(),
        ]
    )


def crop_transforms(crop: int, hflip: float = 0.5) -> v2.Compose:
    """Random CROP (padded: image 0, mask 255) and flip, without rescaling."""
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE}
    return v2.Compose(
        [
            v2.RandomCrop(crop, pad_if_needed=True, fill=fill),
            v2.RandomHorizontalFlip(hflip),
            *_to_float(),
        ]
    )


def eval_transforms() -> v2.Compose:
    """Normalize only: evaluation sees the whole image at its own size."""
    return v2.Compose(_to_float())
