"""COCO: instances JSON -> semantic PNGs (pycocotools), then the COCO reader via prepare_data."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import write_coco
from wsss.data.io import read_mask


def test_coco_masks_and_reader(cli, tmp_path):
    root = tmp_path / "coco"
    ann = write_coco(root)
    result = cli("data", "coco-masks", "--instances", ann, "--out", root)
    assert result.code == 0, result.err
    # image 30 has no annotation: no label, so it is not listed
    assert (root / "ImageSets" / "train.txt").read_text().split() == [
        "COCO_train2014_000000000009",
        "COCO_train2014_000000000025",
    ]
    m9 = read_mask(root / "SegmentationClass" / "train2014" / "COCO_train2014_000000000009.png")
    assert m9[3, 3] == 1 and m9[5, 5] == 80 and m9[15, 20] == 0  # small object drawn on top
    m25 = read_mask(root / "SegmentationClass" / "train2014" / "COCO_train2014_000000000025.png")
    assert m25[3, 3] == 3 and (m25[:, 20:] == 255).all()  # crowd region ignored

    params = tmp_path / "params.yaml"
    params.write_text("dataset:\n  splits: [train]\n  mask_splits: [train]\n")
    out = tmp_path / "dataset"
    result = cli("run", "prepare_data", "--in", f"root={root}", "--out", out, "--params", params)
    assert result.code == 0, result.err
    labels = json.loads((out / "labels.json").read_text())
    assert labels == {
        "COCO_train2014_000000000009": ["person", "toothbrush"],
        "COCO_train2014_000000000025": ["car"],
    }
    assert json.loads((out / "source.json").read_text())["format"] == "coco"
    assert json.loads((out / "classes.json").read_text())[79] == "toothbrush"


def test_coco_masks_bad_json(cli, tmp_path):
    bad = tmp_path / "instances.json"
    bad.write_text('{"images": []}')
    result = cli("data", "coco-masks", "--instances", bad, "--out", tmp_path / "coco")
    assert result.code == 2 and str(bad) in result.err and result.err.count("\n") == 1


def test_coco_mask_value_out_of_range(cli, tmp_path):
    root = tmp_path / "coco"
    ann = write_coco(root)
    cli("data", "coco-masks", "--instances", ann, "--out", root)
    path = root / "SegmentationClass" / "train2014" / "COCO_train2014_000000000009.png"
    mask = read_mask(path)
    mask[0, 0] = 99
    Image.fromarray(np.array(mask)).save(path)
    params = tmp_path / "params.yaml"
    params.write_text("dataset:\n  splits: [train]\n  mask_splits: [train]\n")
    result = cli(
        "run", "prepare_data", "--in", f"root={root}", "--out", tmp_path / "d", "--params", params
    )
    assert result.code == 2 and str(path) in result.err and "99" in result.err


def _mutated(path, mutate):
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))


def _set(where: str, value):
    """A mutation: set the field at WHERE (dotted, with list indices) to VALUE, or drop it."""

    def mutate(data):
        *parents, last = where.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DROP:
            del node[last]
        else:
            node[int(last) if isinstance(node, list) else last] = value

    return mutate


_DROP = object()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set("images.0.height", 10**9), "images.0.height"),
        (_set("images.0.width", -1), "images.0.width"),
        (_set("images.0.height", "20"), "images.0.height"),
        (_set("annotations.0.area", _DROP), "annotations.0.area"),
        (_set("annotations.0.image_id", 12345), "unknown image id"),
        (_set("annotations.0.category_id", 12), "unknown category id"),
        (_set("annotations.0.segmentation", [[1, 2, 3]]), "a polygon of 3 numbers"),
        (_set("annotations.3.segmentation.counts", [1, 2]), "RLE counts sum to 3"),
        (_set("images.0.file_name", "COCO_train2014_000000000009\n.jpg"), "file_name"),
        (_set("images.0.file_name", "../COCO_train2014_9.jpg"), "file_name"),
        (_set("images", {"not": "a list"}), "images"),
    ],
)
def test_coco_masks_refuses_a_hostile_instances_json(cli, tmp_path, mutate, message):
    root = tmp_path / "coco"
    ann = write_coco(root)
    _mutated(ann, mutate)
    result = cli("data", "coco-masks", "--instances", ann, "--out", root)
    assert result.code == 2 and result.err.count("\n") == 1 and message in result.err, result.err
    assert not (root / "SegmentationClass").exists()


def test_coco_masks_on_bytes_that_are_not_json(cli, tmp_path):
    for name, raw in [("bad_utf8.json", b'{"images": "\xff"}'), ("dir.json", None)]:
        path = tmp_path / name
        path.mkdir() if raw is None else path.write_bytes(raw)
        result = cli("data", "coco-masks", "--instances", path, "--out", tmp_path / "coco")
        assert result.code == 2 and result.err.count("\n") == 1, result.err
