"""Progress for logs read without a terminal (CI, DVC, a KFP pod's log), where tqdm's bar is off,
and the cost of each phase of a stage (what `wsss estimate` scales to a full run).

Every Progress is a phase of the running stage: its unit (step, image), the units done, the
mean seconds per unit, and how many units the full run would do. The runner collects the phases
into the artifact's run.json.
"""

import json
import resource
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

LOG_EVERY_S = 30.0  # without a terminal: a line about every 1 % of the work or 30 s
_phases: list["Progress"] = []


class Progress:
    """TOTAL units of work (steps, images) of phase NAME, DONE of them before this process started
    (a resumed run); FULL: the units a full run would do (a smoke run does fewer). `update`
    counts units and the items they carried (images), for the rate."""

    def __init__(
        self, total: int, done: int = 0, name: str = "", unit: str = "", full: int | None = None
    ) -> None:
        self.start, self.total, self.first, self.done = time.monotonic(), total, done, done
        self.items = 0
        self.name, self.unit, self.full = name, unit, total if full is None else full
        self.last = self.start  # when the last unit ended: what the stage did after is not this
        self.full_seconds: float | None = None  # the full run's time, where the phase knows it
        if name:
            _phases.append(self)

    def update(self, units: int = 1, items: int = 0) -> None:
        self.last = time.monotonic()
        self.done += units
        self.items += items

    def facts(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        per_unit = elapsed / max(self.done - self.first, 1)
        return {
            "elapsed_s": round(elapsed, 1),
            "images_s": round(self.items / elapsed, 1),
            "eta_s": round(per_unit * (self.total - self.done)),
        }

    def cost(self) -> dict[str, object]:
        """This phase as run.json records it: the mean seconds per unit, the first included (a
        smoke run of a few units over-estimates what warm-up adds; workers that deliver in
        bursts make any later unit alone meaningless)."""
        units = self.done - self.first
        elapsed = self.last - self.start
        return {
            "phase": self.name,
            "unit": self.unit,
            "done": units,
            "seconds": round(elapsed, 3),
            "seconds_per_unit": round(elapsed / max(units, 1), 6),
            "full": self.full,
        } | ({} if self.full_seconds is None else {"full_seconds": round(self.full_seconds, 1)})


def start_phases() -> None:
    """Forget the phases of an earlier stage in this process."""
    _phases.clear()


def phase_costs() -> list[dict[str, object]]:
    return [p.cost() for p in _phases]


def peak_memory() -> dict[str, int]:
    """Peak memory in bytes: the process's resident set ("cpu_rss", over its life: a stage's
    process runs one stage; data-loading workers are not in it) and on CUDA torch's
    max_memory_allocated ("cuda")."""
    peak = {"cpu_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}  # Linux: KiB
    torch = sys.modules.get("torch")  # read only if the stage used it
    if torch is not None and torch.cuda.is_initialized():
        peak["cuda"] = int(torch.cuda.max_memory_allocated())
    return peak


def track(
    batches: Iterable[list[T]], images: int, stage: str, full: int | None = None
) -> Iterator[list[T]]:
    """Iterate BATCHES (lists of items) over IMAGES images as phase STAGE: tqdm's bar on a
    terminal, else a JSON line {"stage", "done", "of", "images_s", "eta_s"} about every 1 % of
    the images or LOG_EVERY_S seconds, and the last."""
    clock = Progress(images, name=stage, unit="image", full=full)
    bar = tqdm(total=images, desc=stage, disable=None)
    every, last_line = max(images // 100, 1), time.monotonic()
    for batch in batches:
        yield batch
        clock.update(len(batch), len(batch))
        bar.update(len(batch))
        due = clock.done % every < len(batch) or time.monotonic() - last_line >= LOG_EVERY_S
        if bar.disable and (due or clock.done >= images):
            line = {"stage": stage, "done": clock.done, "of": images} | clock.facts()
            print(json.dumps(line), flush=True)
            last_line = time.monotonic()
    bar.close()
