"""The evaluation report: one self-contained HTML page (figures embedded as base64 PNGs), so it
opens anywhere — from the artifact directory, an S3 browser or KFP's HTML viewer. It says what
produced the model before what it scores; every number is in percent."""

import base64
import html
import json
from pathlib import Path
from typing import Any

from wsss.artifacts.lineage import find, format_tree, key_params


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _stages(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """The tree's artifacts, each once, from the dataset down to the model."""
    nodes: list[dict[str, Any]] = []

    def visit(node: dict[str, Any]) -> None:
        for child in node.get("inputs", {}).values():
            visit(child)
        if "stage" in node and all(n["uri"] != node["uri"] for n in nodes):
            nodes.append(node)

    visit(tree)
    return nodes


def facts(tree: dict[str, Any], split: str) -> dict[str, str]:
    """What produced the model under TREE (the seg_model's lineage): the header's rows."""
    stages = {node["stage"]: node for node in _stages(tree)}

    def key(stage: str, *names: str) -> str:
        found = key_params(stages[stage]["params"]) if stage in stages else {}
        return " / ".join(str(found[n]) for n in names if n in found) or "—"

    dataset = stages.get("prepare_data", {})
    root = next((c["uri"] for c in dataset.get("inputs", {}).values()), "—")
    return {
        "CAM method": key("train_cam", "method"),
        "CAM network": key("train_cam", "backbone", "encoder"),
        "IRN backbone": key("train_irn", "backbone"),
        "DeepLab backbone": key("train_deeplab", "backbone"),
        "dataset root": root,
        "scored split": split,
        "model code": tree.get("code_digest", "—")[:12],
    }


def reading(
    tree: dict[str, Any],
    metrics: dict[str, float],
    split: str,
    per_class: dict[str, dict[str, float | None]],
) -> list[str]:
    """What a reader needs before the tables, computed from them: what IRN added to the seeds,
    how far the segmenter stays below the labels it learned from, the weakest classes."""
    seeds = (find(tree, "cams") or {}).get("metrics", {})
    masks = (find(tree, "pseudo_masks") or {}).get("metrics", {})
    lines = []
    if "seed_miou" in seeds and "pseudo_mask_miou" in masks:
        lift = 100 * (masks["pseudo_mask_miou"] - seeds["seed_miou"])
        lines.append(
            f"IRN turns the seeds ({_percent(seeds['seed_miou'])} at the threshold "
            f"{seeds.get('seed_threshold', 0):.2f} chosen on GT masks, "
            f"{_percent(seeds.get('seed_miou_fixed'))} at the fixed one) into pseudo-masks of "
            f"{_percent(masks['pseudo_mask_miou'])} on train: {lift:+.1f} points."
        )
    if "pseudo_mask_miou" in masks and "miou" in metrics:
        gap = 100 * (masks["pseudo_mask_miou"] - metrics["miou"])
        lines.append(
            f"The segmenter trained on those pseudo-masks scores {_percent(metrics['miou'])} on "
            f"{split}, {gap:.1f} points below what its labels scored on train. The splits "
            f"differ, so the gap is label noise and what does not carry from train to {split} "
            "together; the same network trained on the GT masks separates the two "
            "(benchmarks.segmenter_bound)."
        )
    val = {k: v for k, v in per_class.get("val", {}).items() if v is not None}
    weakest = sorted((v, k) for k, v in val.items() if k != "background")[:3]
    if weakest:
        upstream = [c for c in per_class if c != "val"]

        def cells(name: str) -> str:
            known = [f"{c} {_percent(per_class[c].get(name))}" for c in upstream]
            return f" ({', '.join(known)})" if known else ""

        named = "; ".join(f"{name} {_percent(v)}{cells(name)}" for v, name in weakest)
        lines.append(f"Weakest classes on {split}: {named}.")
    return lines


def write_report(
    path: Path,
    header: dict[str, str],
    metrics: dict[str, float],
    per_class: dict[str, dict[str, float | None]],
    figures: list[tuple[Path, str]],
    tree: dict[str, Any],
    own_params: dict[str, Any],
) -> None:
    """The header (what produced the model), the reading, headline metrics, IoU per class for
    each column of PER_CLASS (seeds, pseudo-masks, val), the figures, the lineage and every
    stage's params: the model's lineage, then OWN_PARAMS (the evaluation's, whose manifest is
    not written yet)."""
    split = header.get("scored split", "val")
    notes = "".join(
        f"<p>{html.escape(line)}</p>" for line in reading(tree, metrics, split, per_class)
    )
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in header.items()
    )
    shown = {k: v for k, v in metrics.items() if k != "images"}
    head = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_percent(v)}</td></tr>" for k, v in shown.items()
    )
    head += f"<tr><th>images</th><td>{metrics.get('images', 0):.0f}</td></tr>"
    columns = list(per_class)
    names = list(next(iter(per_class.values()), {}))
    table = "<tr><th>class</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    table += "</tr>" + "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{_percent(per_class[c].get(name))}</td>" for c in columns)
        + "</tr>"
        for name in names
    )
    evaluation = {"stage": "evaluate", "kind": "evaluation", "params": own_params}
    params = "".join(
        f"<details><summary>{html.escape(node['stage'])} ({html.escape(node['kind'])})"
        f"</summary><pre>{html.escape(json.dumps(node['params'], indent=1))}</pre></details>"
        for node in [*_stages(tree), evaluation]
    )
    title = f"wsss evaluation: {header.get('CAM method', '')} on {header.get('dataset root', '')}"
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; }}
td {{ font-variant-numeric: tabular-nums; }}
img {{ max-width: 100%; }} figure {{ margin: 1.5em 0; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table>{rows}</table>
<h2>Reading</h2>{notes}
<h2>Metrics (%)</h2><table>{head}</table>
<h2>IoU per class (%): seeds → pseudo-masks (train) → val</h2><table>{table}</table>
{"".join(_figure(p, c) for p, c in figures)}
<h2>Lineage</h2><pre>{html.escape(chr(10).join(format_tree(tree, "seg_model")))}</pre>
<h2>Params of every stage</h2>{params}
</body></html>
"""
    path.write_text(body)
