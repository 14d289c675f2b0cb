"""A torch Dataset over one split of a DatasetIndex, for every stage that trains or infers."""

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from wsss.data.classes import IGNORE
from wsss.data.index import DatasetIndex
from wsss.data.io import read_image, read_mask


class SegmentationDataset(Dataset):
    """Items: {"id", "image": Image (3,H,W), "mask": Mask (H,W) int64, "labels": (C,) multi-hot}.

    Images without a GT mask (e.g. train_aug without SBD) get an all-255 mask, so batches of
    mixed images still collate; the stages that need masks use splits that have them.
    """

    def __init__(self, index: DatasetIndex, split: str, transforms: Callable | None = None):
        self.index = index
        self.samples = index.split(split)
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        sample = self.samples[i]
        image = read_image(self.index.image_path(sample))
        mask_path = self.index.mask_path(sample)
        mask = (
            read_mask(mask_path)
            if mask_path is not None
            else np.full(image.shape[:2], IGNORE, np.uint8)
        )
        image_t = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        mask_t = tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64)))
        if self.transforms is not None:
            image_t, mask_t = self.transforms(image_t, mask_t)
        labels = torch.zeros(len(self.index.classes))
        labels[list(sample.labels)] = 1.0
        return {"id": sample.id, "image": image_t, "mask": mask_t, "labels": labels}
