"""Progress for logs read without a terminal (CI, DVC, a KFP pod's log), where tqdm's bar is off:
elapsed time, throughput and time left, as fields of the JSON log lines."""

import time


class Progress:
    """TOTAL units of work (steps, images), DONE of them before this process started (a resumed
    run); `update` counts units and the items they carried (images), for the rate."""

    def __init__(self, total: int, done: int = 0) -> None:
        self.start, self.total, self.first, self.done = time.monotonic(), total, done, done
        self.items = 0

    def update(self, units: int = 1, items: int = 0) -> None:
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
