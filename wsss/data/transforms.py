"""Joint image/mask transforms (torchvision.transforms.v2): one random draw moves both alike.

Masks are tv_tensors.Mask, so v2 resizes them with nearest neighbour and pads them with 255.
"""

import numpy as np
import torch
from PIL import Image
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


class RandomLongSide(v2.Transform):
    """Resize so that the longer side is a random integer in [LO, HI] (aspect kept; bicubic for
    images, nearest for masks): the KTSE/PSA scale augmentation."""

    def __init__(self, lo: int, hi: int):
        super().__init__()
        self.lo, self.hi = lo, hi

    def make_params(self, flat_inputs: list) -> dict:
        return {"long": int(torch.randint(self.lo, self.hi + 1, ()))}

    def transform(self, inpt, params: dict):
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.Mask):
            return inpt
        return v2.functional.resize(
            inpt,
            size=None,
            max_size=params["long"],
            interpolation=v2.InterpolationMode.BICUBIC,
            antialias=True,
        )


class RandomScale(v2.Transform):
    """Resize by a random factor in [LO, HI] (bicubic for images, nearest for masks): IRN's scale
    augmentation."""

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = lo, hi

    def make_params(self, flat_inputs: list) -> dict:
        h, w = v2.query_size(flat_inputs)
        factor = self.lo + (self.hi - self.lo) * float(torch.rand(()))
        return {"size": [max(1, round(h * factor)), max(1, round(w * factor))]}

    def transform(self, inpt, params: dict):
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.Mask):
            return inpt
        return v2.functional.resize(
            inpt, params["size"], interpolation=v2.InterpolationMode.BICUBIC, antialias=True
        )


def _rescale_flip_crop(rescale: v2.Transform, crop: int, hflip: float) -> v2.Compose:
    """RESCALE, flip, normalize, then a random CROP padded with 0 (the mean colour once
    normalized) and 255 in the masks."""
    fill = {tv_tensors.Image: 0.0, tv_tensors.Mask: IGNORE}
    return v2.Compose(
        [
            rescale,
            v2.RandomHorizontalFlip(hflip),
            *_to_float(),
            v2.RandomCrop(crop, pad_if_needed=True, fill=fill),
        ]
    )


def cam_train_transforms(long_side: tuple[int, int], crop: int, hflip: float) -> v2.Compose:
    """KTSE: a random longer side in LONG_SIDE, flip, random crop."""
    return _rescale_flip_crop(RandomLongSide(*long_side), crop, hflip)


def irn_train_transforms(scale: tuple[float, float], crop: int, hflip: float) -> v2.Compose:
    """IRN: a random rescale in SCALE, flip, random crop."""
    return _rescale_flip_crop(RandomScale(*scale), crop, hflip)


def eval_transforms() -> v2.Compose:
    """Normalize only: evaluation sees the whole image at its own size."""
    return v2.Compose(_to_float())


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """(round(s·H), round(s·W)) with Python's (half-to-even) rounding, as the official code."""
    return round(size[0] * scale), round(size[1] * scale)


def rescaled(image: np.ndarray, scale: float) -> torch.Tensor:
    """An RGB uint8 (H, W, 3) image at SCALE for multi-scale inference, normalized (3, h, w): the
    official code's PIL bicubic resize of the uint8 image to `scaled_size` (so the resampled
    values are PIL's exactly, rounded to uint8 as they are), then normalized."""
    h, w = scaled_size(image.shape[:2], scale)
    if (h, w) != image.shape[:2]:
        image = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BICUBIC))
    return eval_transforms()(tv_tensors.Image(torch.from_numpy(image.copy()).permute(2, 0, 1)))
