"""The error types that mean "bad input or params": the CLI turns them into one line, exit 2."""

import math
import pickle


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


def load_problem(exc: Exception) -> str:
    """One line saying why torch.load failed, never torch's advice to unpickle code."""
    if isinstance(exc, pickle.UnpicklingError):  # the safe loader refused what the file holds
        return "it holds objects other than tensors and plain data; wsss never unpickles code"
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
