"""What the benchmarks share: a ToyVOC `dataset` artifact to run stages on, and JSON output."""

import json
import tempfile
from pathlib import Path

from wsss.data.toy import ToyConfig, generate
from wsss.params import Params
from wsss.stages import run_stage

RESULTS = Path(__file__).parent / "results"


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
