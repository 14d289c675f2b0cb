"""Stage parameters: one pydantic model per params.yaml section (DESIGN §3).

Unknown keys and out-of-range values are errors naming the key. Defaults equal the embedded
ToyVOC preset, so a missing section means "the ToyVOC settings".
"""

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wsss.errors import WsssError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetParams(Section):
    """prepare_data: what to index and how hard to check it."""

    format: Literal["auto", "voc", "coco"] = "auto"
    splits: list[str] = Field(default=["train_aug", "train", "val"], min_length=1)
    # Splits whose every image must have a GT mask (seeds are scored on train, segmentation on val).
    mask_splits: list[str] = ["train", "val"]
    # VOC only: which mask folder; auto prefers SegmentationClassAug over SegmentationClass.
    mask_dir: Literal["auto", "SegmentationClassAug", "SegmentationClass"] = "auto"
    # Decode every image and mask (catches truncated files, size and value errors up front).
    verify: bool = True


class TrainCamParams(Section):
    """train_cam: the CAM network, the method and its switches, and the optimization recipe.

    Defaults are the ToyVOC preset; params/voc.yaml carries the official recipe's effective
    values (METHOD §10.1-2), each named: e.g. momentum 0.0005 is what the official PolyOptimizer
    really used, and poly_horizon_steps 52880 with 33050 steps run is its truncated schedule.
    """

    method: Literal["baseline", "ktse"] = "ktse"
    sie: bool = True  # simulated inter-image erasing: L_kt (+ L_seg_two when ssr is on)
    ssr: bool = True  # self-supervised regularization: PAR pseudo-labels, L_seg
    mga: bool = True  # multi-granularity alignment: erase at erase_threshold, L_local + L_global
    backbone: Literal["toy", "resnet38d", "resnet50", "resnet101"] = "toy"
    weights: Path | None = None  # local ImageNet weights (MXNet .params or torch state dict)
    toy_width: int = Field(default=16, ge=8)
    toy_norm: Literal["batch", "group"] = "batch"
    split: str = "train_aug"
    epochs: int = Field(default=20, ge=1)
    warmup_epochs: int = Field(default=6, ge=0)  # T: L_cls only before this epoch
    warmup_batch_size: int = Field(default=8, ge=1)
    batch_size: int = Field(default=8, ge=1)  # per process
    lr: float = Field(default=0.3, gt=0)  # ToyVOC trains from scratch: 30x the ImageNet-init lr
    momentum: float = Field(default=0.0005, ge=0, lt=1)  # the official effective value (§10.1)
    weight_decay: float = Field(default=5e-4, ge=0)
    poly_power: float = Field(default=0.9, ge=0)
    poly_horizon_steps: int | None = Field(default=None, ge=1)  # None: the steps actually run
    long_side: tuple[int, int] = (64, 88)  # random resize of the longer side, then crop
    crop: int = Field(default=64, ge=16)
    hflip: float = Field(default=0.5, ge=0, le=1)
    tau_fg: float = Field(default=0.3, gt=0, lt=1)
    tau_bg: float = Field(default=0.15, gt=0, lt=1)
    w_fg: float = Field(default=0.0125, ge=0)
    w_inter: float = Field(default=0.005, ge=0)
    inter_threshold: float = Field(default=0.2, ge=0, le=1)  # beta_o
    erase_threshold: float = Field(default=0.6, ge=0, le=1)
    margin: float = Field(default=0.05, ge=0)
    num_pair: int = Field(default=4, ge=1)  # anchors per batch that get a simulated pair
    par_dilations: tuple[int, ...] = (1, 2, 4, 8, 12, 24)
    par_iterations: int = Field(default=10, ge=0)
    checkpoint_every: int = Field(default=50, ge=1)  # steps


class ExtractSeedsParams(Section):
    """extract_seeds: multi-scale + flip CAM inference and the background-threshold seeds."""

    split: str = "train"  # images to extract (and score, when they have GT)
    scales: tuple[float, ...] = (1.0, 0.5, 1.5, 2.0)
    flip: bool = True
    threshold: float = Field(default=0.2, gt=0, lt=1)  # the fixed, honest background threshold
    sweep: tuple[float, float, float] = (0.10, 0.30, 0.01)  # start, stop (exclusive), step
    batch_size: int = Field(default=8, ge=1)
    overlays: int = Field(default=12, ge=0)  # images in the CAM overlay grid


class RuntimeParams(Section):
    """How stages run: device, seed and data loading; never what they compute."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(default=0, ge=0)
    num_workers: int = Field(default=0, ge=0)
    log_interval: int = Field(default=20, ge=1)


class Params(Section):
    dataset: DatasetParams = DatasetParams()
    train_cam: TrainCamParams = TrainCamParams()
    extract_seeds: ExtractSeedsParams = ExtractSeedsParams()
    runtime: RuntimeParams = RuntimeParams()


def load_params(path: Path | None) -> Params:
    """Params from a YAML file (None: the defaults); the first problem is one WsssError line."""
    if path is None:
        return Params()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise WsssError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise WsssError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise WsssError(f"{path}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "<top level>"
        what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise WsssError(f"{path}: {key}: {what}") from None


def digest(obj: Any) -> str:
    """sha256 of an object's canonical JSON: equal params give equal digests, across machines."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
