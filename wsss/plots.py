"""Figures written into artifacts (PNG, matplotlib's Agg backend: no display needed)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


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


def plot_overlays(rows: list[tuple], path: Path) -> None:
    """A grid image | CAM heat | seed | GT, one row per (id, image, heat, seed, gt) tuple."""
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
    for ax, title in zip(axes[0], ("image", "CAM", "seed", "GT"), strict=True):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
