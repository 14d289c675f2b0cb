"""Backbones and weight loading: the MXNet container parser on a file the test writes, key
mapping onto ResNet38d, torch state dicts, and bad weight files."""

import struct

import numpy as np
import pytest
import torch

from wsss.errors import WsssError
from wsss.models.backbones import TorchvisionResNet, build_backbone
from wsss.models.resnet38d import ResNet38d
from wsss.models.weights import (
    LIST_MAGIC,
    V1_MAGIC,
    V2_MAGIC,
    load_weights,
    read_mxnet_params,
    resnet38d_key,
)


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
    return {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
            "running_var": "moving_var"}[leaf]  # fmt: skip


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
    with pytest.raises(WsssError, match="cannot read weights"):
        load_weights(tmp_path / "missing.pth", mxnet_names=False)
    with pytest.raises(WsssError, match="trains from scratch"):
        build_backbone("toy", junk)
