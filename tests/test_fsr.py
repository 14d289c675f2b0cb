"""FSR: the ViT encoder (position interpolation, mask token, torchvision weights), block masking,
the second view, the DINO loss, the EMA teacher, the objective, and train_cam + extract_seeds
with `method: fsr`."""

import math

import pytest
import torch
from torchvision.models import vit_b_16

from wsss.config.params import parse_params
from wsss.config.train_cam import FsrParams
from wsss.errors import WsssError
from wsss.losses.dino import dino_loss
from wsss.methods.fsr import Fsr, block_mask, ema_update, second_view
from wsss.methods.registry import build_method
from wsss.models.fsr import FsrNet
from wsss.models.vit import ViTEncoder

HEAD = (32, 16, 64, 16)


def test_encoder_shapes_at_any_size_and_the_mask_token():
    torch.manual_seed(0)
    enc = ViTEncoder("vit_toy").eval()
    for side in (64, 48, 96):
        tokens = enc(torch.randn(2, 3, side, side))
        n = (side // 8) ** 2
        assert tokens.final.shape == (2, n, 96) and tokens.aux.shape == (2, n, 96)
        assert tokens.cls.shape == (2, 96) and tokens.grid == (side // 8, side // 8)
        assert tokens.maps(tokens.final).shape == (2, 96, side // 8, side // 8)
    everything = torch.ones(2, 8, 8, dtype=torch.bool)
    a = enc(torch.randn(2, 3, 64, 64), everything)
    b = enc(torch.randn(2, 3, 64, 64), everything)
    assert torch.allclose(a.final, b.final, atol=1e-5)  # masked patches carry no image content
    one = torch.zeros(2, 8, 8, dtype=torch.bool)
    one[:, 0, 0] = True
    x = torch.randn(2, 3, 64, 64)
    changed = x.clone()
    changed[:, :, :8, :8] += 5  # only inside the masked patch
    assert torch.allclose(enc(x, one).final, enc(changed, one).final, atol=1e-5)


def test_torchvision_vit_b16_weights_load_by_name():
    state = vit_b_16().state_dict()
    enc = ViTEncoder("vit_b16")
    enc.load_imagenet(state)
    assert torch.equal(enc.conv_proj.weight, state["conv_proj.weight"])
    assert torch.equal(enc.pos_embedding, state["encoder.pos_embedding"][:, 1:])
    key = "encoder.layers.encoder_layer_11.mlp.3.weight"
    assert torch.equal(enc.layers[11].mlp[3].weight, state[key])
    del state[key]
    with pytest.raises(WsssError, match=r"ViT weights: 'layers\.11\.mlp\.3\.weight' is missing"):
        ViTEncoder("vit_b16").load_imagenet(state)


def test_random_block_mask_counts_and_alignment():
    torch.manual_seed(0)
    y = torch.ones(3, 2)
    mask = block_mask(None, y, (8, 8), block=2, ratio=0.4, uncertain=(0.2, 0.7))
    assert mask.shape == (3, 8, 8)
    blocks = mask.reshape(3, 4, 2, 4, 2)
    assert (blocks.all((2, 4)) == blocks.any((2, 4))).all()  # whole 2x2 blocks
    assert (blocks.all((2, 4)).sum((1, 2)) == round(0.4 * 16)).all()


def test_uncertain_blocks_are_masked_first():
    torch.manual_seed(0)
    cam = torch.zeros(2, 2, 8, 8)
    cam[:, 0] = 0.05
    cam[:, 0, :2, :] = 1.0  # the class maximum: confident
    cam[:, 0, 4:6, :4] = 0.5  # uncertain: 2 blocks of the 4x4 block grid
    cam[:, 1] = 0.5  # a class absent from the image: ignored
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    mask = block_mask(cam, y, (8, 8), block=2, ratio=2 / 16, uncertain=(0.2, 0.7))
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[4:6, :4] = True
    assert (mask == expected).all()


def test_second_view_at_full_scale_is_the_image_or_its_mirror():
    torch.manual_seed(0)
    image = torch.randn(6, 3, 16, 16)
    view = second_view(image, min_scale=1.0)
    for v, x in zip(view, image, strict=True):
        assert torch.allclose(v, x, atol=1e-5) or torch.allclose(v, x.flip(-1), atol=1e-5)
    assert second_view(image, 0.32).shape == image.shape


def test_dino_loss_by_hand():
    student = torch.zeros(4, 8, requires_grad=True)  # uniform prediction
    teacher = torch.randn(4, 8)
    loss = dino_loss(teacher, student, torch.zeros(1, 8), 0.04, 0.1)
    assert loss.item() == pytest.approx(math.log(8))
    empty = dino_loss(torch.zeros(0, 8), torch.zeros(0, 8, requires_grad=True), teacher[:1], 1, 1)
    assert empty.item() == 0 and not math.isnan(empty.item())


def test_ema_update():
    student = {"a": torch.nn.Linear(2, 2)}
    teacher = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 2)})
    before = teacher["a"].weight.clone()
    ema_update(teacher, student, 0.9)
    assert torch.allclose(teacher["a"].weight, 0.9 * before + 0.1 * student["a"].weight)


def test_fsr_objective_parts_teacher_and_optimizer():
    torch.manual_seed(0)
    p = FsrParams(epochs=10, head=HEAD, par_iterations=2)
    model = FsrNet("vit_toy", 3, HEAD)
    method = build_method(p)
    assert isinstance(method, Fsr) and not method.needs_pairs
    batch = {"image": torch.randn(2, 3, 32, 32), "labels": torch.tensor([[1.0, 0, 0], [0, 1, 1]])}
    total, parts = method.loss(model, batch, epoch=0)  # before seg_start: no seg loss
    assert set(parts) == {"cls", "aux", "class", "patch", "total"}
    expected = parts["cls"] + parts["aux"] + 0.1 * (parts["class"] + parts["patch"])
    assert parts["total"] == pytest.approx(expected, rel=1e-5)
    total.backward()
    assert all(t.grad is None for t in model.teacher.parameters())
    assert model.encoder.conv_proj.weight.grad.abs().sum() > 0
    _, later = method.loss(model, batch, epoch=5)  # guided masking, seg loss on
    assert "seg" in later
    groups = method.optimizer(model).param_groups
    assert {g["base_lr"] for g in groups} == {p.lr, 10 * p.lr}
    decayed = [q for g in groups if g["weight_decay"] > 0 for q in g["params"]]
    assert decayed and all(q.ndim > 1 for q in decayed)
    assert method.lr_factor(0, 100) == pytest.approx(0.1)
    assert method.lr_factor(8, 100) == pytest.approx(1.0)  # warm-up ends at 7.5 % (8 steps)
    assert method.lr_factor(100, 100) == pytest.approx(0.0)


def test_vit_toy_with_weights_is_a_params_error():
    with pytest.raises(WsssError, match=r"train_cam: weights: vit_toy trains from scratch"):
        parse_params({"train_cam": {"method": "fsr", "weights": "w.pth"}}, "p.yaml")
