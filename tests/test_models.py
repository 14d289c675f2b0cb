"""Backbones and weight loading: the MXNet container parser on a file the test writes, key
mapping onto ResNet38d, torch state dicts, bad weight files, and EfficientNet-Lite0 with its real
ImageNet weights on real photographs."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from ruamel.yaml import YAML
from torch import nn

from tests.helpers import TINY_CAM, TINY_PARAMS
from tests.voc_photos import REPO, SPLITS, write_voc_root
from wsss.config.params import parse_params
from wsss.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from wsss.errors import WsssError
from wsss.models.backbones import TorchvisionResNet, build_backbone
from wsss.models.cam import CamNet
from wsss.models.deeplab import build_deeplab
from wsss.models.efficientnet import EfficientNetLite0
from wsss.models.irn import EfficientNetPyramid, build_irnet
from wsss.models.resnet38d import ResNet38d
from wsss.models.weights import (
    LIST_MAGIC,
    V1_MAGIC,
    V2_MAGIC,
    load_weights,
    read_mxnet_params,
    resnet38d_key,
)
from wsss.runner import run_stage


def _array(arr: np.ndarray, version: str) -> bytes:
    flags = {np.float32: 0, np.float16: 2, np.int32: 4}
    dims = arr.shape
    if version == "legacy":
        head = struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}I", *dims)
    elif version == "v1":
        head = struct.pack("<II", V1_MAGIC, len(dims)) + struct.pack(f"<{len(dims)}q", *dims)
    else:
        head = struct.pack("<IiI", V2_MAGIC, 0, len(dims)) + struct.pack(f"<{len(dims)}q", *dims)
    ctx = struct.pack("<iii", 1, 0, flags[arr.dtype.type])
    return head + ctx + arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def write_params(path, named: dict[str, np.ndarray], version: str = "v2") -> None:
    """An MXNet NDArray-list file, as mx.nd.save writes it."""
    out = struct.pack("<QQ", LIST_MAGIC, 0) + struct.pack("<Q", len(named))
    out += b"".join(_array(a, version) for a in named.values())
    out += struct.pack("<Q", len(named))
    out += b"".join(struct.pack("<Q", len(n)) + n.encode() for n in named)
    path.write_bytes(out)


@pytest.mark.parametrize("version", ["legacy", "v1", "v2"])
def test_mxnet_container_round_trip(tmp_path, version):
    named = {
        "arg:conv1a_weight": np.random.default_rng(0).normal(size=(64, 3, 3, 3)).astype(np.float32),
        "aux:bn7_moving_var": np.arange(5, dtype=np.float16),
        "arg:linear1000_bias": np.arange(3, dtype=np.int32),
    }
    path = tmp_path / "w.params"
    write_params(path, named, version)
    params = read_mxnet_params(path.read_bytes())
    assert list(params) == ["conv1a_weight", "bn7_moving_var", "linear1000_bias"]
    for (_, expected), got in zip(named.items(), params.values(), strict=True):
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
    state = load_weights(path, mxnet_names=True)
    assert set(state) == {"conv1a.weight", "bn7.running_var"}  # the classifier is dropped


def test_resnet38d_names_cover_the_network():
    """Every parameter and BN buffer of ResNet38d is the image of one MXNet name."""
    net = ResNet38d()
    own = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    mx_names = set()
    for key in own:
        block, layer, leaf = key.split(".") if key.count(".") == 2 else (None, *key.split("."))
        if block is None:  # conv1a.weight, bn7.*
            mx_names.add("conv1a_weight" if layer == "conv1a" else f"bn7_{_mx_bn(leaf)}")
            continue
        stage, _, index = block[1:].partition("_")
        suffix = "a" if not index else f"b{index}"
        kind, branch = layer.split("_", 1)
        prefix = "res" if kind == "conv" else "bn"
        tail = "weight" if kind == "conv" else _mx_bn(leaf)
        mx_names.add(f"{prefix}{stage}{suffix}_{branch}_{tail}")
    assert {resnet38d_key(n) for n in mx_names} == own


def _mx_bn(leaf: str) -> str:
    return {
        "weight": "gamma",
        "bias": "beta",
        "running_mean": "moving_mean",
        "running_var": "moving_var",
    }[leaf]


def test_resnet38d_is_output_stride_8():
    net = ResNet38d().eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 48))
    assert out.shape == (1, 4096, 8, 6)


def test_torch_state_dict_and_partial_files(tmp_path):
    from torchvision.models import resnet50

    path = tmp_path / "resnet50.pth"
    torch.save(resnet50(weights=None).state_dict(), path)
    net = build_backbone("resnet50", path)
    assert torch.equal(net.stem[0].weight, torch.load(path, weights_only=True)["conv1.weight"])
    assert isinstance(net, TorchvisionResNet) and net.out_channels == 2048
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 2048, 8, 8)  # OS8
    partial = tmp_path / "partial.params"
    write_params(partial, {"arg:conv1a_weight": np.zeros((64, 3, 3, 3), np.float32)})
    with pytest.raises(WsssError, match="ResNet38d weights: missing"):
        build_backbone("resnet38d", partial)
    wrong = tmp_path / "wrong.params"
    write_params(wrong, {"arg:conv1a_weight": np.zeros((32, 3, 3, 3), np.float32)})
    with pytest.raises(WsssError, match="has shape"):
        build_backbone("resnet38d", wrong)


def test_bad_weight_files(tmp_path):
    junk = tmp_path / "junk.params"
    junk.write_bytes(b"definitely not weights")
    with pytest.raises(WsssError, match=r"not a valid MXNet \.params or torch weights file"):
        load_weights(junk, mxnet_names=True)
    truncated = tmp_path / "trunc.params"
    write_params(truncated, {"arg:conv1a_weight": np.zeros((64, 3, 3, 3), np.float32)})
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(WsssError, match=r"not a valid MXNet \.params file"):
        load_weights(truncated, mxnet_names=True)
    with pytest.raises(WsssError, match="not found; not one of wsss's known files"):
        load_weights(tmp_path / "missing.pth", mxnet_names=False)
    with pytest.raises(WsssError, match=r"not found; .*from `make install`"):
        load_weights(tmp_path / "efficientnet-lite0-57934424.pth", mxnet_names=False)
    with pytest.raises(WsssError, match=r"from https://download\.pytorch\.org/models/resnet50-"):
        load_weights(tmp_path / "resnet50-19c8e357.pth", mxnet_names=False)
    with pytest.raises(WsssError, match="cannot read weights"):
        load_weights(tmp_path, mxnet_names=False)  # a directory
    with pytest.raises(WsssError, match="trains from scratch"):
        build_backbone("toy", junk)


# EfficientNet-Lite0 with the ImageNet weights `make install` extracts (pretrained/*.lock)
LITE0_WEIGHTS = REPO / "pretrained" / "efficientnet-lite0-57934424.pth"
SCHOOL_BUS = 779  # ImageNet-1k class index


@pytest.fixture(scope="module")
def lite0_state() -> dict[str, torch.Tensor]:
    if not LITE0_WEIGHTS.is_file():
        raise FileNotFoundError(f"{LITE0_WEIGHTS}: missing; `make install` extracts it")
    return load_weights(LITE0_WEIGHTS, mxnet_names=False)


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory) -> Path:
    return write_voc_root(tmp_path_factory.mktemp("photos") / "voc")


@pytest.fixture(scope="module")
def photos(photo_root) -> torch.Tensor:
    """labelme's three VOC photographs at 224 px, ImageNet-normalized as the datasets do."""
    images = [
        Image.open(photo_root / "JPEGImages" / f"{i}.jpg").convert("RGB").resize((224, 224))
        for i in SPLITS["train_aug"]
    ]
    x = torch.tensor(np.stack(images), dtype=torch.float32).permute(0, 3, 1, 2) / 255
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    return (x - mean[:, None, None]) / std[:, None, None]


def test_efficientnet_lite0_recognizes_a_photo_with_its_imagenet_weights(lite0_state, photos):
    """Every weight of the package loads; its own classifier on the head's features calls the
    VOC bus photo (2011_000025) a school bus: the layers, activations and input scaling match
    the ones the weights were trained with."""
    net = EfficientNetLite0(output_stride=32).eval()
    net.load_imagenet(lite0_state)
    with torch.no_grad():
        features = net(photos).mean((2, 3))
    logits = features @ lite0_state["_fc.weight"].T + lite0_state["_fc.bias"]
    bus = SPLITS["train_aug"].index("2011_000025")
    assert logits[bus].argmax() == SCHOOL_BUS and logits[bus].softmax(0)[SCHOOL_BUS] > 0.5


@pytest.mark.parametrize("output_stride", [8, 16])
def test_efficientnet_lite0_dilated_keeps_the_map_where_the_object_is(
    lite0_state, photos, photo_root, output_stride
):
    """At the output strides wsss uses (dilation instead of stride), ImageNet's school-bus CAM
    still calls the photo a school bus and peaks on the bus's GT pixels, with more of its mass
    there than the bus's share of the image: dilation and padding keep the map in place."""
    net = EfficientNetLite0(output_stride=output_stride).eval()
    net.load_imagenet(lite0_state)
    bus = SPLITS["train_aug"].index("2011_000025")
    with torch.no_grad():
        features = net(photos[bus : bus + 1])[0]
    assert (features.mean((1, 2)) @ lite0_state["_fc.weight"].T).argmax() == SCHOOL_BUS
    cam = torch.einsum("chw,c->hw", features, lite0_state["_fc.weight"][SCHOOL_BUS])
    cam = F.interpolate(cam[None, None], (224, 224), mode="bilinear")[0, 0].relu()
    mask = Image.open(photo_root / "SegmentationClass" / "2011_000025.png")
    on_bus = torch.from_numpy(np.array(mask.resize((224, 224), Image.NEAREST)) == 6)  # VOC bus
    assert on_bus.flatten()[cam.argmax()]
    assert cam[on_bus].sum() / cam.sum() > on_bus.float().mean() + 0.1


def test_efficientnet_lite0_scales_its_input_as_its_batchnorm_expects(lite0_state, photos):
    """The first BatchNorm sees inputs whose variance is near its ImageNet running variance
    with the network's input conversion, and far from it when fed ImageNet-normalized input."""
    net = EfficientNetLite0(output_stride=32).eval()
    net.load_imagenet(lite0_state)
    seen = []
    net._bn0.register_forward_hook(lambda m, inputs, _out: seen.append(inputs[0]))
    with torch.no_grad():
        net(photos)
        net.input_scale.fill_(1.0), net.input_shift.fill_(0.0)
        net(photos)
    live = net._bn0.running_var > 1e-4
    off = [(x.var((0, 2, 3)) / net._bn0.running_var)[live].log().abs().mean() for x in seen]
    assert off[0] < 0.4 and off[1] > 3 * off[0]


def test_efficientnet_lite0_strides_pyramid_and_frozen_parts():
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        for stride in (8, 16, 32):
            assert EfficientNetLite0(stride)(x).shape == (2, 1280, 96 // stride, 96 // stride)
        levels = EfficientNetPyramid()(x)
    assert [f.shape[1] for f in levels] == [24, 24, 40, 112, 320]
    assert [96 // f.shape[-1] for f in levels] == [4, 4, 8, 16, 16]
    cam = CamNet(build_backbone("efficientnet_lite0", None), 20).train()
    frozen = {n for n, p in cam.named_parameters() if not p.requires_grad}
    early = ("backbone._conv_stem", "backbone._bn0", *(f"backbone._blocks.{i}." for i in range(3)))
    norms = {
        f"backbone.{n}" for n, m in cam.backbone.named_modules() if isinstance(m, nn.BatchNorm2d)
    }
    expected = {
        n for n, _ in cam.named_parameters() if n.startswith(early) or n.rsplit(".", 1)[0] in norms
    }
    assert frozen == expected and "backbone._blocks.3._expand_conv.weight" not in frozen
    assert not any(m.training for m in cam.backbone.modules() if isinstance(m, nn.BatchNorm2d))
    irn = build_irnet("efficientnet_lite0", None, 16, 16, 64).train()
    assert not irn.pyramid.training and not any(p.requires_grad for p in irn.pyramid.parameters())
    deeplab = build_deeplab("efficientnet_lite0", None, 21, (1, 2, 3, 4))
    assert deeplab(torch.randn(1, 3, 64, 64)).shape == (1, 21, 64, 64)
    with pytest.raises(WsssError, match="output stride 4"):
        EfficientNetLite0(output_stride=4)


def test_efficientnet_lite0_refuses_an_incomplete_state_dict(lite0_state):
    state = {k: v for k, v in lite0_state.items() if k != "_conv_head.weight"}
    with pytest.raises(
        WsssError, match=r"EfficientNet-Lite0 weights: missing '_conv_head\.weight'"
    ):
        EfficientNetLite0().load_imagenet(state)


def test_the_toy_efficientnet_preset_runs_every_stage(dataset_artifact, lite0_state, tmp_path):
    """params/toy_efficientnet.yaml's networks through the whole pipeline on the tiny ToyVOC
    (TINY_PARAMS' budgets): every stage finishes and records the weights it started from."""
    preset = YAML(typ="safe").load((REPO / "params" / "toy_efficientnet.yaml").read_text())
    weights = {"weights": str(LITE0_WEIGHTS)}
    sections = {k: TINY_PARAMS.get(k, {}) | preset.get(k, {}) for k in TINY_PARAMS | preset}
    for name in ("train_cam", "train_irn", "train_deeplab"):
        sections[name] |= weights
    sections["train_irn"].pop("toy_width"), sections["train_deeplab"].pop("toy_width")
    params = parse_params(sections | {"train_cam": TINY_CAM["ktse"] | sections["train_cam"]}, "")
    art = {"dataset": dataset_artifact}
    chain = [
        ("train_cam", "cam_model", ["dataset"]),
        ("extract_seeds", "cams", ["dataset", "cam_model"]),
        ("train_irn", "irn_model", ["dataset", "cams"]),
        ("export_masks", "pseudo_masks", ["dataset", "cams", "irn_model"]),
        ("train_deeplab", "seg_model", ["dataset", "pseudo_masks"]),
        ("evaluate", "evaluation", ["dataset", "seg_model"]),
    ]
    for stage, output, inputs in chain:
        art[output] = tmp_path / output
        manifest, _ = run_stage(stage, {i: str(art[i]) for i in inputs}, art[output], params)
        if stage.startswith("train_"):
            assert manifest.params[stage]["backbone"] == "efficientnet_lite0"
    assert 0 <= json.loads((art["evaluation"] / "scores.json").read_text())["miou"] <= 1
