"""Stage parameters: one pydantic model per params.yaml section (docs/design.md §3).

Unknown keys and out-of-range values are errors naming the key. Defaults equal the embedded
ToyVOC preset, so a missing section means "the ToyVOC settings".
"""

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SerializeAsAny, ValidationError, model_validator
from ruamel.yaml import YAML, YAMLError

from wsss.config.crf import CrfParams
from wsss.config.fields import (
    MAX_RADIUS,
    BatchSize,
    Epochs,
    Range,
    Rates,
    Scales,
    Section,
    Shown,
    Sweep,
    Width,
    check_below,
)
from wsss.config.train_cam import DEFAULT_METHOD, TrainCamParams, cam_params
from wsss.errors import WsssError


class DatasetParams(Section):
    """prepare_data: what to index and how hard to check it."""

    format: Literal["auto", "voc", "coco"] = "auto"
    splits: list[str] = Field(default=["train_aug", "train", "val"], min_length=1)
    # Splits whose every image must have a GT mask (seeds are scored on train, segmentation on val).
    mask_splits: list[str] = Field(default=["train", "val"])
    # VOC only: which mask folder; auto prefers SegmentationClassAug over SegmentationClass.
    mask_dir: Literal["auto", "SegmentationClassAug", "SegmentationClass"] = "auto"
    # Decode every image and mask (catches truncated files, size and value errors up front).
    verify: bool = True


class ExtractSeedsParams(Section):
    """extract_seeds: multi-scale + flip CAM inference and the background-threshold seeds."""

    split: str = "train_aug"  # images to extract: IRN trains on their CAMs
    score_split: str = "train"  # seeds scored against GT on these (docs/method.md §4: VOC train)
    scales: Scales = (1.0, 0.5, 1.5, 2.0)
    flip: bool = True
    threshold: float = Field(default=0.2, gt=0, lt=1)  # the fixed, honest background threshold
    sweep: Sweep = (0.10, 0.30, 0.01)
    batch_size: BatchSize = 8
    overlays: Shown = 12  # images in the CAM overlay grid


class TrainIrnParams(Section):
    """train_irn: IR labels mined from the CAMs, then IRNet's boundary and displacement branches.

    Defaults are the ToyVOC preset (a pyramid trained from scratch, narrower branches, 64 px
    crops); params/voc.yaml carries IRN's settings (frozen ResNet-50, 512 px crops, batch 32,
    3 epochs, effective momentum 1e-4 per docs/method.md §10.1).
    """

    backbone: Literal["toy", "resnet50", "efficientnet_lite0"] = "toy"
    weights: str | None = None  # the backbone's ImageNet state dict: path or s3://
    toy_width: Width = 16
    edge_width: int = Field(default=16, ge=4, le=1024, multiple_of=4)  # IRN: 32
    disp_width: int = Field(default=64, ge=64, le=4096, multiple_of=64)  # IRN: 256
    split: str = "train_aug"  # its CAMs must be in the `cams` artifact
    fg_threshold: float = Field(default=0.30, gt=0, lt=1)
    bg_threshold: float = Field(default=0.10, gt=0, lt=1)  # KTSE: 0.10 (IRN: 0.05)
    crf: CrfParams | None = CrfParams()  # null: IR labels straight from the thresholds
    # Pair radius on the stride-4 grid; memory grows with its square (IRN: 10).
    radius: int = Field(default=10, ge=2, le=MAX_RADIUS)
    scale: Range = (0.5, 1.5)  # random rescale range
    crop: int = Field(default=64, ge=16, le=2048)
    hflip: float = Field(default=0.5, ge=0, le=1)
    batch_size: BatchSize = 8
    epochs: Epochs = 6
    lr: float = Field(default=0.1, gt=0)  # edge branch (and a trainable pyramid)
    disp_lr_scale: float = Field(default=10.0, gt=0)  # displacement branch: 10x
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    poly_power: float = Field(default=0.9, ge=0)
    checkpoint_every: int = Field(default=50, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> "TrainIrnParams":
        check_below(self, "bg_threshold", "fg_threshold")
        if self.radius > self.crop // 4:
            # a pair further apart than the crop's stride-4 grid never occurs
            raise ValueError(f"radius ({self.radius}) must be at most crop / 4 ({self.crop // 4})")
        return self


class ExportMasksParams(Section):
    """export_masks: boundary maps, the random walk of the CAMs, pseudo and confidence masks."""

    split: str = "train_aug"  # masks for these images (DeepLab trains on them)
    score_split: str = "train"  # pseudo_mask_miou against GT on these
    beta: float = Field(default=10.0, gt=0)  # affinity = (1 - max boundary)^beta
    # The walk takes 2^exp_times steps. IRN: 8 on a ~128-cell grid; ToyVOC's grid is 24 cells, and
    # the same relative diffusion length (~ sqrt(steps)) needs 256 * (24/128)^2 ~ 9 steps: 3.
    exp_times: int = Field(default=3, ge=0, le=12)
    radius: int = Field(default=5, ge=2, le=MAX_RADIUS)  # IRN: 5
    bg_threshold: float = Field(default=0.25, gt=0, lt=1)  # background score after the walk
    flip: bool = True
    batch_size: BatchSize = 8
    overlays: Shown = 12


class TrainDeeplabParams(Section):
    """train_deeplab: DeepLabV2 on the pseudo-masks.

    Defaults are the ToyVOC preset (toy backbone from scratch, ASPP rates scaled to its
    16-cell crops); params/voc.yaml carries docs/method.md §6 (ResNet-101, 512 px, batch 16,
    lr 0.01).
    """

    backbone: Literal["toy", "resnet101", "efficientnet_lite0"] = "toy"
    weights: str | None = None  # the backbone's ImageNet state dict: path or s3://
    toy_width: Width = 16
    aspp_rates: Rates = (1, 2, 4, 6)  # VOC: 6/12/18/24
    split: str = "train_aug"
    crop: int = Field(default=64, ge=16, le=2048)
    scale: Range = (0.5, 1.0)  # RandomResizedCrop area fraction (BECO: 0.5-0.75)
    hflip: float = Field(default=0.5, ge=0, le=1)
    # Outside the confidence mask pixels weigh low_confidence_weight: "off" uses every
    # pseudo-label pixel alike, "weight" down-weights the others, "ignore" drops them.
    confidence: Literal["off", "weight", "ignore"] = "off"
    low_confidence_weight: float = Field(default=0.5, ge=0, le=1)  # for "weight"
    batch_size: BatchSize = 8  # per process
    epochs: Epochs = 60  # 30 under-trains the toy (benchmarks/RESULTS.md)
    lr: float = Field(default=0.05, gt=0)  # from scratch: 5x method.md §6's 0.01
    head_lr_scale: float = Field(default=1.0, gt=0)  # docs/method.md §6: one group, 1x
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    poly_power: float = Field(default=0.9, ge=0)
    min_lr: float = Field(default=1e-5, ge=0)
    # Uses GT labels: score every epoch on val_split and keep the best (BECO does,
    # docs/method.md §10.12). Off by default; when on, the manifest says so and val is no
    # longer held out.
    select_on_val: bool = False
    val_split: str = "val"
    checkpoint_every: int = Field(default=200, ge=1)


class EvaluateParams(Section):
    """evaluate (and `wsss predict`): multi-scale + flip inference, optional CRF, the report."""

    split: str = "val"
    scales: Scales = (1.0, 0.75, 1.25)
    flip: bool = True
    merge: Literal["max", "mean"] = "max"  # over scales; BECO takes the pixel-wise max
    # docs/method.md §6 uses CRF(10 iterations, gaussian 1/3, bilateral 67/3/4)
    crf: CrfParams | None = None
    batch_size: BatchSize = 8
    examples: Shown = 12  # rows in the qualitative grid


class PredictParams(Section):
    """`wsss predict`: what to write besides the label PNGs (inference settings: `evaluate`)."""

    overlays: bool = True  # overlays/<name>.png: the image blended with its predicted colours


class RuntimeParams(Section):
    """How stages run: device, seed and data loading; never what they compute."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(default=0, ge=0, lt=2**32)  # numpy and torch take any 32-bit seed
    num_workers: int = Field(default=0, ge=0, le=64)
    log_interval: int = Field(default=20, ge=1)


class SmokeParams(Section):
    """A smoke run: the full run's networks, crops, batch sizes, scales and CRF on IMAGES images
    per split and STEPS optimizer steps in each of a training stage's first and last epochs, so
    that memory, images, secrets and paths are tried in minutes. null: the full run."""

    images: int | None = Field(default=None, ge=1, le=10_000)
    steps: int = Field(default=2, ge=1, le=100)

    @property
    def on(self) -> bool:
        return self.images is not None


class Params(Section):
    dataset: DatasetParams = DatasetParams()
    # serialized as the method's own model (all its fields), not as the shared base
    train_cam: Annotated[SerializeAsAny[TrainCamParams], BeforeValidator(cam_params)] = Field(
        default_factory=lambda: cam_params({})
    )
    extract_seeds: ExtractSeedsParams = ExtractSeedsParams()
    train_irn: TrainIrnParams = TrainIrnParams()
    export_masks: ExportMasksParams = ExportMasksParams()
    train_deeplab: TrainDeeplabParams = TrainDeeplabParams()
    evaluate: EvaluateParams = EvaluateParams()
    predict: PredictParams = PredictParams()
    runtime: RuntimeParams = RuntimeParams()
    smoke: SmokeParams = SmokeParams()


def with_smoke(params: Params, images: int | None) -> Params:
    """PARAMS with a smoke run of IMAGES images per split (None: PARAMS as they are)."""
    if images is None:
        return params
    return params.model_copy(update={"smoke": params.smoke.model_copy(update={"images": images})})


MAX_PARAMS_BYTES = 1 << 20  # a params file is a few KiB; /dev/zero would never end


def load_params(path: Path | None) -> Params:
    """Params from a YAML file (None: the defaults); each problem is a line of one WsssError."""
    if path is None:
        return Params()
    if path.exists() and not path.is_dir() and not path.is_file():
        raise WsssError(
            f"{path}: not a regular file (a device or pipe); expected a params YAML file"
        )
    if path.is_file() and path.stat().st_size > MAX_PARAMS_BYTES:
        raise WsssError(f"{path}: over {MAX_PARAMS_BYTES // 1024} KiB; not a params file")
    try:
        # YAML 1.2, as DVC reads and rewrites params.yaml (`dvc exp run -S`): a bare `off` stays
        # the string "off" and 1e-5 is a number (YAML 1.1 parsers make them False and a string)
        raw = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise WsssError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise WsssError(f"{path}: a directory, expected a params YAML file") from None
    except UnicodeDecodeError as exc:
        raise WsssError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise WsssError(f"{where}: not valid YAML ({problem})") from None
    return parse_params(raw, str(path))


def parse_params(raw: object, where: str) -> Params:
    """Params from a mapping of sections (a YAML file's, or a KFP run's parameters)."""
    if not isinstance(raw, dict):
        raise WsssError(f"{where}: expected a mapping of sections at the top level")
    _require_plain(raw, where, "")
    # unknown sections in one line: another file of mappings (a JSON index) is not a line per key
    if unknown := [k for k in raw if k not in Params.model_fields]:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if unknown[3:] else "")
        sections = ", ".join(Params.model_fields)
        s = "s" if unknown[1:] else ""
        raise WsssError(f"{where}: {shown}: unknown key{s} (the sections are {sections})")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        errors: list[Any] = []
        for err in exc.errors():  # one problem per key: not also its consequence for the parent
            if not any(
                _nested(err["loc"], e["loc"]) or _nested(e["loc"], err["loc"]) for e in errors
            ):
                errors.append(err)
        problems = [_problem(err, raw) for err in errors]
        # every problem at once, each on its own `error:` line (the CLI prefixes the first)
        raise WsssError("\nerror: ".join(f"{where}: {p}" for p in problems)) from None


PLAIN = (str, int, float, bool, type(None))


def _require_plain(value: object, where: str, key: str) -> None:
    """Refuse any value but a plain scalar, list or string-keyed mapping: a YAML `!!set`'s order
    (and with it params_digest) would follow PYTHONHASHSEED; a timestamp or binary is no
    setting."""
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise WsssError(f"{where}: {key or '<top level>'}: a key that is not a string")
            _require_plain(item, where, f"{key}.{name}" if key else name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _require_plain(item, where, f"{key}.{i}")
    elif not isinstance(value, PLAIN):
        raise WsssError(
            f"{where}: {key}: a {type(value).__name__}; expected a plain scalar, list or mapping"
        )


def _nested(inner: tuple, outer: tuple) -> bool:
    return inner[: len(outer)] == outer


def _problem(err: Any, raw: dict) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "<top level>"
    what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    what = what.removeprefix("Value error, ")
    if err["type"] == "extra_forbidden" and err["loc"][0] == "train_cam":
        method = raw["train_cam"].get("method", DEFAULT_METHOD)
        what += f" for method {method!r} (each CAM method has its own keys: README)"
    return f"{key}: {what}"


def digest(obj: Any) -> str:
    """sha256 of an object's canonical JSON: equal params give equal digests, across machines."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
