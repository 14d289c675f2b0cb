"""The SIE pair sampler and the epoch sampler (determinism, sharding, resume)."""

import numpy as np
import torch

from wsss.data.pairs import CamTrainSet, EpochSampler
from wsss.data.transforms import cam_train_transforms
from wsss.kinds.dataset import load_index


def _set(dataset_artifact, seed=0):
    index = load_index(dataset_artifact)
    return CamTrainSet(index, "train_aug", cam_train_transforms((40, 56), 32, 0.5), seed, True)


def test_partner_shares_a_class_and_items_are_reproducible(dataset_artifact):
    ds = _set(dataset_artifact)
    for i in range(len(ds)):
        for trial in range(5):
            j = ds.partner(i, np.random.default_rng([1, trial, i]))
            assert set(ds.base.samples[i].labels) & set(ds.base.samples[j].labels)
    a, b = ds[3], _set(dataset_artifact)[3]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["pair_image"], b["pair_image"])
    assert (a["labels"] * a["pair_labels"]).sum() >= 1
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["image"], a["image"])  # a new draw every epoch


def test_partner_choice_is_uniform_over_images_of_the_class(dataset_artifact):
    ds = _set(dataset_artifact)
    i = max(range(len(ds)), key=lambda k: len(ds.base.samples[k].labels))
    rng = np.random.default_rng(0)
    picks = [ds.partner(i, rng) for _ in range(4000)]
    allowed = {j for c in ds.base.samples[i].labels for j in ds.with_class[c]}
    assert set(picks) == allowed  # every candidate, the anchor itself included when eligible


def test_epoch_sampler_shards_and_resumes():
    whole = list(EpochSampler(20, batch_size=4, seed=7))
    assert len(whole) == 20 and sorted(whole) == list(range(20))
    r0 = list(EpochSampler(20, batch_size=2, seed=7, rank=0, world_size=2))
    r1 = list(EpochSampler(20, batch_size=2, seed=7, rank=1, world_size=2))
    for step in range(5):  # rank 0 and 1 together see exactly the single process's batch
        assert sorted(r0[2 * step : 2 * step + 2] + r1[2 * step : 2 * step + 2]) == sorted(
            whole[4 * step : 4 * step + 4]
        )
    resumed = EpochSampler(20, batch_size=4, seed=7)
    resumed.set_epoch(0, skip_batches=3)
    assert list(resumed) == whole[12:] and len(resumed) == 8
    other = EpochSampler(20, batch_size=4, seed=7)
    other.set_epoch(1)
    assert list(other) != whole
