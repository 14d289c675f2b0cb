"""mIoU against an independent per-class count, and `wsss score`."""

import json

import numpy as np
import pytest

from wsss.data.io import write_mask
from wsss.metrics import ConfusionMatrix, image_miou, images_to_show

C = 5


def _direct(preds, gts, num_classes):
    """Per-class TP / FP / FN counted with boolean masks, no confusion matrix."""
    tp = np.zeros(num_classes)
    fp = np.zeros(num_classes)
    fn = np.zeros(num_classes)
    correct = total = 0
    for pred, gt in zip(preds, gts, strict=True):
        valid = gt != 255
        for c in range(num_classes):
            tp[c] += np.sum(valid & (gt == c) & (pred == c))
            fp[c] += np.sum(valid & (gt != c) & (pred == c))
            fn[c] += np.sum(valid & (gt == c) & (pred != c))
        correct += np.sum(valid & (pred == gt))
        total += np.sum(valid)
    union = tp + fp + fn
    iou = [tp[c] / union[c] if union[c] else None for c in range(num_classes)]
    present = [v for v in iou if v is not None]
    return {"miou": sum(present) / len(present), "iou": iou, "pixel_acc": correct / total}


def _random(rng, n=4):
    gts = [rng.integers(0, C - 1, (13, 17)).astype(np.uint8) for _ in range(n)]  # class C-1 absent
    for gt in gts:
        gt[rng.random(gt.shape) < 0.1] = 255
    preds = [rng.integers(0, C - 1, gt.shape).astype(np.uint8) for gt in gts]
    for pred in preds:
        pred[rng.random(pred.shape) < 0.05] = 255  # abstentions: misses, nobody's false positive
    return preds, gts


def test_confusion_matrix_equals_a_direct_count():
    preds, gts = _random(np.random.default_rng(0))
    matrix = ConfusionMatrix(C)
    for pred, gt in zip(preds, gts, strict=True):
        matrix.update(pred, gt)
    expected = _direct(preds, gts, C)
    got = matrix.summary()
    assert got["miou"] == pytest.approx(expected["miou"])
    assert got["pixel_acc"] == pytest.approx(expected["pixel_acc"])
    assert got["iou"][C - 1] is None  # empty union: left out of the mean
    assert got["iou"][:-1] == pytest.approx(expected["iou"][:-1])


def test_perfect_and_disjoint():
    gt = np.array([[0, 1], [1, 255]], np.uint8)
    matrix = ConfusionMatrix(3)
    matrix.update(gt.copy(), gt)
    assert matrix.miou() == 1.0 and matrix.summary()["iou"] == [1.0, 1.0, None]
    matrix = ConfusionMatrix(3)
    matrix.update(np.array([[1, 0], [0, 0]], np.uint8), gt)
    assert matrix.miou() == 0.0


def test_score_cli_matches_direct_count(cli, tmp_path):
    preds, gts = _random(np.random.default_rng(1), n=3)
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    for i, (pred, gt) in enumerate(zip(preds, gts, strict=True)):
        write_mask(tmp_path / "pred" / f"im{i}.png", pred)
        write_mask(tmp_path / "gt" / f"im{i}.png", gt)
    result = cli("score", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--num-classes", C)
    assert result.code == 0, result.err
    got = json.loads(result.out)
    expected = _direct(preds, gts, C)
    assert got["miou"] == pytest.approx(expected["miou"]) and got["images"] == 3
    # --list restricts the set
    (tmp_path / "list.txt").write_text("im0\n")
    result = cli(
        "score",
        "--pred",
        tmp_path / "pred",
        "--gt",
        tmp_path / "gt",
        "--num-classes",
        C,
        "--list",
        tmp_path / "list.txt",
    )
    assert json.loads(result.out)["miou"] == pytest.approx(_direct(preds[:1], gts[:1], C)["miou"])


def test_score_bad_input(cli, tmp_path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    write_mask(tmp_path / "gt" / "a.png", np.zeros((4, 4), np.uint8))
    result = cli("score", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt")
    assert result.code == 2 and "a.png: prediction missing" in result.err
    write_mask(tmp_path / "pred" / "a.png", np.zeros((4, 5), np.uint8))
    result = cli("score", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt")
    assert result.code == 2 and "differs from GT" in result.err


@pytest.mark.parametrize("value", ["1", "0", "-5", "256", "x"])
def test_score_refuses_a_class_count_outside_2_to_255(cli, tmp_path, value):
    result = cli("score", "--pred", tmp_path, "--gt", tmp_path, "--num-classes", value)
    assert result.code == 2 and "--num-classes" in result.err and result.err.count("\n") == 1


def test_score_refuses_gt_values_beyond_the_class_count(cli, tmp_path):
    for folder in ("pred", "gt"):
        (tmp_path / folder).mkdir()
        write_mask(tmp_path / folder / "a.png", np.array([[0, 1], [4, 255]], np.uint8))
    result = cli(
        "score", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--num-classes", "3"
    )
    assert result.code == 2 and "GT value 4 is not a class of 0..2" in result.err
    ok = cli("score", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--num-classes", "5")
    assert ok.code == 0


def test_toy_refuses_a_negative_seed(cli, tmp_path):
    result = cli("data", "toy", "--out", tmp_path / "t", "--seed", "-1")
    assert result.code == 2 and "--seed" in result.err and not (tmp_path / "t").exists()


def test_confusion_rows_give_each_true_class_a_hundred_rows_in_proportion():
    from collections import Counter

    from wsss.plot_data import confusion_rows

    rows = confusion_rows(np.array([[7, 2, 1, 0], [0, 0, 0, 0], [1, 1, 0, 1]]), ["a", "b", "c"])
    counts = Counter((r["actual"], r["predicted"]) for r in rows)
    assert counts[("a", "a")] == 70 and counts[("a", "b")] == 20 and counts[("a", "c")] == 10
    assert not any(a == "b" for a, _ in counts)  # no pixels of b: no rows
    assert sorted(n for (a, _), n in counts.items() if a == "c") == [33, 33, 34]
    assert counts[("c", "none")] == 33 and ("c", "c") not in counts  # the no-prediction column


def test_plot_data_rows_all_carry_every_key(tmp_path):
    from wsss.plot_data import write_plot_data

    write_plot_data(tmp_path / "loss.json", [{"step": 1, "cls": 0.5}, {"step": 2, "kt": 0.1}])
    rows = json.loads((tmp_path / "loss.json").read_text())
    assert rows == [{"step": 1, "cls": 0.5, "kt": None}, {"step": 2, "cls": None, "kt": 0.1}]


def test_mean_average_precision_ranks_each_class_and_ignores_absent_ones():
    from wsss.metrics import mean_average_precision

    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    perfect = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.7, 0.3, 0.0], [0.1, 0.2, 0.0]])
    assert mean_average_precision(perfect, labels) == 1.0  # class 2 has no positive: left out
    # class 0 ranked: image 0 (hit), image 3 (miss), image 2 (hit): AP = (1/1 + 2/3) / 2
    swapped = perfect.copy()
    swapped[3, 0], swapped[2, 0] = 0.8, 0.75
    assert abs(mean_average_precision(swapped, labels) - ((1 + 2 / 3) / 2 + 1) / 2) < 1e-12
    always_negative = np.full_like(perfect, -1.0)  # per-label accuracy 0.75; mAP sees the ties
    assert mean_average_precision(always_negative, labels) < 1.0


def test_the_loss_curve_draws_every_part_even_those_logged_after_the_warm_up(tmp_path):
    from wsss.plots import plot_curves

    history = [{"step": 10, "epoch": 0, "lr": 0.1, "cls": 0.6, "total": 0.6}]
    history += [
        {"step": 20, "epoch": 1, "lr": 0.05, "cls": 0.5, "kt": 0.1, "fg": 2.0, "total": 0.9}
    ]
    drawn = plot_curves(history, tmp_path / "loss.png", "train_cam losses")
    assert drawn == ["cls", "total", "kt", "fg"] and (tmp_path / "loss.png").stat().st_size > 0


def test_a_real_network_without_weights_warns_that_it_starts_from_random(capsys):
    from wsss.training import initial_weights

    assert initial_weights("train_cam", "resnet38d", None) is None
    warned = capsys.readouterr().err
    assert warned.startswith("warning: train_cam: resnet38d with weights: null starts from random")
    assert initial_weights("train_irn", "toy", None) is None  # the toy nets train from scratch
    assert capsys.readouterr().err == ""


def test_figures_show_images_spread_over_the_ranking_or_the_first_ones():
    scores = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.7, "e": 0.3}
    shown = images_to_show(list("abcde"), scores, 3)  # best, median, worst
    assert shown == [("a", "a\nmIoU 90"), ("c", "c\nmIoU 50"), ("b", "b\nmIoU 10")]
    assert images_to_show(list("abcde"), {}, 2) == [("a", "a"), ("b", "b")]  # nothing scored
    assert image_miou(np.array([[1, 1]]), np.array([[1, 0]]), 3) == 0.5 * (0.0 + 0.5)
