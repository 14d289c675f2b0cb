"""Throughput (images/s) and peak memory of one full KTSE training step (all losses on).

CPU: the toy backbone at the ToyVOC preset (batch 8, crop 64), and EfficientNet-Lite0 (ImageNet
weights, params/toy_efficientnet.yaml) at the same batch and crop. GPU, when one is present:
ResNet38d + GPP at 320 x 320, batch 16, bf16 autocast, channels_last. Median of the timed steps
after warm-up. Writes results/train_cam_speed.json.

    python -m benchmarks.train_cam_speed [--steps 10]
"""

import argparse
import resource
import statistics
import time

import torch

from benchmarks.common import run_benchmark, write_json
from wsss.config.train_cam import KtseParams
from wsss.methods.registry import build_method
from wsss.models.backbones import build_backbone
from wsss.models.cam import CamNet
from wsss.runtime import autocast


def measure(p: KtseParams, device: torch.device, steps: int) -> dict:
    torch.manual_seed(0)
    model = CamNet(build_backbone(p.backbone, None, p.toy_width), 20).to(device).train()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    params = model.trainable_parameters()
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=p.momentum)
    method = build_method(p.model_copy(update={"warmup_epochs": 0}))
    b = p.batch_size
    y = torch.zeros(b, 20, device=device)
    y[torch.arange(b), torch.arange(b) % 20] = 1
    y[: b // 2, 7] = 1  # half the batch has two classes (complex images)
    batch = {
        "image": torch.randn(b, 3, p.crop, p.crop, device=device),
        "pair_image": torch.randn(b, 3, p.crop, p.crop, device=device),
        "labels": y,
        "pair_labels": y.roll(1, 0),
    }
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with autocast(device):
            loss, _ = method.loss(model, batch, epoch=1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:  # warm-up steps excluded
            times.append(time.perf_counter() - start)
    step = statistics.median(times)
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "backbone": p.backbone,
        "batch": b,
        "crop": p.crop,
        "step_s_median": step,
        "images_per_s": b / step,
        "peak_mem_mib": peak,
        "peak_mem_kind": "cuda max_memory_allocated"
        if device.type == "cuda"
        else "process max RSS",
        "steps_timed": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    cpu, lite0 = torch.device("cpu"), KtseParams(backbone="efficientnet_lite0")
    results = {
        "cpu_toy": measure(KtseParams(), cpu, args.steps),
        "cpu_efficientnet_lite0": measure(lite0, cpu, args.steps),
    }
    if torch.cuda.is_available():
        gpu = KtseParams(backbone="resnet38d", batch_size=16, crop=320, momentum=0.0005, lr=0.01)
        results["gpu_resnet38d"] = measure(gpu, torch.device("cuda"), args.steps)
    write_json("train_cam_speed", results)
    for name, r in results.items():
        print(
            f"{name}: {r['images_per_s']:.1f} img/s, step {1000 * r['step_s_median']:.0f} ms, "
            f"peak {r['peak_mem_mib']:.0f} MiB ({r['peak_mem_kind']})"
        )


if __name__ == "__main__":
    run_benchmark(main)
