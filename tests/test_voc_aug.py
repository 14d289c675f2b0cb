"""`wsss data voc-aug`: SBD's .mat masks into a VOC 2012 root, which then prepares as
params/voc.yaml reads it (train_aug, train, val)."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.io import savemat

from tests.helpers import write_voc_and_sbd
from wsss.config.params import load_params
from wsss.data.io import read_mask
from wsss.kinds.dataset import load_index
from wsss.runner import run_stage

VOC_PRESET = Path(__file__).resolve().parents[1] / "params" / "voc.yaml"


@pytest.fixture
def voc_and_sbd(toy_root, tmp_path):
    return write_voc_and_sbd(toy_root, tmp_path)


def test_sbd_masks_and_train_aug_make_a_root_the_voc_preset_prepares(
    cli, toy_root, voc_and_sbd, tmp_path
):
    voc, sbd = voc_and_sbd
    result = cli("data", "voc-aug", "--sbd", sbd, "--root", voc)
    assert result.code == 0, result.err
    lists = toy_root / "ImageSets" / "Segmentation"
    listed = (voc / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().split()
    assert listed == sorted((lists / "train_aug.txt").read_text().split())  # less VOC's val
    assert f"{len(listed)} images" in result.out
    voc_own = [*(lists / "train.txt").read_text().split(), *(lists / "val.txt").read_text().split()]
    for image_id in voc_own:  # VOC's mask wins over SBD's (drawn empty) where both have one
        own = (voc / "SegmentationClass" / f"{image_id}.png").read_bytes()
        assert (voc / "SegmentationClassAug" / f"{image_id}.png").read_bytes() == own
    for image_id in set(listed) - set(voc_own):
        toy = read_mask(toy_root / "SegmentationClassAug" / f"{image_id}.png")
        converted = read_mask(voc / "SegmentationClassAug" / f"{image_id}.png")
        np.testing.assert_array_equal(converted, np.where(toy == 255, 0, toy))
    preset = yaml.safe_load(VOC_PRESET.read_text())
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"dataset": preset["dataset"]}))
    run_stage("prepare_data", {"root": str(voc)}, tmp_path / "dataset", load_params(params))
    index = load_index(tmp_path / "dataset")
    assert index.splits["train_aug"] == listed
    assert all(index.samples[i].mask == f"SegmentationClassAug/{i}.png" for i in voc_own)


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _wrong_size(path):
    savemat(path, {"GTcls": {"Segmentation": np.zeros((5, 7), np.uint8)}})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_cut, "unreadable MATLAB file"),
        (lambda p: savemat(p, {"other": 1}), "no GTcls.Segmentation"),
        (lambda p: savemat(p, {"GTcls": {"Segmentation": np.full((48, 48), 21)}}), "0..20"),
        (_wrong_size, "a 7 x 5 mask for a 48 x 48 image"),
        (lambda p: p.unlink(), "SBD mask file not found"),
    ],
)
def test_a_damaged_sbd_file_is_one_line_and_writes_nothing(cli, voc_and_sbd, damage, message):
    voc, sbd = voc_and_sbd
    listed = (sbd / "train.txt").read_text().split()
    bad = sbd / "cls" / f"{listed[-1]}.mat"
    damage(bad)
    result = cli("data", "voc-aug", "--sbd", sbd, "--root", voc)
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert str(bad) in result.err and message in result.err, result.err
    assert not (voc / "SegmentationClassAug").exists()
    assert not (voc / "ImageSets" / "Segmentation" / "train_aug.txt").exists()
    assert [p.name for p in voc.iterdir() if p.name.startswith(".")] == []


def test_a_rerun_replaces_the_masks_whole_and_a_wrong_sbd_path_is_one_line(cli, voc_and_sbd):
    voc, sbd = voc_and_sbd
    assert cli("data", "voc-aug", "--sbd", sbd, "--root", voc).code == 0
    stale = voc / "SegmentationClassAug" / "stale.png"
    stale.write_bytes(b"left by an older conversion")
    assert cli("data", "voc-aug", "--sbd", sbd, "--root", voc).code == 0
    assert not stale.exists()
    for wrong, message in [(sbd / "cls", "no cls/ directory"), (sbd.parent, "which this")]:
        result = cli("data", "voc-aug", "--sbd", wrong, "--root", voc)
        assert result.code == 2 and message in result.err, result.err
