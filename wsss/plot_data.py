"""The data behind an artifact's figures for `dvc plots show/diff` (which overlays runs): JSON
lists of records derived from the artifact's own files and written outside it
(`wsss run --plots DIR`). No matplotlib: the figures themselves are wsss.plots."""

import json
from pathlib import Path

import numpy as np

from wsss.artifacts.manifest import write_text_atomic


def write_plot_data(path: Path, rows: list[dict]) -> None:
    """ROWS (flat records) as a JSON list, the form `dvc plots` reads; each row gets every key
    (null where it has none: DVC fails on a key missing from some rows, e.g. KTSE's parts
    before the warm-up ends)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    text = json.dumps([{k: row.get(k) for k in keys} for row in rows], indent=0) + "\n"
    write_text_atomic(path, text)


def plot_data(artifact: Path) -> dict[str, list[dict]]:
    """The rows behind an artifact's figures, by file name (loss, threshold_sweep, class_iou,
    confusion), from the files that hold them: a training log, seed scores, val scores."""
    data: dict[str, list[dict]] = {}
    if (log := artifact / "train_log.jsonl").is_file():
        data["loss"] = [json.loads(line) for line in log.read_text().splitlines() if line]
    if (seeds := artifact / "seed_scores.json").is_file():
        sweep = json.loads(seeds.read_text())["sweep"]
        data["threshold_sweep"] = [
            {"threshold": float(t), "seed_miou": miou} for t, miou in sweep.items()
        ]
    if (scores := artifact / "scores.json").is_file():
        val = json.loads(scores.read_text())
        ious = val["iou_per_class"]
        data["class_iou"] = [{"class": c, "iou": v} for c, v in ious.items() if v is not None]
        data["confusion"] = confusion_rows(np.array(val["confusion"]), list(ious))
    return data


def confusion_rows(counts: np.ndarray, names: list[str], per_class: int = 100) -> list[dict]:
    """DVC's confusion templates count rows: PER_CLASS rows for each true class present, split
    over the predicted classes in proportion to its pixels (largest remainders). A last column
    beyond NAMES (ConfusionMatrix's "no valid prediction") is predicted "none"."""
    predicted_names = [*names, "none"][: counts.shape[1]]
    rows = []
    for actual, row in zip(names, counts, strict=True):
        if row.sum() == 0:
            continue
        share = row / row.sum() * per_class
        whole = np.floor(share).astype(int)
        for i in np.argsort(whole - share, kind="stable")[: per_class - whole.sum()]:
            whole[i] += 1
        for predicted, n in zip(predicted_names, whole, strict=True):
            rows += [{"actual": actual, "predicted": predicted}] * int(n)
    return rows
