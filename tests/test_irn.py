"""IRN: pair indexing, the affinity and displacement losses, the random walk, IR labels with and
without CRF, confidence masks, and train_irn + export_masks on CAMs made from GT masks."""

import math
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from benchmarks.irn_stage import gt_boundary_cells
from tests.helpers import seal, tiny_params, write_cams
from wsss.artifacts.manifest import MANIFEST
from wsss.artifacts.opening import open_artifact
from wsss.config.crf import CrfParams
from wsss.data.classes import IGNORE
from wsss.data.io import read_mask
from wsss.kinds.dataset import load_index
from wsss.losses.irn import affinity_loss, displacement_loss
from wsss.refine.affinity import (
    forward_offsets,
    pair_labels,
    path_affinity,
    path_points,
    random_walk,
    transition_weights,
)
from wsss.refine.ir_labels import confidence_mask, ir_label

WSSS = str(Path(sys.executable).parent / "wsss")


# --- pairs and paths ------------------------------------------------------------------------


def test_forward_offsets_cover_each_pair_once_within_the_radius():
    offsets = forward_offsets(3)
    assert offsets[:2] == [(0, 1), (0, 2)]
    assert all(dy * dy + dx * dx < 9 for dy, dx in offsets)
    assert all((-dy, -dx) not in offsets for dy, dx in offsets)  # one direction per pair
    disc = {(y, x) for y in range(-2, 3) for x in range(-2, 3) if 0 < y * y + x * x < 9}
    assert disc == set(offsets) | {(-dy, -dx) for dy, dx in offsets}


def test_path_points_are_irns_set():
    """IRN's rule: every point of the offset's bounding box closer than 1 to the segment."""
    assert path_points((0, 3)) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    # (1, 3): |x - 3y| < sqrt(10) holds for the whole 2 x 4 box
    assert path_points((1, 3)) == [(y, x) for y in (0, 1) for x in range(4)]
    # (2, 5): |2x - 5y| < sqrt(29)
    assert path_points((2, 5)) == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
        (1, 4),
        (1, 5),
        (2, 3),
        (2, 4),
        (2, 5),
    ]
    # (2, -2): |x + y| < sqrt(2)
    assert path_points((2, -2)) == [(0, -1), (0, 0), (1, -2), (1, -1), (1, 0), (2, -2), (2, -1)]
    assert all({(0, 0), o} <= set(path_points(o)) for o in forward_offsets(10))


def test_path_affinity_is_cut_by_a_wall_and_by_the_image_edge():
    boundary = torch.zeros(1, 4, 6)
    boundary[0, :, 3] = 1.0  # a vertical wall in column 3
    aff = path_affinity(boundary, [(0, 1), (0, 2)])
    assert aff[0, 0, 0, 0] == 1  # (0,0)-(0,1): no wall
    assert aff[0, 0, 0, 2] == 0  # (0,2)-(0,3): ends on the wall
    assert aff[0, 1, 0, 2] == 0  # (0,2)-(0,4): crosses it
    assert aff[0, 1, 0, 4] == 0  # (0,4)-(0,6): leaves the image


# --- losses --------------------------------------------------------------------------------


def test_pair_labels_split_bg_fg_and_negative_pairs_and_skip_unknown():
    label = torch.tensor([[[0, 0, 1, 1, 255, 2]]])
    pairs = pair_labels(label, [(0, 1)])
    assert pairs["bg_pos"][0, 0, 0].tolist() == [True, False, False, False, False, False]
    assert pairs["fg_pos"][0, 0, 0].tolist() == [False, False, True, False, False, False]
    assert pairs["neg"][0, 0, 0].tolist() == [False, True, False, False, False, False]


def test_affinity_loss_rewards_high_affinity_inside_and_low_across():
    label = torch.tensor([[[0, 0, 1, 1]]])
    pairs = pair_labels(label, [(0, 1)])  # bg+ at x=0, neg at x=1, fg+ at x=2
    good = torch.tensor([[[[1.0, 0.0, 1.0, 0.5]]]])
    bad = 1 - good
    lg, lb = affinity_loss(good, pairs), affinity_loss(bad, pairs)
    assert lg["pos"] < 1e-4 and lg["neg"] < 1e-4
    assert lb["pos"] == pytest.approx(-math.log(1e-5), rel=1e-3)
    assert lb["neg"] == pytest.approx(-math.log(1e-5), rel=1e-3)
    none = pair_labels(torch.full((1, 1, 4), 255), [(0, 1)])
    empty = affinity_loss(good, none)  # all-unknown labels: zero, not NaN
    assert empty["pos"] == 0 and empty["neg"] == 0


def test_displacement_loss_is_zero_for_a_field_pointing_at_the_centre():
    label = torch.zeros(1, 5, 5, dtype=torch.long)
    label[0, 1:4, 1:4] = 1
    ys, xs = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    to_centre = torch.stack([2 - ys, 2 - xs])[None]  # D_i = c - p_i
    offsets = forward_offsets(3)
    pairs = pair_labels(label, offsets)
    fg_only = {"fg_pos": pairs["fg_pos"], "bg_pos": torch.zeros_like(pairs["bg_pos"])}
    assert displacement_loss(to_centre, fg_only, offsets)["dp_fg"] == pytest.approx(0, abs=1e-6)
    wrong = displacement_loss(torch.zeros(1, 2, 5, 5), pairs, offsets)
    assert wrong["dp_fg"] > 0.5 and wrong["dp_bg"] == 0  # a constant field is right for bg only


# --- random walk ---------------------------------------------------------------------------


def _dense_transition(weights: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The n x n matrix T[i, j] that the stencil WEIGHTS stand for."""
    size = int(weights.shape[1] ** 0.5)
    half = size // 2
    t = torch.zeros(h * w, h * w)
    for y in range(h):
        for x in range(w):
            for k in range(size * size):
                yy, xx = y + k // size - half, x + k % size - half
                if 0 <= yy < h and 0 <= xx < w:
                    t[yy * w + xx, y * w + x] = weights[0, k, y, x]
    return t


def test_transition_matrix_is_symmetric_affinity_with_columns_summing_to_one():
    torch.manual_seed(0)
    boundary = torch.rand(1, 5, 6) * 0.5
    weights = transition_weights(boundary, beta=2.0, radius=3)
    t = _dense_transition(weights, 5, 6)
    assert torch.allclose(t.sum(0), torch.ones(30), atol=1e-6)  # column-stochastic
    walker = torch.rand(30)
    assert (t @ walker).sum() == pytest.approx(walker.sum().item(), rel=1e-5)  # mass kept
    a = t / t.diagonal()[None]  # A has a unit diagonal, so T[:, j] / T[j, j] = A[:, j]
    assert torch.allclose(a, a.T, atol=1e-5)
    scores = torch.rand(1, 2, 5, 6)
    walked = random_walk(scores, weights, 3)
    expected = scores.flatten(2) @ torch.linalg.matrix_power(t, 3)
    assert torch.allclose(walked.flatten(2), expected, atol=1e-5)


def test_random_walk_keeps_two_regions_split_by_a_boundary_apart():
    boundary = torch.zeros(1, 8, 9)
    boundary[0, :, 4] = 1.0
    scores = torch.zeros(1, 1, 8, 9)
    scores[0, 0, 3, 1] = 1.0  # a seed in the left region
    walked = random_walk(scores, transition_weights(boundary, 10.0, 5), 64)[0, 0]
    assert walked[:, 5:].abs().max() < 1e-6  # nothing crossed the wall
    assert walked[:, :4].min() > 0  # it spread over the left region
    flat = random_walk(torch.ones(1, 1, 8, 9), transition_weights(boundary, 10.0, 5), 64)
    assert torch.allclose(flat, torch.ones_like(flat), atol=1e-5)  # a constant stays constant


# --- IR labels and confidence masks --------------------------------------------------------


def _two_colour_image() -> np.ndarray:
    image = np.zeros((24, 24, 3), np.uint8)
    image[:, :12] = (200, 30, 30)
    image[:, 12:] = (30, 30, 200)
    return image


def test_ir_label_without_crf_follows_the_thresholds():
    cam = np.zeros((1, 4, 4), np.float32)
    cam[0, 0] = [0.9, 0.5, 0.2, 0.05]
    label = ir_label(np.zeros((4, 4, 3), np.uint8), cam, np.array([6]), 0.3, 0.1, None)
    assert label[0].tolist() == [7, 7, 255, 0]  # fg (class 6 -> 7), fg, unknown, bg
    assert (label[1:] == 0).all()


def test_ir_label_with_crf_snaps_to_the_colour_edge():
    image = _two_colour_image()
    cam = np.zeros((1, 24, 24), np.float32)
    cam[0, :, :15] = 0.9  # the CAM spills 3 px past the red/blue edge at column 12
    plain = ir_label(image, cam, np.array([0]), 0.3, 0.1, None)
    refined = ir_label(image, cam, np.array([0]), 0.3, 0.1, CrfParams())
    assert (plain[:, 12:15] == 1).all()
    assert (refined[:, :10] == 1).all() and (refined[:, 13:] == 0).all()


def test_confidence_mask_keeps_the_larger_margin_half_of_each_class():
    scores = torch.tensor(
        [
            [[0.9, 0.8, 0.7, 0.1], [0.1, 0.1, 0.1, 0.1]],  # background
            [[0.1, 0.2, 0.6, 0.9], [0.95, 0.5, 0.6, 0.9]],  # a class
        ]
    )
    keep = confidence_mask(scores)
    # bg wins at (0,0) m=.8, (0,1) .6, (0,2) .1 -> keep floor(3/2) = 1: (0,0)
    # class wins at (0,3) .8, (1,0) .85, (1,1) .4, (1,2) .5, (1,3) .8 -> keep 2: (1,0) + one .8
    assert keep[0, 0] and not keep[0, 1] and not keep[0, 2]
    assert keep[1, 0] and not keep[1, 1] and not keep[1, 2]
    assert int(keep.sum()) == 3 and bool(keep[0, 3]) != bool(keep[1, 3])


# --- the stages ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gt_cams(dataset_artifact, tmp_path_factory) -> Path:
    """A `cams` artifact made from GT masks: each present class's mask, blurred and normalized
    (a good CAM, so the pipeline downstream of it can be checked without training one)."""
    out = tmp_path_factory.mktemp("gt") / "cams"
    (out / "cams").mkdir(parents=True)
    index = load_index(dataset_artifact)
    for sample in index.split("train_aug"):
        gt = read_mask(index.mask_path(sample))
        keys = np.array(sorted(sample.labels), np.int64)
        cams = []
        for c in keys:
            blurred = cv2.GaussianBlur((gt == c + 1).astype(np.float32), (0, 0), 2.0)
            cams.append(blurred / max(blurred.max(), 1e-5))
        write_cams(out / "cams" / f"{sample.id}.npz", keys, np.stack(cams))
    seal(out, "cams", "extract_seeds", {"dataset": dataset_artifact})
    return out


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([WSSS, "run", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def irn_model(dataset_artifact, gt_cams, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("irn")
    params = tiny_params(work / "p.yaml")
    result = _run(
        "train_irn",
        "--in",
        f"dataset={dataset_artifact}",
        "--in",
        f"cams={gt_cams}",
        "--out",
        work / "irn_model",
        "--params",
        params,
    )
    assert result.returncode == 0, result.stderr
    return work / "irn_model"


def test_train_irn_artifact(irn_model):
    m = open_artifact(irn_model, "irn_model").manifest
    assert {"model.pt", "train_log.jsonl", "loss_curve.png"} <= set(m.files)
    assert any(f.startswith("ir_labels/") for f in m.files)
    assert "checkpoint.pt" not in m.files
    # CAMs from GT: IR labels are nearly always right where they say something
    assert m.metrics["ir_label_precision"] > 0.9
    assert math.isfinite(m.metrics["train_loss"])


def test_export_masks(dataset_artifact, gt_cams, irn_model, tmp_path):
    out = tmp_path / "pseudo_masks"
    result = _run(
        "export_masks",
        "--in",
        f"dataset={dataset_artifact}",
        "--in",
        f"cams={gt_cams}",
        "--in",
        f"irn_model={irn_model}",
        "--out",
        out,
        "--params",
        tiny_params(tmp_path / "p.yaml"),
    )
    assert result.returncode == 0, result.stderr
    m = open_artifact(out, "pseudo_masks").manifest
    index = load_index(dataset_artifact)
    for sample in index.split("train_aug"):
        mask = read_mask(out / "masks" / f"{sample.id}.png")
        conf = read_mask(out / "confidence" / f"{sample.id}.png")
        assert set(np.unique(mask)) <= {0, *(c + 1 for c in sample.labels)}
        assert set(np.unique(conf)) <= {0, 255} and conf.mean() / 255 == pytest.approx(0.5, abs=0.1)
    assert m.metrics["pseudo_mask_miou"] > 0.5  # from GT-made CAMs
    assert (out / "mask_overlays.png").exists()


def test_crf_free_ir_labels(dataset_artifact, gt_cams, tmp_path):
    params = tiny_params(tmp_path / "p.yaml", train_irn={"crf": None, "epochs": 1})
    result = _run(
        "train_irn",
        "--in",
        f"dataset={dataset_artifact}",
        "--in",
        f"cams={gt_cams}",
        "--out",
        tmp_path / "irn",
        "--params",
        params,
    )
    assert result.returncode == 0, result.stderr
    assert open_artifact(tmp_path / "irn", "irn_model").manifest.params["train_irn"]["crf"] is None


def test_bad_irn_inputs(cli, dataset_artifact, gt_cams, irn_model, tmp_path):
    def export(cams: Path, irn: Path):
        return cli(
            "run",
            "export_masks",
            "--in",
            f"dataset={dataset_artifact}",
            "--in",
            f"cams={cams}",
            "--in",
            f"irn_model={irn}",
            "--out",
            tmp_path / "o",
            "--params",
            tiny_params(tmp_path / "p.yaml"),
        )

    result = export(dataset_artifact, irn_model)
    assert result.code == 2 and "expected an artifact of kind 'cams'" in result.err
    result = export(gt_cams, gt_cams)
    assert result.code == 2 and "kind 'irn_model'" in result.err
    broken = tmp_path / "broken"
    shutil.copytree(irn_model, broken)
    (broken / MANIFEST).unlink()
    result = export(gt_cams, broken)
    assert result.code == 2 and "no manifest.json" in result.err

    index = load_index(dataset_artifact)
    sample = next(s for s in index.split("train_aug") if len(s.labels) == 1)
    for tamper, message in (
        (lambda arrays: arrays | {"keys": (arrays["keys"] + 1) % 20}, "disagree with the image"),
        (lambda a: a | {"irn_stride4": a["irn_stride4"][:, :, :-2]}, "irn_stride4 shape"),
        (lambda a: {k: v for k, v in a.items() if k != "irn_stride4"}, "with 'irn_stride4'"),
    ):
        cams = tmp_path / "cams"
        shutil.rmtree(cams, ignore_errors=True)
        shutil.copytree(gt_cams, cams)
        path = cams / "cams" / f"{sample.id}.npz"
        with np.load(path) as npz:
            arrays = tamper(dict(npz))
        np.savez_compressed(path, **arrays)
        (cams / MANIFEST).unlink()
        seal(cams, "cams", "extract_seeds", {"dataset": dataset_artifact})
        result = export(cams, irn_model)
        assert result.code == 2 and message in result.err and sample.id in result.err
        assert result.err.count("\n") == 1
        assert not (tmp_path / "o" / MANIFEST).exists()


def test_the_irn_stage_benchmark_marks_gt_boundary_cells():
    """benchmarks.irn_stage scores IRN's boundary map on the stride-4 grid: a cell is a GT
    boundary where its 4x4 block holds two classes or the ignore band, and the padding past the
    image's edge counts as ignore."""
    gt = np.zeros((8, 10), np.uint8)
    gt[:, 5:] = 3  # a class edge inside the second column of cells
    gt[0, 0] = IGNORE
    cells = gt_boundary_cells(gt, (2, 3))
    assert cells.tolist() == [[True, True, True], [False, True, True]]
