"""The CAM methods side by side on ToyVOC with the same budget: seeds of each method's CAMs.

Every method trains train_cam with the ToyVOC preset (params.yaml: the keys every method shares,
such as epochs, batch size, crops and seed, and the CNN methods' backbone and lr), each with its
own keys at their defaults, then extract_seeds scores the seeds on
`train`, and measures where the CAMs fire: mean activation on the objects' parts and bodies, and
the share of body pixels above the seed threshold, and how often an object's CAM peaks on its
part (benchmarks.common.body_and_part). Writes
results/methods.json ({"baseline": seed_miou, ...}, fractions) and prints a table beside the
papers' numbers (VOC, not comparable in absolute terms: a different dataset and backbone; the
ordering is what ToyVOC can check). `--parts small` runs them on ToyVOC v2 (small parts) and
writes results/methods_small_parts*.json instead, `--tint 0 --parts small` on v1 (bodies
identical within a family: methods_tint0_small_parts*.json).

    python -m benchmarks.methods [--methods baseline ktse destruction fsr] [--seed 0] [--tint 32]
        [--parts large|small]
"""

import argparse

from benchmarks.common import (
    body_and_part,
    cam_seeds,
    read_json,
    run_benchmark,
    scratch,
    toy_dataset,
    toy_options,
    toy_variant,
    write_json,
)
from wsss.config.params import load_params
from wsss.config.train_cam import switch_method
from wsss.methods.registry import METHODS

PAPERS = {  # reported on VOC 2012
    "baseline": "54.2 seeds (KTSE's Table 6 base)",
    "ktse": "67.0 seeds (train)",
    "destruction": "69.1 segmentation (test)",
    "fsr": "not in docs/method.md (only its abstract and code facts)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    toy_options(parser)
    args = parser.parse_args()
    work = scratch()
    config, suffix = toy_variant(args.tint, args.parts)
    dataset = toy_dataset(work, config)
    name = f"methods{suffix}"
    base = load_params(None)
    runs = {}
    for method in args.methods:
        params = base.model_copy(
            update={
                "train_cam": switch_method(base.train_cam, method),
                "runtime": base.runtime.model_copy(update={"seed": args.seed}),
            }
        )
        runs[method] = cam_seeds(dataset, work / method, params)
        seeds = params.extract_seeds
        runs[method] |= body_and_part(
            dataset, work / method / "cams", seeds.score_split, seeds.threshold
        )
    # a subset of methods updates their entries and keeps the others'
    merged = read_json(f"{name}_runs", {"runs": {}})["runs"] | runs
    write_json(name, {m: merged[m]["seed_miou"] for m in METHODS if m in merged})
    write_json(
        f"{name}_runs",
        {"seed": args.seed, "tint": config.tint, "parts": config.parts, "runs": merged},
    )
    print(
        f"{'method':<12} {'seed mIoU':>9} {'fixed':>6} {'part':>5} {'body':>5} {'covered':>7} "
        f"{'peak@part':>9} {'train s':>8}  paper (VOC)"
    )
    for method, r in runs.items():
        print(
            f"{method:<12} {100 * r['seed_miou']:>9.1f} {100 * r['seed_miou_fixed']:>6.1f} "
            f"{r['part_activation']:>5.2f} {r['body_activation']:>5.2f} "
            f"{100 * r['body_covered']:>6.1f}% {100 * r['peak_on_part']:>8.1f}% "
            f"{r['train_s']:>8.0f}  {PAPERS.get(method, '')}"
        )


if __name__ == "__main__":
    run_benchmark(main)
