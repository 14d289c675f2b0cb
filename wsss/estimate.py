"""`wsss estimate`: what the full run will cost, scaled from a smoke run's artifacts.

Each stage's run.json holds its phases (wsss.progress: unit, units done, mean seconds per unit,
the full run's units, a training phase's full time) and its peak memory. A stage's full time is
its setup (the run's duration less its phases) plus each phase's full time (a training phase's
own, else seconds per unit times the full run's units); its artifact grows with its images
(files in subfolders: one per image) while its top-level files (models, figures, JSON) stay;
peak memory is the smoke run's (the same batch sizes and crops).
"""

from dataclasses import dataclass
from typing import Any

from wsss.artifacts.lineage import lineage, read_manifest
from wsss.errors import WsssError

ASSUMPTIONS = (
    "the full run uses the smoke run's device, process count and params (only smoke differs)",
    "time per image is the smoke run's mean (its first pays for warm-up: an over-estimate); a "
    "training epoch's step takes what the last step of the smoke epoch nearest to it at its "
    "batch size took",
    "per-image files (in an artifact's subfolders) grow with the images; other files stay",
    "peak memory is the smoke run's: the same networks, crops and batch sizes; peak RSS over the "
    "stage's process, CUDA's max_memory_allocated on a GPU",
    "not counted: pulling images, scheduling, copying the dataset root and artifacts over S3",
)


@dataclass(frozen=True)
class StageCost:
    stage: str
    device: str
    smoke_s: float
    full_s: float
    peak_memory: dict[str, int]
    smoke_bytes: int
    full_bytes: int


def stage_cost(node: dict[str, Any]) -> StageCost:
    """One artifact's cost at full size, from its lineage node (with its run record)."""
    run = node.get("run")
    if run is None or not run.get("phases"):
        raise WsssError(
            f"{node['uri']}: no readable cost in its run.json (absent, damaged or older than "
            "cost records): rerun its stage"
        )
    phases = run["phases"]
    setup = max(run["duration_s"] - sum(p["seconds"] for p in phases), 0.0)
    full_s = setup + sum(_full_seconds(p) for p in phases)
    images = [p for p in phases if p["unit"] == "image" and p["done"]]
    growth = max((p["full"] / p["done"] for p in images), default=1.0)
    manifest, _ = read_manifest(node["uri"])
    per_image = sum(f.size for rel, f in manifest.files.items() if "/" in rel)
    other = sum(f.size for rel, f in manifest.files.items() if "/" not in rel)
    return StageCost(
        stage=node["stage"],
        device=node["device"],
        smoke_s=run["duration_s"],
        full_s=round(full_s, 1),
        peak_memory=run.get("peak_memory", {}),
        smoke_bytes=per_image + other,
        full_bytes=round(per_image * growth) + other,
    )


def _full_seconds(phase: dict[str, Any]) -> float:
    """A phase's full-run time: its own projection (training), else per unit x full units."""
    own = phase.get("full_seconds")
    return own if own is not None else phase["seconds_per_unit"] * phase["full"]


def estimate(uri: str) -> list[StageCost]:
    """The cost of every stage behind the smoke artifact URI (itself included), upstream first."""
    tree = lineage(uri)
    if not tree.get("smoke"):
        raise WsssError(f"{uri}: not a smoke run's artifact (make one with --smoke N)")
    costs: dict[str, StageCost] = {}

    def visit(node: dict[str, Any]) -> None:
        if "error" in node:
            raise WsssError(f"{node['uri']}: {node['error']}")
        if node["kind"] == "root" or node["uri"] in costs:
            return
        for child in node["inputs"].values():
            visit(child)
        costs[node["uri"]] = stage_cost(node)

    visit(tree)
    return list(costs.values())


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def format_estimate(costs: list[StageCost]) -> list[str]:
    """The table `wsss estimate` prints, with its total and assumptions."""
    lines = [f"{'stage':<14} {'smoke':>8} {'full run':>10} {'peak memory':>12} {'artifact':>10}"]
    for c in costs:
        memory = c.peak_memory.get("cuda", c.peak_memory.get("cpu_rss", 0))
        where = "GPU" if "cuda" in c.peak_memory else "RSS"
        lines.append(
            f"{c.stage:<14} {_duration(c.smoke_s):>8} {_duration(c.full_s):>10} "
            f"{_size(memory):>8} {where} {_size(c.full_bytes):>10}"
        )
    total_s, total_bytes = sum(c.full_s for c in costs), sum(c.full_bytes for c in costs)
    lines.append(
        f"{'total':<14} {'':>8} {_duration(total_s):>10} {'':>12} {_size(total_bytes):>10}"
    )
    devices = sorted({c.device for c in costs})
    lines.append(f"measured on: {', '.join(devices)}")
    lines += [f"assumes: {a}" for a in ASSUMPTIONS]
    return lines
