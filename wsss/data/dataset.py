"""Torch Datasets over one split of a DatasetIndex, for every stage that trains or infers."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from wsss.data.classes import IGNORE
from wsss.data.index import DatasetIndex
from wsss.data.io import image_size, read_mask
from wsss.data.transforms import rescaled
from wsss.errors import WsssError


class SegmentationDataset(Dataset):
    """Items: {"id", "image": Image (3,H,W), "mask": Mask (H,W) int64, "labels": (C,) multi-hot}
    and, with CONFIDENCE, "confidence": Mask (H,W) (0 or 255 per pixel).

    The mask is the GT mask, or `MASKS/<id>.png` when MASKS is given (IR labels, pseudo-masks).
    Images without a GT mask (e.g. train_aug without SBD) get an all-255 mask, so batches of
    mixed images still collate; the stages that need masks use splits that have them.
    """

    def __init__(
        self,
        index: DatasetIndex,
        split: str,
        transforms: Callable | None = None,
        masks: Path | None = None,
        confidence: Path | None = None,
    ):
        self.index = index
        self.samples = index.split(split)
        self.full_size = index.full_size(split)  # a smoke run's cut holds fewer
        self.transforms = transforms
        self.masks, self.confidence = masks, confidence
        for folder in (masks, confidence):
            missing = [
                s.id for s in self.samples if folder and not (folder / f"{s.id}.png").exists()
            ]
            if missing:
                raise WsssError(
                    f"{folder}: no mask for '{missing[0]}' ({len(missing)} of the "
                    f"{len(self.samples)} images of '{split}' missing)"
                )

    def __len__(self) -> int:
        return len(self.samples)

    def _mask(self, i: int, shape: tuple[int, ...]) -> np.ndarray:
        sample = self.samples[i]
        if self.masks:
            path = self.masks / f"{sample.id}.png"
            mask = read_mask(path)
        else:
            path, mask = self.index.mask_path(sample), self.index.read_gt_mask(sample)
        if mask is None:
            return np.full(shape, IGNORE, np.uint8)
        if mask.shape != shape:
            raise WsssError(f"{path}: mask is {mask.shape[::-1]}, the image {shape[::-1]} (W, H)")
        return mask

    def __getitem__(self, i: int) -> dict:
        sample = self.samples[i]
        image = self.index.read_image(sample)
        item = {
            "id": sample.id,
            "image": tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)),
        }
        item["mask"] = _as_mask(self._mask(i, image.shape[:2]))
        if self.confidence is not None:
            item["confidence"] = _as_mask(read_mask(self.confidence / f"{sample.id}.png"))
        if self.transforms is not None:
            item |= transform_item(self.transforms, item)
        labels = torch.zeros(len(self.index.classes))
        labels[list(sample.labels)] = 1.0
        item["labels"] = labels
        return item


def _as_mask(mask: np.ndarray) -> tv_tensors.Mask:
    return tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64)))


SPATIAL = ("image", "mask", "confidence")


def transform_item(transforms: Callable, item: dict) -> dict:
    """Apply one random draw of TRANSFORMS to every spatial entry of ITEM alike."""
    keys = [k for k in SPATIAL if k in item]
    return dict(zip(keys, transforms(*(item[k] for k in keys)), strict=True))


class AugmentedSet(Dataset):
    """A training view of a SegmentationDataset whose item i in epoch e is augmented by a
    generator seeded with (seed, e, i): the data a step sees does not depend on worker count,
    process count, or a resume in the middle of an epoch."""

    def __init__(self, base: SegmentationDataset, transforms: Callable, seed: int):
        self.base, self.transforms, self.seed = base, transforms, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    @property
    def full_size(self) -> int:
        return self.base.full_size

    def rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, i])

    def augmented(self, i: int, seed: int) -> dict:
        item = self.base[i]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            item |= transform_item(self.transforms, item)
        return item

    def __getitem__(self, i: int) -> dict:
        return self.augmented(i, int(self.rng(i).integers(2**62)))


class MultiScaleSet(Dataset):
    """Items of an untransformed SegmentationDataset plus "views": the normalized image at each
    of SCALES, resized as the official inference resizes it (`transforms.rescaled`)."""

    def __init__(self, base: SegmentationDataset, scales: tuple[float, ...]):
        self.base, self.scales = base, scales

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = self.base[i]
        image = item["image"].permute(1, 2, 0).numpy()
        return item | {"views": [rescaled(image, s) for s in self.scales]}


def size_batches(dataset: SegmentationDataset, batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of images of one size (read from the headers only), for
    inference on whole images."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, sample in enumerate(dataset.samples):
        by_size.setdefault(image_size(dataset.index.image_path(sample)), []).append(i)
    return [
        ids[k : k + batch_size] for ids in by_size.values() for k in range(0, len(ids), batch_size)
    ]
