"""Figures written into artifacts: PNG (matplotlib's Agg backend: no display needed) and, for
`dvc plots show/diff` (which overlays runs), the data behind them as JSON lists of records."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def write_plot_data(path: Path, rows: list[dict]) -> None:
    """ROWS (flat records) as a JSON list, the form `dvc plots` reads; each row gets every key
    (null where it has none: DVC fails on a key missing from some rows, e.g. KTSE's parts
    before the warm-up ends)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    path.write_text(json.dumps([{k: row.get(k) for k in keys} for row in rows], indent=0) + "\n")


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


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    """One line per logged loss part against the step."""
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in history]
    keys = [k for k in history[0] if k not in ("step", "epoch", "lr")] if history else []
    for key in keys:
        ax.plot(steps, [h.get(key, float("nan")) for h in history], label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_threshold_sweep(mious: dict[float, float], fixed: float, path: Path) -> None:
    """Seed mIoU against the background threshold, with the configured one marked."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(list(mious), [100 * v for v in mious.values()], marker="o", ms=3)
    ax.axvline(fixed, color="grey", ls="--", label=f"configured {fixed:g}")
    ax.set_xlabel("background threshold")
    ax.set_ylabel("seed mIoU (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_overlays(
    rows: list[tuple], path: Path, titles: tuple[str, ...] = ("image", "CAM", "seed", "GT")
) -> None:
    """A grid image | heat map | label map | GT, one row per (id, image, heat, label, gt)."""
    from wsss.data.classes import voc_palette

    palette = voc_palette()
    fig, axes = plt.subplots(len(rows), 4, figsize=(8, 2 * len(rows)), squeeze=False)
    for row, (image_id, image, heat, seed, gt) in zip(axes, rows, strict=True):
        row[0].imshow(image)
        row[0].set_ylabel(image_id, fontsize=7)
        row[1].imshow(image)
        row[1].imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        row[2].imshow(palette[seed])
        row[3].imshow(palette[gt] if gt is not None else np.zeros_like(image))
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, title in zip(axes[0], titles, strict=True):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_class_iou(iou: list[float | None], names: list[str], path: Path) -> None:
    """Per-class IoU as horizontal bars (classes never seen left empty), with the mean."""
    values = [np.nan if v is None else 100 * v for v in iou]
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(names) + 1))
    ax.barh(range(len(names)), values, color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(np.nanmean(values), color="grey", ls="--", label=f"mIoU {np.nanmean(values):.1f}")
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU (%)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(counts: np.ndarray, names: list[str], path: Path) -> None:
    """Row-normalized confusion matrix (GT rows, predicted columns) as a heat map."""
    rows = counts[:, : len(names)].astype(np.float64)
    rows /= np.maximum(rows.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(rows, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_examples(rows: list[tuple], path: Path) -> None:
    """A grid image | GT | prediction, one row per (id, image, gt, prediction) tuple."""
    from wsss.data.classes import voc_palette

    palette = voc_palette()
    fig, axes = plt.subplots(len(rows), 3, figsize=(6, 2 * len(rows)), squeeze=False)
    for row, (image_id, image, gt, pred) in zip(axes, rows, strict=True):
        row[0].imshow(image)
        row[0].set_ylabel(image_id, fontsize=7)
        row[1].imshow(palette[gt])
        row[2].imshow(palette[pred])
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, title in zip(axes[0], ("image", "GT", "prediction"), strict=True):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
