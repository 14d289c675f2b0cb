"""KTSE seed ablation on ToyVOC (the paper's Table 6): base, +SIE, +SSR, +MGA, SIE+SSR, all three.

Each variant trains train_cam with the ToyVOC preset (params.yaml, or the file --params names,
e.g. params/toy_efficientnet.yaml) and the same seed, then runs
extract_seeds on `train`; the number is seed_miou (GT-tuned threshold, as papers report) and,
beside it, seed_miou_fixed. Writes results/ablation.json ({"base": seed_miou, ...}, fractions;
the mean over the seeds whose runs finished) and results/ablation_seeds.json with every run and
its seed, both rewritten after each run (seed 0 of every variant first), so a stopped benchmark
keeps its runs and `--resume` finishes it: runs the JSON holds for a variant and seed are not
redone. Variants not named in --variants keep the JSON's runs of the requested seeds, so the
table can be filled in one variant at a time.
A run whose loss becomes non-finite is recorded as {"diverged_at_step": N} and the rest go on.

    python -m benchmarks.ablation [--seeds 0 1 2] [--variants mga ktse] [--mga-gradients paper]
                                  [--params params/toy_efficientnet.yaml] [--parts small] [--resume]

With --params, the JSON names carry the file's stem (results/ablation_toy_efficientnet*.json);
with --tint or --parts (another ToyVOC), their suffix (results/ablation_small_parts*.json).
"""

import argparse
import statistics
from pathlib import Path

from benchmarks.common import (
    cam_seeds,
    read_json,
    run_benchmark,
    scratch,
    toy_dataset,
    toy_options,
    toy_variant,
    write_json,
)
from wsss.config.params import Params, load_params
from wsss.errors import Diverged

VARIANTS = {  # name -> (sie, ssr, mga)
    "base": (False, False, False),
    "sie": (True, False, False),
    "ssr": (False, True, False),
    "mga": (False, False, True),
    "sie_ssr": (True, True, False),
    "ktse": (True, True, True),
}
PAPER = {"base": 54.2, "sie": 57.1, "ssr": 57.4, "mga": 60.2, "sie_ssr": 63.8, "ktse": 67.0}


def run_variant(
    dataset, work, base: Params, name: str, seed: int, mga_gradients: str
) -> dict[str, float]:
    sie, ssr, mga = VARIANTS[name]
    switches = {"sie": sie, "ssr": ssr, "mga": mga, "mga_gradients": mga_gradients}
    params = base.model_copy(
        update={
            "train_cam": base.train_cam.model_copy(update=switches),
            "runtime": base.runtime.model_copy(update={"seed": seed}),
        }
    )
    try:
        return cam_seeds(dataset, work / f"{name}-{seed}", params)
    except Diverged as error:
        print(f"{name} seed {seed}: {error}")
        return {"diverged_at_step": error.step}


def earlier_runs(earlier: dict, seeds: list[int]) -> dict[tuple[str, int], dict]:
    """The JSON's runs of SEEDS by (variant, seed). Runs written before they carried their seed
    are the JSON's seeds in order."""
    tagged = [
        (name, {"seed": seed, **run})  # a run's own seed, where it has one, wins
        for name, rs in earlier["runs"].items()
        for seed, run in zip(earlier["seeds"], rs, strict=False)
    ]
    return {(name, run["seed"]): run for name, run in tagged if run["seed"] in seeds}


def finished(runs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {name: [r for r in rs if "seed_miou" in r] for name, rs in runs.items()}


def mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--mga-gradients",
        choices=["both", "paper"],
        default="both",
        help="train_cam.mga_gradients; 'paper' writes results/ablation_mga_paper*.json",
    )
    parser.add_argument("--params", type=Path, help="a params file instead of the ToyVOC preset")
    parser.add_argument(
        "--resume", action="store_true", help="keep the JSON's runs of these seeds; run the rest"
    )
    toy_options(parser)
    args = parser.parse_args()
    base = load_params(args.params)
    work = scratch()
    config, suffix = toy_variant(args.tint, args.parts)
    dataset = toy_dataset(work, config)
    stem = (
        "_".join(
            ["ablation"]
            + ([args.params.stem] if args.params else [])
            + (["mga_paper"] if args.mga_gradients == "paper" else [])
        )
        + suffix
    )
    kept = earlier_runs(read_json(f"{stem}_seeds", {"seeds": [], "runs": {}}), args.seeds)
    runs: dict[str, list[dict]] = {  # without --resume the named variants start afresh
        name: []
        if name in args.variants and not args.resume
        else [run for (n, _), run in sorted(kept.items()) if n == name]
        for name in VARIANTS
        if name in args.variants or any(n == name for n, _ in kept)
    }
    for seed in args.seeds:  # every variant's seed 0 first; JSON after each run
        for name in args.variants:
            if args.resume and (name, seed) in kept:
                continue
            run = run_variant(dataset, work, base, name, seed, args.mga_gradients)
            runs[name] = sorted([*runs[name], {"seed": seed, **run}], key=lambda r: r["seed"])
            summary = {n: mean([r["seed_miou"] for r in rs]) for n, rs in finished(runs).items()}
            write_json(stem, summary)
            write_json(f"{stem}_seeds", {"seeds": args.seeds, "runs": runs})
    print(f"{'variant':<9} {'seed mIoU':>10} {'fixed 0.2':>10} {'paper':>6}")
    for name, rs in finished(runs).items():
        diverged = len(runs[name]) - len(rs)
        note = f"  ({diverged} of {len(runs[name])} diverged)" if diverged else ""
        if not rs:
            print(f"{name:<9} {'-':>10} {'-':>10} {PAPER[name]:>6}{note}")
            continue
        tuned = [100 * r["seed_miou"] for r in rs]
        spread = f" ± {statistics.stdev(tuned):.1f}" if len(rs) > 1 else ""
        fixed = statistics.mean(100 * r["seed_miou_fixed"] for r in rs)
        line = f"{name:<9} {statistics.mean(tuned):>7.1f}{spread} {fixed:>10.1f} {PAPER[name]:>6}"
        print(line + note)


if __name__ == "__main__":
    run_benchmark(main)
