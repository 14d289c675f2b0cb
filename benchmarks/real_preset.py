"""The real presets (params/voc.yaml, params/coco.yaml) as a smoke run on CPU, on generated roots
of real-size images: each stage's time, peak memory and artifact size, and `wsss estimate`'s
full-run projection. Random weights (no ImageNet file can be downloaded here).

    python -m benchmarks.real_preset --preset voc [--images 2] [--cpu-budget] [--voc-sizes]

--cpu-budget keeps the networks, crops, CRF and image sizes but trains at batch 2 (train_cam at
4: SIE pairs 4 images) for one step per phase and infers at one scale, as the slow tests do: on 2
CPU cores the preset's batch 16 and four scales of ResNet38d take hours. Writes
benchmarks/results/real_preset_<preset>[_cpu_budget].json.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from benchmarks.common import run_benchmark, write_json
from wsss.artifacts.manifest import read_run_record
from wsss.data.classes import COCO_CLASSES, VOC_CLASSES
from wsss.data.io import write_mask
from wsss.errors import WsssError
from wsss.estimate import estimate, format_estimate
from wsss.stages import PIPELINE

REPO = Path(__file__).resolve().parents[1]
# The sizes the datasets' images most often have (width, height)
SIZES = {"voc": [(500, 375), (375, 500), (500, 333)], "coco": [(640, 480), (480, 640), (640, 427)]}
SPLITS = {"voc": {"train_aug": 6, "train": 4, "val": 3}, "coco": {"train": 6, "val": 3}}
# VOC 2012 + SBD's split sizes (--voc-sizes): what `wsss estimate` scales a smoke run to
VOC_SIZES = {"train_aug": 10582, "train": 1464, "val": 1449}
DISTINCT = 12  # images drawn; the others of a --voc-sizes root are hard links to them
CLASSES_PER_IMAGE = 3


def _image(size: tuple[int, int], classes: list[int], rng: np.random.Generator):
    """An RGB image and its label map (0 background, c + 1 for class c): one textured ellipse
    per class on a noisy background."""
    w, h = size
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) // 4 + 96
    mask = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for c in classes:
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.1, 0.25) * h, rng.uniform(0.1, 0.25) * w
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        colour = np.array([(37 * c) % 256, (91 * c) % 256, (53 * c) % 256], np.uint8)
        rgb[inside] = colour // 2 + rgb[inside] // 2
        mask[inside] = c + 1
    return rgb, mask


def write_root(root: Path, preset: str, seed: int = 0, voc_sizes: bool = False) -> Path:
    """A VOC 2012 or COCO 2014 root of real-size images, CLASSES_PER_IMAGE classes each; with
    VOC_SIZES (VOC only) at VOC's split sizes, all but DISTINCT images hard links (no disk, and
    a smoke run decodes only its cut; indexing reads every annotation)."""
    rng = np.random.default_rng(seed)
    names = VOC_CLASSES if preset == "voc" else COCO_CLASSES
    ids: dict[str, list[str]] = {}
    made: list[str] = []
    for split, count in (VOC_SIZES if voc_sizes else SPLITS[preset]).items():
        if split == "train" and preset == "voc":  # VOC's train lies inside train_aug
            ids[split] = ids["train_aug"][:count]
            continue
        subset = "val2014" if split == "val" else "train2014"
        ids[split] = [
            f"2012_{len(made) + i:06d}"
            if preset == "voc"
            else f"COCO_{subset}_{len(made) + i:012d}"
            for i in range(count)
        ]
        made += ids[split]
    for i, image_id in enumerate(made):
        if i >= DISTINCT:
            _link_like(root, made[i % DISTINCT], image_id)
            continue
        classes = sorted(rng.choice(len(names), CLASSES_PER_IMAGE, replace=False).tolist())
        rgb, mask = _image(SIZES[preset][i % 3], classes, rng)
        if preset == "voc":
            image, label = root / "JPEGImages" / f"{image_id}.jpg", root / "SegmentationClassAug"
            _voc_xml(root / "Annotations" / f"{image_id}.xml", [names[c] for c in classes])
        else:
            subset = image_id.split("_")[1]
            image, label = root / subset / f"{image_id}.jpg", root / "SegmentationClass" / subset
        image.parent.mkdir(parents=True, exist_ok=True)
        label.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(image, quality=90)
        write_mask(label / f"{image_id}.png", mask)
    lists = root / ("ImageSets/Segmentation" if preset == "voc" else "ImageSets")
    lists.mkdir(parents=True, exist_ok=True)
    for split, split_ids in ids.items():
        (lists / f"{split}.txt").write_text("".join(f"{i}\n" for i in split_ids))
    return root


def _link_like(root: Path, source: str, image_id: str) -> None:
    """VOC image IMAGE_ID as hard links to SOURCE's image, mask and annotation."""
    for folder, suffix in (
        ("JPEGImages", "jpg"),
        ("SegmentationClassAug", "png"),
        ("Annotations", "xml"),
    ):
        os.link(root / folder / f"{source}.{suffix}", root / folder / f"{image_id}.{suffix}")


def _voc_xml(path: Path, names: list[str]) -> None:
    annotation = ET.Element("annotation")
    for name in names:
        ET.SubElement(ET.SubElement(annotation, "object"), "name").text = name
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(annotation).write(path)


def preset_params(preset: str, out: Path, cpu_budget: bool, device: str = "cpu") -> Path:
    """The preset on DEVICE with random weights (and, with CPU_BUDGET, small batches and one
    scale)."""
    params = yaml.safe_load((REPO / "params" / f"{preset}.yaml").read_text())
    for section in ("train_cam", "train_irn", "train_deeplab"):
        params[section]["weights"] = None
    params["runtime"] |= {"device": device, "num_workers": 0}
    if cpu_budget:
        for section in ("train_irn", "train_deeplab"):
            params[section]["batch_size"] = 2
        # KTSE's SIE pairs num_pair (4) images of a batch
        params["train_cam"] |= {"batch_size": 4, "warmup_batch_size": 4}
        params["extract_seeds"]["scales"] = [1.0]
        params["evaluate"]["scales"] = [1.0]
        params["smoke"]["steps"] = 1
    out.write_text(yaml.safe_dump(params, sort_keys=False))
    return out


def smoke_run(
    work: Path,
    preset: str,
    images: int,
    cpu_budget: bool,
    device: str = "cpu",
    voc_sizes: bool = False,
) -> dict[str, Any]:
    """All seven stages as a smoke run of IMAGES images per split on DEVICE; each stage's
    record."""
    root = write_root(work / "root", preset, voc_sizes=voc_sizes)
    params = preset_params(preset, work / "params.yaml", cpu_budget, device)
    art = work / "artifacts"
    stages: dict[str, Any] = {}
    for stage in PIPELINE:
        ins = [a for n in stage.inputs for a in ("--in", f"{n}={art / n}")]
        ins = ins if stage.name != "prepare_data" else ["--in", f"root={root}"]
        argv = ["run", stage.name, *ins, "--out", str(art / stage.kind)]
        argv += ["--params", str(params), "--smoke", str(images)]
        started = time.monotonic()  # a process per stage, as in a pod: its own peak memory
        done = subprocess.run(
            [sys.executable, "-m", "wsss.cli", *argv], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{stage.name}: exit {done.returncode}: {done.stderr[-2000:]}")
        run = read_run_record(art / stage.kind)
        stages[stage.name] = {
            "seconds": round(time.monotonic() - started, 1),
            "phases": [p.model_dump() for p in run.phases],
            "peak_memory": run.peak_memory,
            "log_lines": len(done.stdout.splitlines()),
        }
    costs = estimate(str(art / "evaluation"))
    return {
        "preset": preset,
        "images_per_split": images,
        "cpu_budget": cpu_budget,
        "stages": stages,
        "estimate": {c.stage: {"full_s": c.full_s, "full_bytes": c.full_bytes} for c in costs},
        "estimate_text": format_estimate(costs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(SIZES), default="voc")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--cpu-budget", action="store_true")
    parser.add_argument("--voc-sizes", action="store_true", help="VOC's split sizes (voc only)")
    args = parser.parse_args()
    if args.voc_sizes and args.preset != "voc":
        raise WsssError("--voc-sizes: only with --preset voc")
    with tempfile.TemporaryDirectory() as tmp:
        result = smoke_run(
            Path(tmp), args.preset, args.images, args.cpu_budget, voc_sizes=args.voc_sizes
        )
    for stage, record in result["stages"].items():
        rss = record["peak_memory"].get("cpu_rss", 0) / 1e9
        full = result["estimate"][stage]["full_s"]
        print(f"{stage:<14} {record['seconds']:>8.1f} s  peak RSS {rss:.2f} GB  full {full:.0f} s")
    print("\n".join(result["estimate_text"]))
    suffix = ("_cpu_budget" if args.cpu_budget else "") + ("_voc_sizes" if args.voc_sizes else "")
    print(f"written {write_json(f'real_preset_{args.preset}{suffix}', result)}")


if __name__ == "__main__":
    run_benchmark(main)
