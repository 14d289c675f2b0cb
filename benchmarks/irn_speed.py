"""Per-image time of export_masks' compute (boundary inference with flip + the random walk)
against image size, and peak memory.

CPU: the toy IRNet at the ToyVOC preset (2^3 walk steps) and the ResNet-50 IRNet at IRN's
settings (2^8 steps); the same on GPU when one is present (bf16 autocast). Random weights and
CAMs of two classes: the cost does not depend on their values. Median over repeats after one
warm-up. Writes results/irn_speed.json.

    python -m benchmarks.irn_speed [--repeats 3]
"""

import argparse
import resource
import statistics
import time

import torch

from benchmarks.common import run_benchmark, write_json
from wsss.config.params import ExportMasksParams
from wsss.models.irn import build_irnet
from wsss.stages.export_masks import boundaries, walk_cams

CONFIGS = {  # name: (backbone, toy/edge/disp widths, exp_times, image sides)
    "toy": ("toy", (16, 16, 64), 3, (96, 192, 320)),
    "resnet50": ("resnet50", (16, 32, 256), 8, (256, 384, 512)),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, device: torch.device, repeats: int) -> list[dict]:
    backbone, widths, exp_times, sides = CONFIGS[name]
    model = build_irnet(backbone, None, *widths).to(device).eval()
    p = ExportMasksParams(exp_times=exp_times)
    rows = []
    for side in sides:
        torch.manual_seed(0)
        image = torch.randn(1, 3, side, side, device=device)
        cams = torch.rand(1, 2, (side - 1) // 4 + 1, (side - 1) // 4 + 1, device=device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for i in range(repeats + 1):
            _sync(device)
            start = time.perf_counter()
            walk_cams(cams, boundaries(model, image, p.flip), (side, side), p)
            _sync(device)
            if i:
                times.append(time.perf_counter() - start)
        peak = (
            torch.cuda.max_memory_allocated(device) / 2**20
            if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        rows.append(
            {
                "model": name,
                "side": side,
                "walk_steps": 2**exp_times,
                "s_per_image_median": statistics.median(times),
                "peak_mem_mib": peak,
                "peak_mem_kind": "cuda max_memory_allocated"
                if device.type == "cuda"
                else "process max RSS (cumulative)",
            }
        )
        r = rows[-1]
        print(
            f"{device.type} {name} {side}px: {1000 * r['s_per_image_median']:.0f} ms/image, "
            f"peak {r['peak_mem_mib']:.0f} MiB"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    results = {
        f"{d.type}_{name}": measure(name, d, args.repeats) for d in devices for name in CONFIGS
    }
    write_json("irn_speed", results)


if __name__ == "__main__":
    run_benchmark(main)
