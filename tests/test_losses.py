"""KTSE loss terms, PAR and GPP on tiny hand-computed tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from wsss.config.train_cam import BaselineParams, KtseParams
from wsss.losses.ktse import (
    global_alignment,
    inter_class_loss,
    margin_excess,
    maxnorm,
    mga_losses,
    pseudo_labels,
    safe_ce,
)
from wsss.methods.registry import build_method
from wsss.models.backbones import StepBatchNorm2d, ToyNet
from wsss.models.cam import PYRAMID, CamNet, Gate
from wsss.refine.par import PAR, neighbour_distances, neighbours, propagate


def test_maxnorm_per_channel():
    x = torch.tensor([[[[-1.0, 0.0], [2.0, 4.0]]]])
    out = maxnorm(x)  # ReLU -> [0, 0, 2, 4]; min 0, max 4
    expected = torch.tensor([[[[0.0, 0.0], [(2 - 1e-5) / (4 + 1e-5), (4 - 1e-5) / (4 + 1e-5)]]]])
    assert torch.allclose(out, expected)


def test_safe_ce_is_zero_not_nan_when_everything_is_ignored():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), 255)
    loss = safe_ce(logits, target)
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(logits.grad).all()
    target[0, 0, 0] = 1
    expected = -torch.log_softmax(logits[0, :, 0, 0], 0)[1]
    assert safe_ce(logits, target).item() == pytest.approx(expected.item())


def test_margin_excess_counts_only_what_exceeds_the_margin():
    a = torch.tensor([[[[1.0, 0.5]], [[3.0, 0.0]]]])  # (1, 2 classes, 1, 2)
    b = torch.tensor([[[[0.9, 0.5]], [[1.0, 0.0]]]])
    y = torch.tensor([[1.0, 0.0]])  # class 1 absent: its large excess does not count
    # class 0: relu(0.1 - 0.05) = 0.05 and relu(-0.05) = 0; mean over 4 elements
    assert margin_excess(a, b, y, 0.05).item() == pytest.approx(0.05 / 4)


def test_inter_class_loss_value_and_stop_gradient():
    prob = torch.zeros(1, 4, 1, 2)  # channel 0 is background and is not used
    prob[0, 1:, 0, 0] = torch.tensor([0.9, 0.5, 0.2])
    prob[0, 1:, 0, 1] = torch.tensor([0.3, 0.3, 0.1])  # tie: every max is zeroed -> V2nd 0.1
    prob.requires_grad_(True)
    region = torch.tensor([[[True, True]]])
    loss = inter_class_loss(prob, region)
    expected = ((0.5 - 0.9) + (0.1 - 0.3)) / (2 + 1e-5)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    assert prob.grad[0, 1, 0, 0] == 0  # V_max is detached
    assert prob.grad[0, 2, 0, 0] == pytest.approx(1 / (2 + 1e-5))
    masked = inter_class_loss(prob.detach(), torch.tensor([[[True, False]]]))
    assert masked.item() == pytest.approx((0.5 - 0.9) / (1 + 1e-5))


def test_global_alignment():
    fm = torch.ones(1, 2, 2, 2)
    fa = torch.zeros(1, 2, 2, 2)
    fa[0, 1] = -5.0  # ReLU'd away
    y = torch.tensor([[1.0, 1.0]])
    assert global_alignment(fm, fa, y).item() == pytest.approx(1.0)
    assert global_alignment(fm, fa, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(0.5)


def test_pseudo_labels_three_zones_without_par():
    feat = torch.zeros(1, 2, 1, 3)
    feat[0, 1] = torch.tensor([1.0, 0.2, 0.0])  # sure, unsure (0.15 < 0.2 < 0.3), background
    feat[0, 0] = 5.0  # an absent class, however strong, never wins
    y = torch.tensor([[0.0, 1.0]])
    image = torch.zeros(1, 3, 8, 24)
    feat = feat.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)  # 8-px-wide zones
    labels = pseudo_labels(feat, y, image, PAR(iterations=0))[0, 4]
    assert labels[2:6].tolist() == [2] * 4  # interiors only: zone edges are interpolated
    assert labels[10:14].tolist() == [255] * 4
    assert labels[18:22].tolist() == [0] * 4


def _two_region_image():
    image = torch.zeros(1, 3, 32, 32)
    image[..., 16:] = 1.0
    maps = torch.zeros(1, 2, 32, 32)
    maps[0, 0, :, :13] = 1
    maps[0, 1, :, 19:] = 1
    maps[0, :, :, 13:19] = 0.5  # undecided band across the colour edge at column 16
    return image, maps


def test_par_follows_the_colour_edge_and_is_batched():
    image, maps = _two_region_image()
    refined = PAR()(image, maps)
    decided = refined.argmax(1)[0]
    assert (decided[:, :16] == 0).all() and (decided[:, 16:] == 1).all()
    # mass grows by exactly (1 + 0.01)^10: both affinities are softmaxes, no renormalization
    assert torch.allclose(refined.sum(1), torch.full((1, 32, 32), 1.01**10), atol=1e-4)
    both = PAR()(image.repeat(2, 1, 1, 1), torch.cat([maps, maps.flip(1)]))
    assert torch.allclose(both[0], refined[0], atol=1e-5)
    assert torch.allclose(both[1], refined[0].flip(0), atol=1e-5)


def test_par_propagation_equals_the_neighbour_stack():
    par = PAR()
    image, maps = torch.rand(2, 3, 20, 20), torch.rand(2, 4, 20, 20)
    aff = par.affinity(image)
    stacked = (neighbours(maps, par.dilations) * aff.unsqueeze(1)).sum(2)
    assert torch.allclose(propagate(maps, aff, par.dilations), stacked, atol=1e-6)
    dist = neighbour_distances((1, 2))
    assert dist.tolist()[:8] == pytest.approx(
        [math.sqrt(2), 1, math.sqrt(2), 1, 1, math.sqrt(2), 1, math.sqrt(2)]
    )
    assert dist.shape == (16,)


def test_gpp_shapes_and_logit_formula():
    net = CamNet(ToyNet(8), num_classes=3).eval()
    out = net(torch.randn(2, 3, 40, 56))
    assert out.logits.shape == (2, 3) and out.fall.shape == (2, 4, 10, 14)
    assert out.cam.shape == (2, 3, 10, 14)
    assert len(net.gpp.gates) == len(PYRAMID) - 1
    gate = Gate(3)
    torch.nn.init.constant_(gate.pos.weight, 0.0)  # sigmoid(0) = 0.5 for every gate
    torch.nn.init.constant_(gate.neg.weight, 0.0)
    x, y = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    expected = (0.5 * x.relu() + 0.5 * y.relu() - 0.5 * (-x).relu() - 0.5 * (-y).relu()) / 2
    assert torch.allclose(gate(x, y), expected)


def test_warmup_trains_classification_only_and_switches_add_their_terms():
    torch.manual_seed(0)
    net = CamNet(ToyNet(8), num_classes=4)
    y = torch.tensor([[1.0, 0, 0, 0], [1.0, 1.0, 0, 0]])
    batch = {
        "image": torch.randn(2, 3, 32, 32),
        "labels": y,
        "pair_image": torch.randn(2, 3, 32, 32),
        "pair_labels": y,
    }
    ktse = build_method(KtseParams(warmup_epochs=1, par_iterations=2))
    _, parts = ktse.loss(net, batch, epoch=0)
    assert set(parts) == {"cls", "total"}
    _, parts = ktse.loss(net, batch, epoch=1)
    assert {"bg", "fg", "inter", "kt", "seg_two", "local", "global"} <= set(parts)
    assert all(math.isfinite(v) for v in parts.values())
    _, parts = build_method(BaselineParams()).loss(net, batch, epoch=5)
    assert set(parts) == {"cls", "total"}
    only_mga = KtseParams(warmup_epochs=0, sie=False, ssr=False, par_iterations=1)
    _, parts = build_method(only_mga).loss(net, batch, epoch=0)
    assert set(parts) == {"cls", "local", "global", "total"}


def test_voc_preset_reproduces_the_official_step_count():
    """10 warm-up epochs at batch 8 and 30 at 16 over 10,582 images: the 33,050 steps the
    official code ran, on a poly horizon of 52,880 it never reaches (docs/method.md §10.2)."""
    from pathlib import Path

    from wsss.config.params import load_params
    from wsss.optim import poly_factor
    from wsss.training import epoch_steps

    p = load_params(Path(__file__).parents[1] / "params" / "voc.yaml").train_cam
    steps = epoch_steps(10582, build_method(p).batch_sizes())
    assert sum(steps) == 33050 and steps[0] == 1322 and steps[-1] == 661
    lr = p.lr * poly_factor(33050, p.poly_horizon_steps, p.poly_power)
    assert lr == pytest.approx(0.01 * (1 - 33050 / 52880) ** 0.9)


def test_pseudo_labels_never_invert_a_class_without_positive_activation():
    feat = torch.full((1, 1, 8, 8), -1.0)
    feat[0, 0, :, :4] = -5.0  # all negative: no pixel of the present class is evidence for it
    labels = pseudo_labels(feat, torch.ones(1, 1), torch.zeros(1, 3, 8, 8), PAR(iterations=0))
    assert (labels == 0).all()


def test_auxiliary_forwards_reuse_the_anchor_batch_normalization():
    torch.manual_seed(0)
    net = CamNet(ToyNet(8, norm="step_batch"), num_classes=2).train()
    bn = next(m for m in net.modules() if isinstance(m, StepBatchNorm2d))
    anchor = torch.randn(2, 3, 16, 16)
    out = net(anchor).fall
    before = bn.running_mean.clone()
    with net.auxiliary():
        same = net(anchor).fall  # the anchor again: normalized exactly as in its own forward
        shifted = net(anchor + 3).fall  # a brighter copy keeps its shift (own stats remove it)
    assert torch.allclose(same, out, atol=1e-5)
    assert torch.equal(bn.running_mean, before)  # derived images leave the statistics alone
    assert not bn.reuse  # and the context restores training behaviour
    assert not torch.allclose(shifted, net(anchor + 3).fall, atol=1e-3)
    assert not torch.equal(bn.running_mean, before)
    # gradients of a derived image's loss reach the anchor's statistics' inputs
    image = anchor.clone().requires_grad_(True)
    net(image)
    with net.auxiliary():
        net(torch.randn(2, 3, 16, 16)).fall.square().mean().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_seg_loss_splits_simple_and_complex_images():
    ktse = build_method(KtseParams())
    prob = torch.rand(2, 4, 3, 3, requires_grad=True)
    target = torch.tensor([[[1, 1, 0]] * 3, [[2, 3, 0]] * 3])
    y = torch.tensor([[1.0, 0, 0], [0, 1.0, 1.0]])  # image 0 simple, image 1 complex
    region = torch.ones(2, 1, 3, 3, dtype=torch.bool)
    total, parts = ktse.seg_loss(prob, target, y, region)
    fg_only_simple = target.clone()
    fg_only_simple[1] = 255
    fg_only_simple[fg_only_simple == 0] = 255
    assert parts["fg"].item() == pytest.approx(safe_ce(prob, fg_only_simple).item())
    assert parts["inter"].item() == pytest.approx(
        inter_class_loss(prob, torch.tensor([[[False] * 3] * 3, [[True] * 3] * 3])).item()
    )
    total.backward()
    assert prob.grad[1, 2:, :, :2].abs().sum() > 0  # complex image: its classes get gradient


@pytest.mark.parametrize("students_only", [False, True])
def test_mga_gradients_reach_students_or_both_sides(students_only):
    torch.manual_seed(0)
    fm = (torch.rand(1, 2, 3, 3) * 2).requires_grad_()
    fa = torch.rand(1, 2, 3, 3).requires_grad_()
    keep, y = torch.ones(1, 1, 3, 3), torch.tensor([[1.0, 1.0]])
    local, glob = mga_losses(fm, fa, keep, y, 0.05, students_only)
    assert local.item() == pytest.approx(margin_excess(fm, fa, y, 0.05).item())
    assert glob.item() == pytest.approx(global_alignment(fm, fa, y).item())
    d_local = torch.autograd.grad(local, (fm, fa), allow_unused=True, materialize_grads=True)
    d_global = torch.autograd.grad(glob, (fm, fa), allow_unused=True, materialize_grads=True)
    assert d_local[1].abs().sum() > 0 and d_global[0].abs().sum() > 0  # the students learn
    # the teachers (erased image for L_local, anchor for L_global) only when not students_only
    assert (d_local[0].abs().sum() > 0) != students_only
    assert (d_global[1].abs().sum() > 0) != students_only


def _labels_by_present_classes(feat, y, image01, par, taus=(0.3, 0.15)):
    """The official rule written out image by image: [tau; the present classes' Abar] is
    selected, then softmax, PAR, argmax, and the argmax mapped back to class ids."""
    size, half = image01.shape[-2:], (image01.shape[-2] // 2, image01.shape[-1] // 2)
    peak = feat.amax(dim=(2, 3), keepdim=True).clamp(min=0)
    abar = F.interpolate(feat / (peak + 1e-5), size, mode="bilinear", align_corners=False)
    maps = []
    for tau in taus:
        labels = []
        for i in range(len(feat)):
            keys = torch.cat([torch.zeros(1, dtype=torch.long), y[i].nonzero()[:, 0] + 1])
            scores = torch.cat([torch.full_like(abar[i, :1], tau), abar[i]])[keys][None]
            scores = F.interpolate(scores, half, mode="bilinear", align_corners=False)
            small = F.interpolate(image01[[i]], half, mode="bilinear", align_corners=False)
            refined = par(small, scores.softmax(1))
            up = F.interpolate(refined, size, mode="bilinear", align_corners=False)
            labels.append(keys[up.argmax(1)[0]])
        maps.append(torch.stack(labels))
    strict, loose = maps
    return torch.where(strict != 0, strict, torch.where(loose == 0, 0, 255))


def test_pseudo_label_softmax_runs_over_background_and_present_classes_only():
    torch.manual_seed(0)
    feat = torch.randn(2, 6, 8, 8) + 0.5
    y = torch.tensor([[1.0, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]])
    image = torch.rand(2, 3, 32, 32)
    par = PAR((1, 2, 4), iterations=5)
    seen = []

    class Spy(PAR):
        def forward(self, image, maps):
            seen.append(maps)
            return super().forward(image, maps)

    spy = Spy((1, 2, 4), iterations=5)
    labels = pseudo_labels(feat, y, image, spy)
    # what PAR refines: a distribution over the background and each image's present classes
    # alone (image 0: background + 2 classes; image 1's third channel pads it, an absent one at 0;
    # rows 2-3 repeat the batch for the second threshold)
    assert seen[0].shape == (4, 3, 16, 16)
    assert torch.allclose(seen[0].sum(1), torch.ones(4, 16, 16))
    assert (seen[0][[1, 3], 2] == 0).all() and (seen[0][[0, 2], 2] > 0).all()
    assert torch.equal(labels, _labels_by_present_classes(feat, y, image, par))
    # the rule matters: with all channels in the softmax (absent ones at 0), PAR decides otherwise
    absent_at_zero = feat * y[:, :, None, None]
    old = _labels_by_present_classes(absent_at_zero, torch.ones_like(y), image, par)
    assert not torch.equal(labels, old)
