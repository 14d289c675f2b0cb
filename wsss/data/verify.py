"""Checking a dataset's files before any stage trusts them, and hashing them for its digest."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from wsss.data.classes import IGNORE
from wsss.data.index import DatasetIndex, Sample
from wsss.data.io import open_image, read_hashed, read_mask
from wsss.errors import WsssError


@dataclass(frozen=True)
class SampleCheck:
    id: str
    height: int
    width: int
    files: dict[str, tuple[str, int]]  # relative path -> (sha256, size)
    # classes the GT mask holds that the image's labels lack (a CAM is never asked for them)
    unlabelled: tuple[int, ...] = ()


def check_sample(index: DatasetIndex, sample: Sample, decode: bool = True) -> SampleCheck:
    """Hash the sample's files and, if DECODE, check the image decodes and the mask matches it."""
    files = {}
    image_path = index.image_path(sample)
    data, files[sample.image] = read_hashed(image_path)
    height = width = 0
    unlabelled: tuple[int, ...] = ()
    if decode:
        width, height = open_image(image_path, data).size
    mask_path = index.mask_path(sample)
    if mask_path is not None:
        data, files[sample.mask] = read_hashed(mask_path)
        if decode:
            mask = read_mask(mask_path, data)
            if mask.shape != (height, width):
                raise WsssError(
                    f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                    f"{width}x{height}"
                )
            values = np.unique(mask)
            bad = values[(values >= index.num_classes) & (values != IGNORE)]
            if bad.size:
                raise WsssError(
                    f"{mask_path}: mask value {int(bad[0])} is not a class id "
                    f"(expected 0..{index.num_classes - 1} or {IGNORE})"
                )
            present = (int(v) - 1 for v in values if 0 < v < index.num_classes)  # 0: background
            unlabelled = tuple(c for c in present if c not in sample.labels)
    return SampleCheck(sample.id, height, width, files, unlabelled)


def check_samples(
    index: DatasetIndex, samples: list[Sample], decode: bool, workers: int
) -> Iterator[SampleCheck]:
    """check_sample over SAMPLES in order; decoding releases the GIL, so threads pay off."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        yield from pool.map(lambda s: check_sample(index, s, decode), samples)
