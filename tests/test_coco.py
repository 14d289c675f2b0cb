"""COCO: instances JSON -> semantic PNGs (pycocotools), then the COCO reader via prepare_data."""

import json

import numpy as np
import pytest
from PIL import Image

from wsss.data.io import read_mask

# The 80 COCO category ids (1..90 with gaps), as in the official files.
COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def _write_coco(root):
    images = [
        {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "height": 20, "width": 30},
        {"id": 25, "file_name": "COCO_train2014_000000000025.jpg", "height": 20, "width": 30},
        {"id": 30, "file_name": "COCO_train2014_000000000030.jpg", "height": 20, "width": 30},
    ]
    square = [[2, 2, 12, 2, 12, 12, 2, 12]]  # polygon x,y pairs
    small = [[4, 4, 8, 4, 8, 8, 4, 8]]
    crowd_rle = {"size": [20, 30], "counts": [20 * 20, 20 * 10]}  # column-major: right third

    def ann(i, image_id, category, segmentation, area, crowd=0):
        return {"id": i, "image_id": image_id, "category_id": category,
                "segmentation": segmentation, "area": area, "iscrowd": crowd}  # fmt: skip

    annotations = [
        ann(1, 9, 1, square, 100),
        ann(2, 9, 90, small, 16),
        ann(3, 25, 3, square, 100),
        ann(4, 25, 1, crowd_rle, 200, crowd=1),
    ]
    categories = [{"id": i, "name": f"c{i}"} for i in COCO_IDS]
    ann = root / "annotations" / "instances_train2014.json"
    ann.parent.mkdir(parents=True)
    ann.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    (root / "train2014").mkdir()
    for im in images:
        Image.new("RGB", (30, 20), (90, 120, 30)).save(root / "train2014" / im["file_name"])
    return ann


def test_coco_masks_and_reader(cli, tmp_path):
    root = tmp_path / "coco"
    ann = _write_coco(root)
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
    ann = _write_coco(root)
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
    ann = _write_coco(root)
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
