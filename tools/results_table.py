"""The README's results, generated from the committed JSON (metrics/ of `make run`, and
benchmarks/results/ of the ablation and the fidelity check), so that a number is written once:
tests/test_layout.py fails when the README's block differs from what this prints.

    python -m tools.results_table          # rewrite the block in README.md
"""

import json
import re
import statistics
from pathlib import Path

from benchmarks.ablation import PAPER, VARIANTS

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BEGIN = "<!-- results: python -m tools.results_table writes this block from the JSON -->"
END = "<!-- /results -->"
LABELS = {
    "base": "plain CAM",
    "sie": "+ SIE",
    "ssr": "+ SSR",
    "mga": "+ MGA",
    "sie_ssr": "+ SIE + SSR",
    "ktse": "KTSE (all three)",
}


def _json(path: str) -> dict:
    return json.loads((REPO / path).read_text())


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def make_run_table() -> list[str]:
    cam, seeds = _json("metrics/train_cam.json"), _json("metrics/extract_seeds.json")
    masks, val = _json("metrics/export_masks.json"), _json("metrics/evaluate.json")
    irn = _json("metrics/train_irn.json")
    gain = masks["pseudo_mask_miou"] - seeds["seed_miou_fixed"]
    return [
        "| `make run` on ToyVOC (KTSE, seed 0) | mIoU % |",
        "| --- | ---: |",
        f"| seeds (CAM at the fixed threshold, train) | {_pct(seeds['seed_miou_fixed'])} |",
        f"| pseudo-masks (IRN, train) | {_pct(masks['pseudo_mask_miou'])} |",
        f"| segmenter on val | **{_pct(val['miou'])}** |",
        "",
        f"From the seeds to IRN's pseudo-masks: {100 * gain:+.1f} points; IRN's labels are "
        f"{_pct(irn['ir_label_precision'])} % right and cover {_pct(irn['ir_label_coverage'])} % "
        f"of the pixels; the classifier's mAP is {_pct(cam['cls_map'])} %.",
    ]


def ablation_table() -> list[str]:
    runs = _json("benchmarks/results/ablation_seeds.json")["runs"]
    rows = [
        "| CAM: seed mIoU %, GT-tuned threshold | ToyVOC: mean ± sd (runs) | paper: VOC, Table 6 |",
        "| --- | ---: | ---: |",
    ]
    for name in VARIANTS:
        tuned = [100 * r["seed_miou"] for r in runs.get(name, []) if "seed_miou" in r]
        ours = "not run"
        if tuned:
            spread = f" ± {statistics.stdev(tuned):.1f}" if len(tuned) > 1 else ""
            ours = f"{statistics.mean(tuned):.1f}{spread} ({len(tuned)})"
        rows.append(f"| {LABELS[name]} | {ours} | {PAPER[name]:.1f} |")
    return rows


def _listed(names: list[str]) -> str:
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names) or "none"


def fidelity_line() -> list[str]:
    fidelity = _json("benchmarks/results/fidelity.json")
    average = fidelity["miou_average"]
    same = [
        name.replace("_", "-") for name, pair in average.items() if pair["ours"] == pair["official"]
    ]
    peak = fidelity["peak_clamp"]
    changed = round(peak["pairs"] * peak["nonpositive_peak_share"])
    par = fidelity["par_input"]["argmax_agreement_signal_3.0"]
    return [
        "Fidelity: run side by side with the official KTSE/IRN code, every rule compared agrees "
        "([docs/method.md](docs/method.md)); of the three differences kept by choice "
        "(`python -m benchmarks.fidelity`, on `make run`'s artifacts), the official mIoU average "
        f"gives the same mIoU on the {_listed(same)}, the peak clamp changes {changed} of "
        f"{peak['pairs']} SSR labels, and PAR's input agrees on {100 * par:.3f} % of the pixels."
    ]


def block() -> str:
    lines = [BEGIN, *make_run_table(), "", *ablation_table(), "", *fidelity_line(), END]
    return "\n".join(lines)


def rewritten(readme: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise SystemExit(f"error: {README.name}: no results block ({BEGIN} … {END})")
    return pattern.sub(lambda _: block(), readme)


if __name__ == "__main__":
    README.write_text(rewritten(README.read_text()))
    print(f"{README.relative_to(REPO)}: results block written")
