"""CAM training items: an augmented image with its labels and, for SIE, a partner image that
shares at least one class (docs/method.md §2: pick one of the anchor's classes, then a random
image of that class, possibly the anchor itself).

Every random choice of item i in epoch e comes from a generator seeded by (seed, e, i)
(AugmentedSet), the partner included.
"""

from collections import defaultdict
from collections.abc import Callable

import numpy as np
from torch.utils.data import Sampler

from wsss.data.dataset import AugmentedSet, SegmentationDataset
from wsss.data.index import DatasetIndex


class CamTrainSet(AugmentedSet):
    def __init__(
        self, index: DatasetIndex, split: str, transforms: Callable, seed: int, pairs: bool
    ):
        super().__init__(SegmentationDataset(index, split), transforms, seed)
        self.pairs = pairs
        self.with_class: dict[int, list[int]] = defaultdict(list)
        for i, sample in enumerate(self.base.samples):
            for c in sample.labels:
                self.with_class[c].append(i)

    def partner(self, i: int, rng: np.random.Generator) -> int:
        """A random image containing one random class of image i."""
        c = int(rng.choice(self.base.samples[i].labels))
        return int(rng.choice(self.with_class[c]))

    def __getitem__(self, i: int) -> dict:
        rng = self.rng(i)
        item = self.augmented(i, int(rng.integers(2**62)))
        if self.pairs:
            j = self.partner(i, rng)
            other = self.augmented(j, int(rng.integers(2**62)))
            item["pair_image"], item["pair_labels"] = other["image"], other["labels"]
        return item


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, this process's share of it (rank::world_size, whole
    batches only), starting after the batches already done (resume). STEPS batches instead of
    the whole ones (a smoke run) repeat the permutation as often as they need."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        steps: int | None = None,
    ):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.steps = rank, world_size, steps
        self.epoch = 0
        self.skip_batches = 0

    def steps_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world_size) if self.steps is None else self.steps

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def __iter__(self):
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        used = np.resize(perm, self.steps_per_epoch() * self.batch_size * self.world_size)
        mine = used.reshape(-1, self.world_size, self.batch_size)[:, self.rank]
        return iter(mine[self.skip_batches :].reshape(-1).tolist())

    def __len__(self) -> int:
        return (self.steps_per_epoch() - self.skip_batches) * self.batch_size
