"""The error types that mean "bad input or params": the CLI turns them into one line, exit 2."""

import math


class WsssError(Exception):
    """Bad input, bad params or an unusable artifact; the message names the file or field."""


class Diverged(WsssError):
    """Training produced a non-finite loss: the params (most often the learning rate) do not
    suit the data. Benchmarks catch it to record the run as diverged and go on."""

    def __init__(self, stage: str, step: int, parts: dict[str, float]):
        bad = ", ".join(k for k, v in parts.items() if not math.isfinite(v))
        super().__init__(
            f"{stage}: the loss became non-finite at step {step} ({bad}); "
            "lower the learning rate or check the data"
        )
        self.step = step
