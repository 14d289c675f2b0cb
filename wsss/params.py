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


class RuntimeParams(Section):
    """How stages run: device, seed and data loading; never what they compute."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(default=0, ge=0)
    num_workers: int = Field(default=0, ge=0)
    log_interval: int = Field(default=20, ge=1)


class Params(Section):
    dataset: DatasetParams = DatasetParams()
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
