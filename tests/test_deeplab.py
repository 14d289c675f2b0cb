"""DeepLabV2 and its loss on tiny tensors; train_deeplab, evaluate and `wsss predict` on GT masks
standing in for pseudo-masks; the bad inputs these stages refuse."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from benchmarks.segmenter_bound import gt_masks_artifact
from tests.helpers import seal, tiny_params
from tests.voc_photos import SPLITS, write_voc_root
from wsss.artifacts.manifest import MANIFEST
from wsss.artifacts.opening import open_artifact
from wsss.artifacts.output import staging_of
from wsss.data.io import read_mask
from wsss.kinds.dataset import load_index
from wsss.losses.segmentation import pseudo_mask_loss
from wsss.models.backbones import TorchvisionResNet
from wsss.models.deeplab import ASPP, build_deeplab

WSSS = str(Path(sys.executable).parent / "wsss")


def test_aspp_sums_four_dilated_branches_straight_to_the_classes():
    torch.manual_seed(0)
    aspp = ASPP(64, 21, (6, 12, 18, 24))
    assert [b.dilation for b in aspp.branches] == [(r, r) for r in (6, 12, 18, 24)]
    assert [b.padding for b in aspp.branches] == [(r, r) for r in (6, 12, 18, 24)]
    assert all(b.kernel_size == (3, 3) and b.out_channels == 21 for b in aspp.branches)
    weights = torch.cat([b.weight.flatten() for b in aspp.branches])
    assert weights.std().item() == pytest.approx(0.01, rel=0.05)
    x = torch.randn(2, 64, 20, 20)
    assert torch.allclose(aspp(x), sum(b(x) for b in aspp.branches))
    assert aspp(x).shape == (2, 21, 20, 20)  # padding = dilation keeps the size


def test_resnet101_deeplab_is_output_stride_8_and_upsamples_to_the_input():
    backbone = TorchvisionResNet(101).eval()
    assert backbone(torch.zeros(1, 3, 64, 96)).shape == (1, 2048, 8, 12)
    assert backbone.layer4[0].conv2.dilation == (2, 2)  # first block of the stage: dilation 2
    assert backbone.layer4[1].conv2.dilation == (4, 4)
    net = build_deeplab("toy", None, 21, (1, 2)).eval()
    assert net(torch.zeros(2, 3, 50, 70)).shape == (2, 21, 50, 70)


def test_pseudo_mask_loss_ignores_255_and_weighs_unconfident_pixels():
    logits = torch.zeros(1, 2, 1, 3)
    logits[0, 1] = torch.tensor([2.0, 0.0, -2.0])
    target = torch.tensor([[[1, 0, 255]]])
    ce = F.cross_entropy(logits, target.clamp(max=1), reduction="none")[0, 0]
    assert pseudo_mask_loss(logits, target) == pytest.approx(((ce[0] + ce[1]) / 2).item())
    confidence = torch.tensor([[[255, 0, 255]]])
    weighted = pseudo_mask_loss(logits, target, confidence, low_weight=0.5)
    assert weighted == pytest.approx(((ce[0] + 0.5 * ce[1]) / 1.5).item())
    ignored = pseudo_mask_loss(logits, target, confidence, low_weight=0.0)
    assert ignored == pytest.approx(ce[0].item())
    nothing = pseudo_mask_loss(logits.requires_grad_(), torch.full((1, 1, 3), 255))
    assert nothing.item() == 0 and not math.isnan(nothing.item())
    nothing.backward()  # a gradient path, all zero


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([WSSS, *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def gt_masks(dataset_artifact, tmp_path_factory) -> Path:
    """A `pseudo_masks` artifact holding the GT masks (and all-confident confidence masks)."""
    return gt_masks_artifact(dataset_artifact, tmp_path_factory.mktemp("gt") / "pseudo_masks")


@pytest.fixture(scope="module")
def seg_model(dataset_artifact, gt_masks, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("seg")
    params = tiny_params(work / "p.yaml", train_deeplab={"confidence": "weight"})
    result = _run(
        "run",
        "train_deeplab",
        "--in",
        f"dataset={dataset_artifact}",
        "--in",
        f"pseudo_masks={gt_masks}",
        "--out",
        work / "seg_model",
        "--params",
        params,
    )
    assert result.returncode == 0, result.stderr
    return work / "seg_model"


def test_train_deeplab_artifact(seg_model):
    m = open_artifact(seg_model, "seg_model").manifest
    assert {"model.pt", "train_log.jsonl", "loss_curve.png"} <= set(m.files)
    assert "checkpoint.pt" not in m.files and math.isfinite(m.metrics["train_loss"])
    assert m.params["train_deeplab"]["confidence"] == "weight"


def test_select_on_val_keeps_the_best_epoch_and_says_so(dataset_artifact, gt_masks, tmp_path):
    params = tiny_params(tmp_path / "p.yaml", train_deeplab={"select_on_val": True})
    # an interrupted run with other params left a better-looking best epoch and a torn checkpoint
    staging = staging_of(tmp_path / "s")
    staging.mkdir()
    torch.save(
        {"miou": 2.0, "epoch": 7, "state_dict": {}, "resume_key": "other"}, staging / "best.pt"
    )
    (staging / "checkpoint.pt").write_bytes(b"torn")
    result = _run(
        "run",
        "train_deeplab",
        "--in",
        f"dataset={dataset_artifact}",
        "--in",
        f"pseudo_masks={gt_masks}",
        "--out",
        tmp_path / "s",
        "--params",
        params,
    )
    assert result.returncode == 0, result.stderr
    m = open_artifact(tmp_path / "s", "seg_model").manifest
    assert m.params["train_deeplab"]["select_on_val"] is True
    assert m.metrics["selected_epoch"] in (0.0, 1.0) and 0 <= m.metrics["selected_val_miou"] <= 1
    assert "best.pt" not in m.files
    assert "warning:" in result.stderr and "unreadable checkpoint" in result.stderr


def test_evaluate_writes_predictions_scores_and_a_self_contained_report(
    dataset_artifact, seg_model, tmp_path
):
    out = tmp_path / "evaluation"
    result = _run(
        "run",
        "evaluate",
        "--in",
        f"dataset={dataset_artifact}",
        "--in",
        f"seg_model={seg_model}",
        "--out",
        out,
        "--params",
        tiny_params(tmp_path / "p.yaml"),
    )
    assert result.returncode == 0, result.stderr
    m = open_artifact(out, "evaluation").manifest
    val = load_index(dataset_artifact).split("val")
    assert {f"predictions/{s.id}.png" for s in val} <= set(m.files)
    assert 0 <= m.metrics["miou"] <= 1
    for figure in ("class_iou.png", "confusion.png", "examples.png", "report.html"):
        assert figure in m.files
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 3  # every figure inside the page
    assert "seg_model &lt;- train_deeplab" in report and "dataset &lt;- prepare_data" in report
    # what made the model comes first: method, networks, dataset, split; then % throughout
    assert "<th>DeepLab backbone</th><td>toy</td>" in report
    assert "<th>scored split</th><td>val</td>" in report
    assert f"<th>miou</th><td>{100 * m.metrics['miou']:.1f}</td>" in report
    assert "<th>val</th>" in report and "Params of every stage" in report
    assert "<summary>train_deeplab (seg_model)</summary>" in report
    assert "<summary>evaluate (evaluation)</summary>" in report  # its own params too
    lineage = _run("lineage", out)
    assert "evaluation <- evaluate" in lineage.stdout and "pseudo_masks" in lineage.stdout
    assert "backbone=toy weights=None epochs=2 batch_size=4" in lineage.stdout  # key params
    # a reader that stops early (`| head`) ends the listing quietly, with no traceback
    head = subprocess.run(
        ["bash", "-c", f"set -o pipefail; '{WSSS}' lineage '{out}' | head -1"],
        capture_output=True,
        text=True,
    )
    assert head.returncode == 0 and head.stderr == "", head.stderr
    assert head.stdout.startswith("evaluation <- evaluate")


def test_the_reading_is_computed_from_the_lineage_and_the_tables():
    from wsss.report import reading

    seeds = {
        "kind": "cams",
        "metrics": {"seed_miou": 0.73, "seed_threshold": 0.17, "seed_miou_fixed": 0.72},
    }
    masks = {"kind": "pseudo_masks", "metrics": {"pseudo_mask_miou": 0.78}, "inputs": {"c": seeds}}
    tree = {"kind": "seg_model", "inputs": {"pseudo_masks": masks}}
    per_class = {
        "seeds": {"background": 0.9, "cat": 0.5, "dog": 0.16, "horse": 0.3},
        "val": {"background": 0.8, "cat": 0.4, "dog": 0.077, "horse": None},
    }
    lines = reading(tree, {"miou": 0.18}, "val", per_class)
    assert (
        "seeds (73.0 at the threshold 0.17 chosen on GT masks, 72.0 at the fixed one)" in lines[0]
    )
    assert "pseudo-masks of 78.0 on train: +5.0 points" in lines[0]
    assert "scores 18.0 on val, 60.0 points below what its labels scored on train" in lines[1]
    assert "The splits differ" in lines[1]  # val against train is not one split's gap
    # background and classes with no val pixels are not "weak"; each names its upstream IoU
    assert lines[2] == "Weakest classes on val: dog 7.7 (seeds 16.0); cat 40.0 (seeds 50.0)."
    assert reading({"kind": "seg_model"}, {"miou": 0.2}, "val", {}) == []  # trained on GT masks


def test_predict_labels_a_folder_and_skips_what_is_not_an_image(seg_model, toy_root, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    first, second = sorted((toy_root / "JPEGImages").glob("*.jpg"))[:2]
    shutil.copy(first, images / "x.jpg")
    shutil.copy(second, images / "x_overlay.jpg")  # once its overlay's name: no collision now
    (images / "notes.txt").write_text("not an image")
    Image.new("L", (5000, 4000)).save(images / "huge.png")  # 20 MP: over the pixel limit
    out = tmp_path / "pred"
    result = _run("predict", "--model", seg_model, "--images", images, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "warning: skipping" in result.stderr and "notes.txt" in result.stderr
    assert "huge.png" in result.stderr and "over the limit" in result.stderr
    masks = sorted(p.name for p in (out / "masks").glob("*.png"))
    assert masks == ["x.png", "x_overlay.png"]
    assert masks == sorted(p.name for p in (out / "overlays").glob("*.png"))
    label = read_mask(out / "masks" / masks[0])
    assert label.dtype == np.uint8 and label.max() <= 20
    assert open_artifact(out, "predictions").manifest.inputs["seg_model"].kind == "seg_model"
    result = _run(
        "predict",
        "--model",
        seg_model,
        "--images",
        images,
        "--out",
        tmp_path / "p2",
        "--no-overlays",
    )
    assert result.returncode == 0 and not (tmp_path / "p2" / "overlays").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    result = _run("predict", "--model", seg_model, "--images", empty, "--out", tmp_path / "p3")
    assert result.returncode == 2 and "no decodable image" in result.stderr
    assert not (tmp_path / "p3" / MANIFEST).exists()


def test_bad_segmentation_inputs(cli, dataset_artifact, gt_masks, seg_model, tmp_path):
    def train(masks: Path):
        return cli(
            "run",
            "train_deeplab",
            "--in",
            f"dataset={dataset_artifact}",
            "--in",
            f"pseudo_masks={masks}",
            "--out",
            tmp_path / "o",
            "--params",
            tiny_params(tmp_path / "p.yaml"),
        )

    result = train(dataset_artifact)
    assert result.code == 2 and "expected an artifact of kind 'pseudo_masks'" in result.err
    holes = tmp_path / "holes"
    shutil.copytree(gt_masks, holes)
    victim = sorted((holes / "masks").glob("*.png"))[0]
    victim.unlink()
    (holes / MANIFEST).unlink()
    seal(holes, "pseudo_masks", "export_masks", {"dataset": dataset_artifact})
    result = train(holes)
    assert result.code == 2 and victim.stem in result.err and "no mask for" in result.err
    assert result.err.count("\n") == 1 and not (tmp_path / "o" / MANIFEST).exists()

    broken = tmp_path / "broken"
    shutil.copytree(seg_model, broken)
    (broken / MANIFEST).unlink()
    result = cli(
        "run",
        "evaluate",
        "--in",
        f"dataset={dataset_artifact}",
        "--in",
        f"seg_model={broken}",
        "--out",
        tmp_path / "e",
    )
    assert result.code == 2 and "no manifest.json" in result.err
    result = cli("predict", "--model", gt_masks, "--images", tmp_path, "--out", tmp_path / "q")
    assert result.code == 2 and "kind 'seg_model'" in result.err


@pytest.fixture(scope="module")
def voc_photos(tmp_path_factory) -> Path:
    return write_voc_root(tmp_path_factory.mktemp("photos") / "voc")


def test_real_voc_photos_are_indexed_scored_and_labelled(voc_photos, seg_model, tmp_path):
    """labelme's three PASCAL VOC 2011 photographs as a VOC root (tests/voc_photos.py): real
    JPEGs, palette masks and XML go through prepare_data, evaluate and predict. The toy model
    cannot segment photographs; this shows the code paths take real VOC files, not quality."""
    dataset = tmp_path / "dataset"
    result = _run("run", "prepare_data", "--in", f"root={voc_photos}", "--out", dataset)
    assert result.returncode == 0, result.stderr
    index = load_index(dataset)
    assert index.format == "voc" and index.splits == SPLITS
    labels = {i: [index.classes[c] for c in s.labels] for i, s in index.samples.items()}
    assert labels == {
        "2011_000003": ["person"],
        "2011_000006": ["person"],
        "2011_000025": ["bus", "car"],
    }
    stats = json.loads((dataset / "stats.json").read_text())
    assert stats["height"] == [338, 375] and stats["width"] == [500, 500]
    # the XML names only the boxes labelme's example drew; the masks hold more: said, not hidden
    assert stats["masks_with_unlabelled_classes"] == {
        "2011_000003": ["bottle"],
        "2011_000006": ["chair", "sofa"],
    }
    assert "warning: 2 of 3 GT masks hold classes their image labels lack" in result.stderr
    evaluation = tmp_path / "evaluation"
    result = _run(
        "run",
        "evaluate",
        "--in",
        f"dataset={dataset}",
        "--in",
        f"seg_model={seg_model}",
        "--out",
        evaluation,
        "--params",
        tiny_params(tmp_path / "p.yaml"),
    )
    assert result.returncode == 0, result.stderr
    assert 0 <= open_artifact(evaluation, "evaluation").manifest.metrics["miou"] <= 1
    prediction = read_mask(evaluation / "predictions" / "2011_000025.png")
    assert prediction.shape == (375, 500)
    out = tmp_path / "pred"
    result = _run(
        "predict", "--model", seg_model, "--images", voc_photos / "JPEGImages", "--out", out
    )
    assert result.returncode == 0, result.stderr
    for image_id in SPLITS["train_aug"]:
        width, height = Image.open(voc_photos / "JPEGImages" / f"{image_id}.jpg").size
        assert read_mask(out / "masks" / f"{image_id}.png").shape == (height, width)
        assert (out / "overlays" / f"{image_id}.png").is_file()
