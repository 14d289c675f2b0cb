"""The real presets (params/voc.yaml, params/coco.yaml) through all seven stages on CPU: generated
roots of the datasets' real image sizes, random weights, a smoke run at benchmarks.real_preset's
CPU budget (the preset's networks, crops, CRF and sizes; small batches, one scale). Time and
memory are the benchmark's to record (`python -m benchmarks.real_preset`), not asserted here."""

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks.real_preset import SIZES, smoke_run
from wsss.artifacts.opening import open_artifact
from wsss.data.io import read_mask
from wsss.stages import PIPELINE

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("preset", ["voc", "coco"])
def test_the_real_preset_runs_every_stage_at_real_sizes(preset, tmp_path):
    result = smoke_run(tmp_path, preset, images=2, cpu_budget=True)
    art = tmp_path / "artifacts"
    for stage in PIPELINE:
        manifest = open_artifact(art / stage.kind, stage.kind).manifest  # every file verified
        assert manifest.smoke == 2 and manifest.params["runtime"]["device"] == "cpu"
        assert result["stages"][stage.name]["log_lines"] > 0  # progress in a log, no terminal
    sizes = {(h, w) for w, h in SIZES[preset]}
    stats = json.loads((art / "dataset" / "stats.json").read_text())
    assert set(stats["height"]) <= {h for h, _ in sizes}  # [min, max] of the real sizes
    assert set(stats["width"]) <= {w for _, w in sizes}
    cam_model = open_artifact(art / "cam_model").manifest.params["train_cam"]
    assert cam_model["backbone"] == "resnet38d" and cam_model["crop"] == 320
    for npz in (art / "cams" / "cams").glob("*.npz"):  # full-resolution CAMs of real images
        assert np.load(npz)["cam"].shape[1:] in sizes
    for png in (art / "pseudo_masks" / "masks").glob("*.png"):
        assert read_mask(png).shape in sizes
    for png in (art / "evaluation" / "predictions").glob("*.png"):
        assert Image.open(png).size[::-1] in sizes
    seg = open_artifact(art / "seg_model").manifest
    assert seg.params["train_deeplab"]["backbone"] == "resnet101"
    assert seg.params["train_deeplab"]["crop"] == 512
    classes = 21 if preset == "voc" else 81
    scores = json.loads((art / "evaluation" / "scores.json").read_text())
    assert len(scores["iou_per_class"]) == classes
    assert set(result["estimate"]) == {s.name for s in PIPELINE}
