"""The segmenter beside its bound: DeepLab trained on the GT masks of train_aug and on make run's
pseudo-masks, the same params and seed, both scored on val.

The GT-trained number bounds what the segmentation network learns on this dataset; the gap
between the two is what the pseudo-masks cost. Also reported, from each val confusion matrix:
the share of wrongly labelled object pixels that went to a class of the same ToyVOC body family
(classes 4f..4f+3 share a body), the within-family confusion that ToyVOC's design causes.

    make run && python -m benchmarks.segmenter_bound [--artifacts artifacts] [--seeds 0 1 2]
    python -m benchmarks.segmenter_bound --tint 16 [--parts small]
    python -m benchmarks.segmenter_bound --params my_params.yaml   # another segmenter recipe

Each runtime seed trains both segmenters anew (the pseudo-masks stay make run's); the table gives
the mean ± standard deviation over the seeds. Writes results/segmenter_bound.json (fractions,
every run with its seed). With --tint or --parts, the GT masks alone, on a fresh ToyVOC of that
class tint and parts (make run's pseudo-masks belong to the default one), into
results/segmenter_bound_tint<N>.json or segmenter_bound[_tint<N>]_small_parts.json. With
--params (train_deeplab and evaluate from that file, not params.yaml), the names carry its stem.
`--trained-on gt_masks` or `pseudo_masks` trains only that one.
"""

import argparse
import json
import shutil
import statistics
from pathlib import Path

import numpy as np

from benchmarks.common import (
    run_benchmark,
    scratch,
    toy_dataset,
    toy_options,
    toy_variant,
    write_json,
)
from wsss.artifacts.manifest import InputRef, Manifest, hash_tree, write_manifest
from wsss.artifacts.opening import open_artifact
from wsss.artifacts.uri import relative_uri
from wsss.config.params import digest, load_params
from wsss.data.toy import FAMILY_SIZE, ToyConfig
from wsss.errors import WsssError
from wsss.kinds.dataset import load_index
from wsss.kinds.pseudo_masks import CONFIDENCE, MASKS, confidence_file, mask_file
from wsss.runner import run_stage


def gt_masks_artifact(dataset: Path, out: Path) -> Path:
    """A `pseudo_masks` artifact holding the GT masks of train_aug, every pixel confident; its
    manifest says where they came from (no stage made them)."""
    index = load_index(dataset)
    for sub in (MASKS, CONFIDENCE):
        (out / sub).mkdir(parents=True)
    for sample in index.split("train_aug"):
        shutil.copy(index.mask_path(sample), mask_file(out, sample.id))
        shutil.copy(index.mask_path(sample), confidence_file(out, sample.id))
    source = open_artifact(dataset)
    params = {"source": "GT masks of train_aug, copied by benchmarks.segmenter_bound"}
    ref = InputRef(
        uri=relative_uri(out, str(dataset)), kind="dataset", manifest_digest=source.manifest_digest
    )
    write_manifest(
        out,
        Manifest(
            kind="pseudo_masks",
            stage="gt_masks",
            wsss_version=source.manifest.wsss_version,
            code_digest="none",
            params=params,
            params_digest=digest(params),
            inputs={"dataset": ref},
            files=hash_tree(out),
            metrics={},
            device="cpu",
        ),
    )
    return out


def within_family(confusion: np.ndarray) -> float:
    """Of the object pixels (GT class ≥ 1) predicted as another object class, the share whose
    prediction shares the GT class's body family."""
    classes = np.arange(confusion.shape[0])  # rows: GT classes; columns beyond them: ignored
    family = (classes - 1) // FAMILY_SIZE
    wrong = confusion[1:, 1 : len(classes)].astype(np.float64)
    np.fill_diagonal(wrong, 0)
    same = family[1:, None] == family[None, 1:]
    return float(wrong[same].sum() / max(wrong.sum(), 1))


def segment(dataset: Path, masks: Path, out: Path, params) -> dict:
    inputs = {"dataset": str(dataset), "pseudo_masks": str(masks)}
    _, run = run_stage("train_deeplab", inputs, out / "seg_model", params)
    inputs = {"dataset": str(dataset), "seg_model": str(out / "seg_model")}
    evaluation, _ = run_stage("evaluate", inputs, out / "evaluation", params)
    scores = json.loads((out / "evaluation" / "scores.json").read_text())
    return {
        "val_miou": evaluation.metrics["miou"],
        "within_family": within_family(np.array(scores["confusion"])),
        "iou_per_class": scores["iou_per_class"],
        "train_s": run.duration_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path("artifacts"),
        help="make run's artifacts (dataset, pseudo_masks)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="the params of train_deeplab and evaluate",
    )
    trained_on = ["gt_masks", "pseudo_masks"]
    parser.add_argument("--trained-on", nargs="+", choices=trained_on, default=trained_on)
    toy_options(parser, tint=None)  # either one: GT masks only, on a fresh ToyVOC
    args = parser.parse_args()
    fresh_toy = args.tint is not None or args.parts is not None
    if fresh_toy and "gt_masks" not in args.trained_on:
        raise WsssError(
            "--trained-on pseudo_masks: make run's pseudo-masks, not with --tint/--parts"
        )
    work = scratch()
    config, suffix = toy_variant(ToyConfig.tint if args.tint is None else args.tint, args.parts)
    if not fresh_toy:
        dataset, pseudo = args.artifacts / "dataset", args.artifacts / "pseudo_masks"
        open_artifact(dataset, "dataset")  # a one-line error if make run has not made them
        quality = open_artifact(pseudo, "pseudo_masks").manifest.metrics["pseudo_mask_miou"]
        sources = {"gt_masks": work / "gt_masks", "pseudo_masks": pseudo}
    else:
        dataset, quality = toy_dataset(work, config), None
        sources = {"gt_masks": work / "gt_masks"}
    sources = {name: path for name, path in sources.items() if name in args.trained_on}
    if "gt_masks" in sources:
        gt_masks_artifact(dataset, sources["gt_masks"])
    base = load_params(args.params)
    runs: dict[str, list[dict]] = {name: [] for name in sources}
    recipe = "" if args.params == Path("params.yaml") else f"_{args.params.stem}"
    toy = (suffix or f"_tint{config.tint}") if fresh_toy else ""
    stem = "segmenter_bound" + recipe + toy
    for seed in args.seeds:
        params = base.model_copy(update={"runtime": base.runtime.model_copy(update={"seed": seed})})
        for name, masks in sources.items():
            runs[name].append(
                {"seed": seed, **segment(dataset, masks, work / f"{name}-{seed}", params)}
            )
            write_json(
                stem,
                {
                    "seeds": args.seeds,
                    "tint": config.tint,
                    "parts": config.parts,
                    "pseudo_mask_miou": quality,
                    "runs": runs,
                },
            )
    print(f"{'trained on':<13} {'val mIoU':>12} {'within-family':>13} {'train s':>8}")
    for name, rs in runs.items():
        miou = [100 * r["val_miou"] for r in rs]
        spread = f" ± {statistics.stdev(miou):.1f}" if len(rs) > 1 else ""
        family = statistics.mean(100 * r["within_family"] for r in rs)
        seconds = statistics.median(r["train_s"] for r in rs)
        print(
            f"{name:<13} {statistics.mean(miou):>6.1f}{spread:<6} {family:>12.1f}% {seconds:>8.0f}"
        )
    if quality is not None:
        print(f"the pseudo-masks' own mIoU (on train, export_masks' score): {100 * quality:.1f}")


if __name__ == "__main__":
    run_benchmark(main)
