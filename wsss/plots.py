"""Figures written into artifacts: PNG, with matplotlib's Agg backend (no display needed). The
data behind them for `dvc plots`: wsss.plot_data."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from wsss.data.classes import IGNORE, voc_palette


def plot_curves(history: list[dict], path: Path, title: str) -> list[str]:
    """Every logged loss part against the step (a part first logged later, as KTSE's after the
    warm-up, is marked where it starts), `total` in bold, and the learning rate below; returns
    the parts drawn."""
    steps = [h["step"] for h in history]
    keys = list(dict.fromkeys(k for h in history for k in h if k not in ("step", "epoch", "lr")))
    fig, (ax, lr_ax) = plt.subplots(
        2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for key in keys:
        bold = key == "total"
        values = [h.get(key, float("nan")) for h in history]
        ax.plot(steps, values, label=key, lw=2.2 if bold else 1.0, color="black" if bold else None)
    later = {}
    for h in history[1:]:
        for key in h:
            if key not in history[0] and key not in later:
                later[key] = h["step"]
    for step in sorted(set(later.values())):
        ax.axvline(step, color="grey", ls=":", lw=1)
        started = ", ".join(k for k, s in later.items() if s == step)
        where = {"xycoords": ("data", "axes fraction"), "textcoords": "offset points"}
        ax.annotate(f"from here: {started}", (step, 1), (3, -10), fontsize=7, color="grey", **where)
    ax.set_ylabel("loss")
    ax.set_title(f"{title} (parts unweighted; total: the weighted sum optimized)", fontsize=10)
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(fontsize=7, ncol=4)
    lr_ax.plot(steps, [h.get("lr", float("nan")) for h in history], color="tab:purple")
    lr_ax.set_ylabel("lr")
    lr_ax.set_xlabel("step")
    lr_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return keys


def plot_threshold_sweep(mious: dict[float, float], fixed: float, path: Path) -> None:
    """Seed mIoU against the background threshold, the configured one and the best marked (the
    stage reports both: seed_miou_fixed and seed_miou at seed_threshold)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(list(mious), [100 * v for v in mious.values()], marker="o", ms=3)
    ax.axvline(fixed, color="grey", ls="--", label=f"configured {fixed:g}")
    best = max(mious, key=mious.get)
    ax.plot(
        [best], [100 * mious[best]], "r*", ms=12, label=f"best {best:g}: {100 * mious[best]:.1f}"
    )
    ax.set_title("seeds: mIoU over the background threshold", fontsize=10)
    ax.set_xlabel("background threshold")
    ax.set_ylabel("seed mIoU (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_overlays(
    rows: list[tuple],
    path: Path,
    names: list[str],
    titles: tuple[str, ...] = ("image", "CAM (max over the image's classes)", "seed", "GT"),
) -> None:
    """A grid image | heat map | label map | GT, one row per (label, image, heat, label map,
    gt), with a legend of the class colours that appear (NAMES: background first)."""

    palette = voc_palette()
    fig, axes = plt.subplots(len(rows), 4, figsize=(8, 2 * len(rows) + 0.8), squeeze=False)
    for row, (label, image, heat, seed, gt) in zip(axes, rows, strict=True):
        row[0].imshow(image)
        row[0].set_ylabel(label, fontsize=7)
        row[1].imshow(image)
        row[1].imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        row[2].imshow(palette[seed])
        row[3].imshow(palette[gt] if gt is not None else np.zeros_like(image))
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, title in zip(axes[0], titles, strict=True):
        ax.set_title(title, fontsize=9)
    maps = [m for _, _, _, seed, gt in rows for m in (seed, gt) if m is not None]
    _class_legend(fig, maps, names, len(rows))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _class_legend(fig, maps: list[np.ndarray], names: list[str], rows: int) -> None:
    """Below a grid of ROWS rows (2 inches each, 0.8 inch left free): the VOC palette colour of
    every class value in MAPS, and of the ignored boundary if it appears."""

    palette = voc_palette()
    shown = sorted({int(v) for m in maps for v in np.unique(m)})
    handles = [Patch(color=palette[v] / 255, label=names[v]) for v in shown if v < len(names)]
    if IGNORE in shown:
        handles.append(Patch(color=palette[IGNORE] / 255, label="ignored (boundary)"))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.8 / (2 * rows + 0.8), 1, 1))


def plot_class_iou(series: dict[str, list[float | None]], names: list[str], path: Path) -> None:
    """Per-class IoU as grouped horizontal bars, one colour per series (seeds, pseudo-masks,
    val), each series' mean in its legend entry; classes a series never saw are left empty."""
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(names) + 1.2))
    height = 0.8 / max(len(series), 1)
    for i, (label, iou) in enumerate(series.items()):
        values = np.array([np.nan if v is None else 100 * v for v in iou])
        offset = np.arange(len(names)) - 0.4 + height * (i + 0.5)
        ax.barh(offset, values, height, label=f"{label} (mIoU {np.nanmean(values):.1f})")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU (%)")
    ax.set_title("IoU per class", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(counts: np.ndarray, names: list[str], path: Path) -> None:
    """Row-normalized confusion matrix (GT rows, predicted columns) as a heat map, each cell of
    5 % or more labelled. Classes stay in dataset order (ToyVOC's families are consecutive ids,
    so a family's confusion shows as a block on the diagonal)."""
    rows = counts[:, : len(names)].astype(np.float64)
    rows *= 100 / np.maximum(rows.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    image = ax.imshow(rows, cmap="viridis", vmin=0, vmax=100)
    for (i, j), share in np.ndenumerate(rows):
        if share >= 5:
            colour = "black" if share > 60 else "white"
            ax.text(j, i, f"{share:.0f}", ha="center", va="center", fontsize=5, color=colour)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    ax.set_title("val confusion: % of each ground-truth class's pixels", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, label="% of the row's pixels")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_examples(rows: list[tuple], path: Path, names: list[str]) -> None:
    """A grid image | GT | prediction, one row per (label, image, gt, prediction) tuple, with a
    legend of the class colours that appear (NAMES: background first)."""

    palette = voc_palette()
    fig, axes = plt.subplots(len(rows), 3, figsize=(6, 2 * len(rows) + 0.8), squeeze=False)
    for row, (label, image, gt, pred) in zip(axes, rows, strict=True):
        row[0].imshow(image)
        row[0].set_ylabel(label, fontsize=7)
        row[1].imshow(palette[gt])
        row[2].imshow(palette[pred])
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, title in zip(axes[0], ("image", "GT", "prediction"), strict=True):
        ax.set_title(title, fontsize=9)
    _class_legend(fig, [m for _, _, gt, pred in rows for m in (gt, pred)], names, len(rows))
    fig.savefig(path, dpi=80)
    plt.close(fig)
