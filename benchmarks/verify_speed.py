"""What verifying an input artifact costs: open_artifact with every file hashed against its
manifest, against the size check alone, on `make run`'s artifacts and on a synthetic artifact
of 10,000 files (100 KB each, about 1 GB: a VOC-sized `cams` artifact); and what checking a
dataset root's images against the sha256 prepare_data recorded adds to decoding them. Warm page
cache; the median of three.

    python -m benchmarks.verify_speed [--artifacts artifacts] [--files 10000] [--kb 100]
"""

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

from benchmarks.common import run_benchmark, scratch, write_json
from tests.helpers import seal
from wsss.artifacts.opening import open_artifact
from wsss.kinds.dataset import load_index


def median_seconds(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(path: Path) -> dict[str, float]:
    return {
        "files": len(open_artifact(path, verify=False).manifest.files),
        "verified_s": median_seconds(lambda: open_artifact(path)),
        "size_only_s": median_seconds(lambda: open_artifact(path, verify=False)),
    }


def root_reads(dataset: Path) -> dict[str, float]:
    """Every image and GT mask of the dataset decoded as the stages read them, with the bytes
    checked against the recorded sha256 and without (an index that recorded nothing)."""
    checked = load_index(dataset)
    unchecked = load_index(dataset)
    unchecked.sha256 = {}
    samples = list(checked.samples.values())

    def read_all(index) -> None:
        for sample in samples:
            index.read_image(sample)
            index.read_gt_mask(sample)

    return {
        "images": len(samples),
        "checked_s": median_seconds(lambda: read_all(checked)),
        "unchecked_s": median_seconds(lambda: read_all(unchecked)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--kb", type=int, default=100)
    args = parser.parse_args()
    results = {}
    for kind in sorted(p.name for p in args.artifacts.iterdir() if (p / "manifest.json").is_file()):
        results[kind] = measure(args.artifacts / kind)
    work = scratch()
    big = work / "cams"
    (big / "cams").mkdir(parents=True)
    for i in range(args.files):
        (big / "cams" / f"{i:06d}.npz").write_bytes(os.urandom(args.kb * 1024))
    seal(big, "cams", "extract_seeds", {})
    results[f"synthetic_{args.files}_files"] = measure(big)
    shutil.rmtree(work)
    reads = root_reads(args.artifacts / "dataset")
    for name, row in results.items():
        print(
            f"{name:<24} {row['files']:>6} files  verified {row['verified_s']:.3f} s  "
            f"size only {row['size_only_s']:.3f} s"
        )
    print(
        f"dataset root: {reads['images']} images + masks decoded  checked "
        f"{reads['checked_s']:.3f} s  unchecked {reads['unchecked_s']:.3f} s"
    )
    write_json("verify_speed", results | {"dataset_root_reads": reads})


if __name__ == "__main__":
    run_benchmark(main)
