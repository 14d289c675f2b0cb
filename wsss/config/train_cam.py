"""train_cam's params: what every CAM method shares (TrainCamParams) and each method's own
model, chosen by `method`. wsss.methods holds each method's code under the same name."""

from typing import Literal

from pydantic import Field, ValidationError, model_validator

from wsss.config.fields import (
    BatchSize,
    Channels,
    Epochs,
    Iterations,
    LongSide,
    Rates,
    Section,
    Width,
    check_below,
)

DEFAULT_METHOD = "ktse"


class TrainCamParams(Section):
    """train_cam: what every CAM method shares; each method's params model below extends it
    with its own fields, chosen by `method`.

    Defaults are the ToyVOC preset; params/voc.yaml carries the official recipe's effective
    values (docs/method.md §10.1-2).
    """

    method: str = DEFAULT_METHOD  # a name in METHOD_PARAMS
    weights: str | None = None  # ImageNet weights of the network: a local path or s3://
    split: str = "train_aug"
    epochs: Epochs = 20
    batch_size: BatchSize = 8  # per process
    long_side: LongSide = (64, 88)  # random resize of the longer side, then crop
    crop: int = Field(default=64, ge=16, le=2048)
    hflip: float = Field(default=0.5, ge=0, le=1)
    checkpoint_every: int = Field(default=50, ge=1)  # steps


class CnnCamParams(TrainCamParams):
    backbone: Literal["toy", "resnet38d", "resnet50", "resnet101", "efficientnet_lite0"] = "toy"
    # weights: MXNet .params (resnet38d) or a torch state dict; null for toy
    toy_width: Width = 16
    # step_batch: BatchNorm whose derived forwards (KTSE's partner, stacked pair, erased copy)
    # reuse the anchor batch's statistics (StepBatchNorm2d); group: GroupNorm, DDP-split invariant
    toy_norm: Literal["step_batch", "group"] = "step_batch"
    lr: float = Field(default=0.3, gt=0)  # ToyVOC trains from scratch: 30x the ImageNet-init lr
    momentum: float = Field(default=0.0005, ge=0, lt=1)  # the official effective value (§10.1)
    weight_decay: float = Field(default=5e-4, ge=0)
    poly_power: float = Field(default=0.9, ge=0)
    poly_horizon_steps: int | None = Field(default=None, ge=1)  # None: the steps actually run


class BaselineParams(CnnCamParams):
    method: Literal["baseline"] = "baseline"
    # the official recipe's first T epochs run at their own batch size (docs/method.md §2)
    warmup_epochs: int = Field(default=6, ge=0, le=10_000)
    warmup_batch_size: BatchSize = 8


class DestructionParams(CnnCamParams):
    """The abstract fixes none of these. A 4x4 jigsaw of a 64-px toy crop gives 16-px patches,
    about one discriminative part (320-px VOC crops: 80 px, a part of a typical object); 2x2
    patches of the mid-level map are the coarsest cut that still isolates local context (8x8
    cells of the toy's 16x16 map, 20x20 of VOC's 40x40); both extra losses weigh like L_cls."""

    method: Literal["destruction"] = "destruction"
    ldm_grid: int = Field(default=4, ge=2, le=64)
    ldm_weight: float = Field(default=1.0, ge=0)
    mdc_grid: int = Field(default=2, ge=1, le=64)
    mdc_weight: float = Field(default=1.0, ge=0)


class KtseParams(BaselineParams):
    """The baseline's recipe plus KTSE's three parts, each a switch (docs/method.md §3)."""

    method: Literal["ktse"] = "ktse"
    sie: bool = True  # simulated inter-image erasing: L_kt (+ L_seg_two when ssr is on)
    ssr: bool = True  # self-supervised regularization: PAR pseudo-labels, L_seg
    mga: bool = True  # multi-granularity alignment: erase at erase_threshold, L_local + L_global
    # warmup_epochs (T): L_cls only before this epoch
    tau_fg: float = Field(default=0.3, gt=0, lt=1)
    tau_bg: float = Field(default=0.15, gt=0, lt=1)
    w_fg: float = Field(default=0.0125, ge=0)
    w_inter: float = Field(default=0.005, ge=0)
    inter_threshold: float = Field(default=0.2, ge=0, le=1)  # beta_o
    erase_threshold: float = Field(default=0.6, ge=0, le=1)
    # MGA's gradient flow. "both": into both sides of L_local and L_global (the official code).
    # "paper": as the paper describes each loss, only into its student: L_global distills the
    # anchor's class confidence into the erased image, L_local transfers what the erased image
    # found back to the anchor (docs/method.md §3; the teacher side is detached).
    mga_gradients: Literal["both", "paper"] = "both"
    margin: float = Field(default=0.05, ge=0)
    num_pair: int = Field(default=4, ge=1)  # anchors per batch that get a simulated pair
    par_dilations: Rates = (1, 2, 4, 8, 12, 24)
    par_iterations: Iterations = 10

    @model_validator(mode="after")
    def _consistent(self) -> "KtseParams":
        check_below(self, "tau_bg", "tau_fg")
        if self.sie or self.ssr or self.mga:
            # otherwise SIE/SSR/MGA would never run and the model would be the baseline
            check_below(self, "warmup_epochs", "epochs")
            if self.sie and self.num_pair > self.batch_size:
                raise ValueError(
                    f"num_pair ({self.num_pair}) must be at most batch_size ({self.batch_size})"
                )
        return self


class FsrParams(TrainCamParams):
    """FSR's own encoder (a ViT), optimizer and schedules. Where ToyVOC's from-scratch ViT and
    1,000 steps differ from FSR's ImageNet ViT-B/16 and 20k steps, the default says why;
    docs/method.md §8 has FSR's VOC values."""

    method: Literal["fsr"] = "fsr"
    # weights: torchvision's ViT-B/16 state dict for vit_b16; vit_toy trains from scratch
    encoder: Literal["vit_toy", "vit_b16"] = "vit_toy"
    # DINO heads' hidden, bottleneck and prototype widths, the decoder's width (toy-sized)
    head: tuple[Channels, Channels, Channels, Channels] = (256, 64, 512, 64)
    lr: float = Field(default=1e-3, gt=0)  # from scratch; FSR's 6e-5 fine-tunes ImageNet weights
    weight_decay: float = Field(default=0.05, ge=0)
    warmup: float = Field(default=0.075, ge=0, le=1)  # fraction of steps (1.5k of 20k)
    ema: float = Field(default=0.99, gt=0, lt=1)  # 0.9995 averages over 10% of 20k steps
    min_scale: float = Field(default=0.32, gt=0, le=1)  # second view's crop area
    mask_block: int = Field(default=2, ge=1)  # tokens per block side (16 px of a 64 crop)
    mask_ratio: float = Field(default=0.4, gt=0, lt=1)
    random_mask: float = Field(default=0.2, ge=0, le=1)  # fraction of training (4k of 20k)
    uncertain: tuple[float, float] = (0.2, 0.7)
    w_class: float = Field(default=0.1, ge=0)
    w_patch: float = Field(default=0.1, ge=0)
    w_seg: float = Field(default=0.1, ge=0)
    seg_start: float = Field(default=0.1, ge=0, le=1)  # fraction of training (2k of 20k)
    seg_thresholds: tuple[float, float] = (0.7, 0.25)  # fg, bg of the decoder's labels
    teacher_temp: tuple[float, float] = (0.04, 0.07)
    temp_warmup: float = Field(default=0.125, gt=0, le=1)  # fraction of training (2.5k)
    student_temp: float = Field(default=0.1, gt=0)
    center_momentum: float = Field(default=0.9, ge=0, lt=1)
    par_dilations: Rates = (1, 2, 4, 8, 12, 24)
    par_iterations: Iterations = 10

    @model_validator(mode="after")
    def _consistent(self) -> "FsrParams":
        if self.encoder == "vit_toy" and self.weights is not None:
            raise ValueError("weights: vit_toy trains from scratch; set it to null")
        return self


METHOD_PARAMS: dict[str, type[TrainCamParams]] = {
    "baseline": BaselineParams,
    "ktse": KtseParams,
    "destruction": DestructionParams,
    "fsr": FsrParams,
}


def cam_params(raw: object) -> object:
    """train_cam is validated by the params model of its `method`: a tagged union whose tags
    are METHOD_PARAMS's names (wsss.methods.registry.METHODS has the same)."""
    if isinstance(raw, TrainCamParams) or not isinstance(raw, dict):
        return raw  # an instance is kept; anything else fails as "a valid dictionary"
    name = raw.get("method", DEFAULT_METHOD)
    if not isinstance(name, str) or name not in METHOD_PARAMS:  # a list or dict is no name either
        expected = ", ".join(f"'{m}'" for m in METHOD_PARAMS)
        raise ValidationError.from_exception_data(
            "train_cam",
            [
                {
                    "type": "literal_error",
                    "loc": ("method",),
                    "input": name,
                    "ctx": {"expected": expected},
                }
            ],
        )
    return METHOD_PARAMS[name].model_validate(raw)


def switch_method(p: TrainCamParams, name: str) -> TrainCamParams:
    """P's section for method NAME: the fields of the two params models' closest common base
    are kept (a field of the same name may mean another thing: FSR's AdamW `lr`), NAME's own
    take their defaults. How benchmarks compare methods on one recipe."""
    target = METHOD_PARAMS[name]
    common = next(c for c in type(p).__mro__ if c in target.__mro__)
    shared = {k: v for k, v in p.model_dump().items() if k in common.model_fields}
    return target.model_validate(shared | {"method": name})
