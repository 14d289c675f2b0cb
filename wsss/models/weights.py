"""Loading ImageNet weights from a local file: MXNet `.params` (parsed here, no mxnet needed) or
a torch state dict (loaded with weights_only=True: no pickled code runs).

The MXNet NDArray-list container: uint64 magic 0x112, uint64 reserved, uint64 count, the arrays,
uint64 count, the names (uint64 length + bytes). An array is either legacy (uint32 ndim, uint32
dims) or starts with a uint32 magic: 0xF993FAC8 (V1: int64 dims) or 0xF993FAC9 (V2: int32 storage
type first, dense only); then int32 device type and id, int32 dtype flag, raw little-endian data.
"""

import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wsss.errors import WsssError, load_problem
from wsss.pretrained import where_from

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
_DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 6: np.int64}
_BN = {"gamma": "weight", "beta": "bias", "mean": "running_mean", "var": "running_var"}


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("file ends early")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("file ends early")
        self.pos += n
        return self.data[self.pos - n : self.pos]


def _read_array(r: _Reader) -> np.ndarray:
    head = r.take("<I")
    if head in (V1_MAGIC, V2_MAGIC):
        if head == V2_MAGIC and r.take("<i") != 0:
            raise ValueError("sparse arrays are not supported")
        ndim = r.take("<I")
        shape = tuple(r.take(f"<{ndim}q")) if ndim > 1 else ((r.take("<q"),) if ndim else ())
    else:  # legacy: the first word is ndim, dims are uint32
        ndim = head
        shape = tuple(r.take(f"<{ndim}I")) if ndim > 1 else ((r.take("<I"),) if ndim else ())
    if ndim == 0:
        return np.zeros((0,), np.float32)
    r.take("<ii")  # device type and id
    flag = r.take("<i")
    if flag not in _DTYPES:
        raise ValueError(f"unknown dtype flag {flag}")
    dtype = np.dtype(_DTYPES[flag]).newbyteorder("<")
    count = int(np.prod(shape))
    return np.frombuffer(r.raw(count * dtype.itemsize), dtype).reshape(shape).copy()


def read_mxnet_params(data: bytes) -> dict[str, np.ndarray]:
    """{name: array} from the bytes of an MXNet .params file; "arg:"/"aux:" prefixes dropped."""
    r = _Reader(data)
    if r.take("<Q") != LIST_MAGIC:
        raise ValueError("not an MXNet NDArray list (bad magic)")
    r.take("<Q")
    arrays = [_read_array(r) for _ in range(r.take("<Q"))]
    names = [r.raw(r.take("<Q")).decode() for _ in range(r.take("<Q"))]
    if len(names) != len(arrays):
        raise ValueError(f"{len(arrays)} arrays but {len(names)} names")
    return {n.split(":", 1)[-1]: a for n, a in zip(names, arrays, strict=True)}


def resnet38d_key(mx_name: str) -> str | None:
    """Our ResNet38d state-dict key for an MXNet parameter name (None: not part of the backbone).

    conv1a_weight -> conv1a.weight; res4b3_branch2a_weight -> b4_3.conv_branch2a.weight;
    bn2a_branch1_... -> b2.bn_branch1...; bn7_gamma -> bn7.weight; linear1000_* -> None.
    """
    tokens = mx_name.split("_")
    head = tokens[0]
    if head == "conv1a":
        return "conv1a.weight"
    if head.startswith("linear"):
        return None
    if len(tokens) > 2 and tokens[1].startswith("branch"):
        kind = "conv" if head.startswith("res") else "bn"
        stage_block = head[3:] if kind == "conv" else head[2:]  # e.g. "4b3" or "2a"
        stage, block = stage_block[0], stage_block[2:]
        name = f"b{stage}" + (f"_{block}" if block else "")
        last = "weight" if kind == "conv" else _BN[tokens[-1]]
        return f"{name}.{kind}_{tokens[1]}.{last}"
    if head == "bn7":
        return f"bn7.{_BN[tokens[-1]]}"
    return None


def load_weights(path: Path, mxnet_names: bool) -> dict[str, torch.Tensor]:
    """A state dict from PATH (MXNet .params or torch file); bad files are one-line WsssErrors."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise WsssError(f"{path}: weights file not found; {where_from(Path(path))}") from None
    except OSError as exc:
        raise WsssError(f"{path}: cannot read weights ({exc.strerror})") from None
    if data[:8] == struct.pack("<Q", LIST_MAGIC):
        try:
            params = read_mxnet_params(data)
        except (ValueError, UnicodeDecodeError, struct.error) as exc:
            raise WsssError(f"{path}: not a valid MXNet .params file ({exc})") from None
        renamed = {resnet38d_key(k) if mxnet_names else k: v for k, v in params.items()}
        return {k: torch.from_numpy(v) for k, v in renamed.items() if k is not None}
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a non-torch file
        raise WsssError(
            f"{path}: not a valid MXNet .params or torch weights file ({load_problem(exc)})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WsssError(f"{path}: expected a state dict of tensors")
    return state


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load STATE into MODULE: every key of MODULE must be there with its shape (extra keys of
    STATE are ignored); WHAT names the network in the one-line error."""
    own = module.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise WsssError(
                f"{what} weights: '{key}' has shape {tuple(value.shape)}, "
                f"expected {tuple(own[key].shape)}"
            )
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    if missing:
        raise WsssError(f"{what} weights: missing '{missing[0]}' ({len(missing)} keys missing)")
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
