"""Destruction learning: the jigsaw (LDM), the patch-wise mid-level forward (MDC), the loss, and
train_cam + extract_seeds with `method: destruction`."""

import pytest
import torch

from wsss.config.train_cam import DestructionParams
from wsss.errors import WsssError
from wsss.methods.destruction import (
    Destruction,
    collect,
    distribute,
    distributed_mid_level,
    shuffle_patches,
)
from wsss.methods.registry import build_method
from wsss.models.backbones import ToyNet
from wsss.models.cam import CamNet


def _numbered(batch: int, grid: int, side: int) -> torch.Tensor:
    """Images whose patch k (row-major) is filled with 10·image + k."""
    cell = side // grid
    ids = torch.arange(grid * grid).reshape(grid, grid).repeat_interleave(cell, 0)
    ids = ids.repeat_interleave(cell, 1).float()
    return torch.stack([(10 * b + ids).expand(3, side, side) for b in range(batch)])


def test_shuffle_moves_whole_patches_within_each_image():
    torch.manual_seed(0)
    image = _numbered(batch=3, grid=2, side=8)
    shuffled = shuffle_patches(image, 2)
    assert shuffled.shape == image.shape
    for b in range(3):
        values = shuffled[b, 0, ::4, ::4].flatten().tolist()  # one value per patch
        assert sorted(values) == [10 * b + k for k in range(4)]  # a permutation, no mixing
        for r in range(2):
            for c in range(2):
                patch = shuffled[b, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4]
                assert (patch == patch[0, 0, 0]).all()  # patches move whole
    orders = {
        tuple(shuffle_patches(_numbered(1, 4, 16), 4)[0, 0, ::4, ::4].flatten().tolist())
        for _ in range(5)
    }
    assert len(orders) > 1  # random


def test_distribute_and_collect_are_inverse():
    feat = torch.randn(2, 5, 8, 6)
    patches = distribute(feat, 2)
    assert patches.shape == (8, 5, 4, 3)
    assert torch.equal(patches[4 + 3], feat[1, :, 4:, 3:])  # image 1, patch 3 (bottom right)
    assert torch.equal(collect(patches, 2), feat)


def test_mid_level_layers_after_it_see_independent_patches():
    torch.manual_seed(0)
    net = ToyNet(width=8).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        mid = net.features[:4](x)
        by_hand = collect(net.features[4:](distribute(mid, 2)), 2)
        with distributed_mid_level(net, 2):
            hooked = net(x)
        plain = net(x)
    assert hooked.shape == plain.shape
    assert torch.allclose(hooked, by_hand, atol=1e-6)
    assert not torch.allclose(hooked, plain, atol=1e-3)  # patch borders cut the context
    assert torch.equal(net(x), plain)  # the hook is gone after the block


def test_destruction_loss_parts_and_gradients():
    torch.manual_seed(0)
    model = CamNet(ToyNet(width=8), num_classes=4)
    batch = {
        "image": torch.randn(2, 3, 32, 32),
        "labels": torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]]),
    }
    p = DestructionParams(ldm_weight=0.5, mdc_weight=2.0)
    method = build_method(p)
    assert isinstance(method, Destruction) and not method.needs_pairs
    total, parts = method.loss(model, batch, epoch=0)
    assert set(parts) == {"cls", "ldm", "mdc", "total"}
    expected = parts["cls"] + 0.5 * parts["ldm"] + 2.0 * parts["mdc"]
    assert parts["total"] == pytest.approx(expected, rel=1e-5)
    total.backward()
    assert model.backbone.features[0][0].weight.grad.abs().sum() > 0
    off = DestructionParams(ldm_weight=0, mdc_weight=0)
    _, only_cls = Destruction(off).loss(model, batch, epoch=0)
    assert set(only_cls) == {"cls", "total"}


def test_a_grid_that_does_not_divide_the_crop_is_a_params_error():
    model = CamNet(ToyNet(width=8), num_classes=2)
    batch = {"image": torch.randn(1, 3, 30, 30), "labels": torch.tensor([[1.0, 0]])}
    with pytest.raises(WsssError, match=r"train_cam\.ldm_grid: a 30x30 map does not split"):
        Destruction(DestructionParams(ldm_grid=4)).loss(model, batch, 0)
