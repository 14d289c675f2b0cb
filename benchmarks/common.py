"""What the benchmarks share: a ToyVOC `dataset` artifact to run stages on, where CAMs fire on
ToyVOC's objects, and JSON output."""

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wsss.config.params import Params
from wsss.data.toy import MARKER, ToyConfig, generate, part_map
from wsss.errors import WsssError
from wsss.kinds.cams import read_cam
from wsss.kinds.dataset import load_index
from wsss.runner import run_stage

RESULTS = Path(__file__).parent / "results"


def run_benchmark(main: Callable[[], None]) -> None:
    """MAIN as `python -m benchmarks.NAME` runs it: bad input (make run's artifacts missing, a
    damaged one) is one `error:` line and exit 2, as in the CLI, not a traceback."""
    try:
        main()
    except WsssError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def toy_options(parser: argparse.ArgumentParser, tint: int | None = ToyConfig.tint) -> None:
    """--tint and --parts: which ToyVOC a benchmark generates (by default make run's)."""
    parser.add_argument("--tint", type=int, default=tint, help="ToyVOC's class tint")
    parser.add_argument(
        "--parts",
        choices=("small", "large"),
        default=None,
        help=f"ToyVOC's parts (default {ToyConfig.parts})",
    )


def toy_variant(tint: int, parts: str | None) -> tuple[ToyConfig, str]:
    """The ToyConfig of --tint/--parts and what its results' JSON names end in: nothing for the
    default ToyVOC, else _tint<N> and/or _<parts>_parts."""
    config = ToyConfig(tint=tint, parts=parts or ToyConfig.parts)
    suffix = "" if tint == ToyConfig.tint else f"_tint{tint}"
    return config, suffix + ("" if config.parts == ToyConfig.parts else f"_{config.parts}_parts")


def toy_dataset(work: Path, config: ToyConfig | None = None) -> Path:
    """A fresh ToyVOC (default size unless CONFIG says otherwise) and its `dataset` artifact."""
    generate(work / "toyvoc", config or ToyConfig())
    out = work / "artifacts" / "dataset"
    run_stage("prepare_data", {"root": str(work / "toyvoc")}, out, Params())
    return out


def cam_seeds(dataset: Path, out: Path, params: Params) -> dict[str, float]:
    """train_cam + extract_seeds into OUT/{cam_model,cams}: the seed metrics, training time and
    classification mAP."""
    trained, run = run_stage("train_cam", {"dataset": str(dataset)}, out / "cam_model", params)
    inputs = {"dataset": str(dataset), "cam_model": str(out / "cam_model")}
    cams, _ = run_stage("extract_seeds", inputs, out / "cams", params)
    return {**cams.metrics, "train_s": run.duration_s, "cls_map": trained.metrics["cls_map"]}


def body_and_part(dataset: Path, cams: Path, split: str, threshold: float) -> dict[str, float]:
    """Where the seed CAMs of a `cams` artifact fire on ToyVOC objects, over SPLIT's images: the
    mean activation (each class's CAM divided by its max) on its objects' part pixels and on
    their body pixels, the share of body pixels above THRESHOLD (the seeds' background
    threshold), and how often an object's CAM peaks on its part beside the part's share of the
    object's pixels (a CAM that fires on the part peaks there far more often than that share;
    objects whose part is hidden count for the body only). The dataset's root must be the
    ToyVOC the cams were made from: its parts are recomputed."""
    index = load_index(dataset)
    config = ToyConfig(**json.loads((index.root / MARKER).read_text()))
    sums = np.zeros(7)  # part act., part px, body act., body px, covered, objects, peaks
    for sample in index.split(split):
        gt = index.read_gt_mask(sample)
        cam, keys = read_cam(cams, sample.id, sample.labels, gt.shape)
        part = part_map(config, sample.id)
        for activation, class_id in zip(cam, keys, strict=True):
            obj = gt == class_id + 1
            on_part, on_body = activation[obj & part], activation[obj & ~part]
            visible = on_part.size > 0  # a part can be occluded or cut off by the border
            peaks_on_part = visible and (not on_body.size or on_part.max() >= on_body.max())
            sums += (
                on_part.sum(),
                on_part.size,
                on_body.sum(),
                on_body.size,
                (on_body > threshold).sum(),
                visible,
                peaks_on_part,
            )
    return {
        "part_activation": float(sums[0] / sums[1]),
        "body_activation": float(sums[2] / sums[3]),
        "body_covered": float(sums[4] / sums[3]),
        "peak_on_part": float(sums[6] / sums[5]),
        "part_share": float(sums[1] / (sums[1] + sums[3])),
    }


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="wsss-bench-"))


def read_json(name: str, default: object) -> object:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else default


def write_json(name: str, obj: object) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(obj, indent=1) + "\n")
    return path
