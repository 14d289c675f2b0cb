"""S3 transfers, serial vs concurrent, against a real server (SeaweedFS on loopback): objects/s
and MB/s of an artifact push (`push_artifact`) and a dataset root sync (`sync_root`) for many
small files (VOC-like: tens of thousands of JPEGs and PNGs) and a few large ones (models, CAMs).

    python -m benchmarks.s3_sync [--small 10000] [--large 50] [--reps 3] [--workers 1 8]

Writes benchmarks/results/s3_sync.json (medians over --reps)."""

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.common import run_benchmark, scratch, write_json
from tests.s3server import ACCESS_KEY, SECRET, SeaweedS3
from wsss.artifacts.manifest import MANIFEST
from wsss.artifacts.storage import push_artifact, store, sync_root


def _files(root: Path, count: int, size: int, seed: int) -> list[str]:
    """COUNT files of SIZE random bytes under ROOT (two levels of folders, like a VOC root)."""
    rng = np.random.default_rng(seed)
    rels = [f"d{i % 4}/{i:06d}.bin" for i in range(count)]
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rng.bytes(size))
    (root / MANIFEST).write_text("{}")  # push_artifact uploads it last
    return rels


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, root: Path, rels: list[str], workers: int, reps: int) -> dict:
    os.environ["WSSS_S3_WORKERS"] = str(workers)
    megabytes = sum((root / rel).stat().st_size for rel in rels) / 1e6
    ups, downs = [], []
    for rep in range(reps):
        uri = f"s3://bench/{name}-{workers}-{rep}"
        ups.append(_timed(lambda uri=uri: push_artifact(root, uri, rels)))
        downs.append(_timed(lambda uri=uri: sync_root(uri)))
    up, down = statistics.median(ups), statistics.median(downs)
    row = {"files": len(rels), "megabytes": round(megabytes, 1), "workers": workers}
    row |= {"push_s": round(up, 3), "push_objects_s": round((len(rels) + 1) / up, 1)}
    row |= {"push_mb_s": round(megabytes / up, 1), "sync_s": round(down, 3)}
    row |= {"sync_objects_s": round((len(rels) + 1) / down, 1)}
    row |= {"sync_mb_s": round(megabytes / down, 1), "reps": reps}
    print(
        f"{name:5s} workers={workers}: push {row['push_objects_s']:7.1f} obj/s "
        f"{row['push_mb_s']:7.1f} MB/s | sync {row['sync_objects_s']:7.1f} obj/s "
        f"{row['sync_mb_s']:7.1f} MB/s",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10000, help="files of 4 kB")
    parser.add_argument("--large", type=int, default=50, help="files of 8 MB")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    work = scratch()
    server = SeaweedS3(work / "seaweedfs").start()
    try:
        os.environ |= {"S3_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY}
        os.environ |= {"AWS_SECRET_ACCESS_KEY": SECRET, "WSSS_CACHE_DIR": str(work / "cache")}
        store().client.make_bucket("bench")
        rows = []
        for name, count, size in (("small", args.small, 4000), ("large", args.large, 8_000_000)):
            root = work / name
            rels = _files(root, count, size, seed=len(rows))
            for workers in args.workers:
                rows.append({"set": name, **measure(name, root, rels, workers, args.reps)})
            shutil.rmtree(root)
        serial = {r["set"]: r for r in rows if r["workers"] == min(args.workers)}
        for row in rows:
            base = serial[row["set"]]
            row["push_speedup"] = round(base["push_s"] / row["push_s"], 2)
            row["sync_speedup"] = round(base["sync_s"] / row["sync_s"], 2)
        print(f"wrote {write_json('s3_sync', {'cpus': os.cpu_count(), 'rows': rows})}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_benchmark(main)
