"""The building blocks of every params model: the base section and the bounded field types.

Size-like settings are bounded where params are read, so that a value that validates cannot
crash a stage hours later (an absurd width, a million epochs, a sweep of 10^300 thresholds).
"""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _ascending(pair: tuple) -> tuple:
    if pair[0] > pair[1]:
        raise ValueError(f"the low end {pair[0]} is above the high end {pair[1]}")
    return pair


MAX_SWEEP = 1000


def _sweep(sweep: tuple[float, float, float]) -> tuple[float, float, float]:
    start, stop, step = sweep
    if not (0 <= start < stop <= 1 and step > 0):
        raise ValueError("expected [start, stop, step] with 0 <= start < stop <= 1 and step > 0")
    if (stop - start) / step > MAX_SWEEP:
        raise ValueError(f"more than {MAX_SWEEP} thresholds; take a larger step")
    return sweep


# A threshold sweep: [start, stop (exclusive), step] within [0, 1]
Sweep = Annotated[tuple[float, float, float], AfterValidator(_sweep)]
# Inference scales: each a factor in [0.25, 8] (wsss.data.io.MIN_SIDE keeps a side >= 4 px); 1+
Scales = Annotated[tuple[Annotated[float, Field(ge=0.25, le=8)], ...], Field(min_length=1)]
# Random rescale ranges: factors in (0, 8], low <= high
Factor = Annotated[float, Field(gt=0, le=8)]
Range = Annotated[tuple[Factor, Factor], AfterValidator(_ascending)]
# Dilations and ASPP rates: positive integers; at least one
Rates = Annotated[
    tuple[Annotated[int, Field(ge=1, le=256)], ...], Field(min_length=1, max_length=8)
]
LongSide = Annotated[
    tuple[Annotated[int, Field(ge=8, le=8192)], Annotated[int, Field(ge=8, le=8192)]],
    AfterValidator(_ascending),
]
Epochs = Annotated[int, Field(ge=1, le=10_000)]
BatchSize = Annotated[int, Field(ge=1, le=4096)]
Width = Annotated[int, Field(ge=8, le=1024)]  # a toy network's channels
Shown = Annotated[int, Field(ge=0, le=256)]  # images in a figure
Iterations = Annotated[int, Field(ge=0, le=100)]
Channels = Annotated[int, Field(ge=1, le=4096)]


# Affinity radii: the offsets (and memory) grow with its square; IRN uses 10 and 5.
MAX_RADIUS = 32


class Section(BaseModel):
    # A NaN or infinite number is never a setting (a NaN passes every range check unseen).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def check_below(section: BaseModel, low: str, high: str) -> None:
    """A model validator's check that field LOW is below field HIGH."""
    if getattr(section, low) >= getattr(section, high):
        raise ValueError(
            f"{low} ({getattr(section, low)}) must be below {high} ({getattr(section, high)})"
        )
