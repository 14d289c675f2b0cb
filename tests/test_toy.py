"""ToyVOC: determinism, VOC layout, and the WSSS difficulty it is built to have."""

import filecmp
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import body_and_part, toy_variant
from tests.conftest import TINY
from wsss.data.classes import IGNORE, VOC_CLASSES
from wsss.data.io import read_image, read_mask
from wsss.data.toy import (
    _PART_COLOURS,
    _PART_SHAPES,
    FAMILIES,
    FAMILY_SIZE,
    ToyConfig,
    body_colours,
    body_family,
    generate,
    image_ids,
    part_look,
    part_map,
)
from wsss.data.voc import read_voc, read_xml_labels
from wsss.kinds.dataset import load_index


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_same_seed_gives_identical_bytes_and_another_seed_differs(cli, tmp_path):
    args = ["--train", "6", "--val", "3", "--size", "40"]
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert cli("data", "toy", "--out", tmp_path / name, "--seed", seed, *args).code == 0
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _files(a) == _files(b) == _files(c)
    _, mismatch, errors = filecmp.cmpfiles(a, b, _files(a), shallow=False)
    assert mismatch == [] and errors == []
    _, mismatch, _ = filecmp.cmpfiles(a, c, _files(a), shallow=False)
    assert any(m.startswith("JPEGImages/") for m in mismatch)


def test_layout_is_voc_and_read_by_the_voc_reader(toy_root):
    splits = image_ids(TINY)
    index = read_voc(toy_root, ["train_aug", "train", "val"])
    assert index.splits == splits
    assert set(splits["train"]) <= set(splits["train_aug"])
    assert not set(splits["val"]) & set(splits["train_aug"])
    for sample in index.samples.values():
        image = read_image(index.image_path(sample))
        mask = read_mask(index.mask_path(sample))
        assert image.shape == (TINY.size, TINY.size, 3) and mask.shape == image.shape[:2]
        present = {int(v) - 1 for v in np.unique(mask) if 0 < v < IGNORE}
        assert present == set(sample.labels)  # every tagged class is visible, and only those
        assert (mask == IGNORE).any()  # the VOC boundary band


def test_hard_on_purpose(toy_root):
    """Families of four classes share a body pattern and colours that each class tints a little;
    every class's part is far apart from any body, and small parts (v2's) are a unique (shape,
    saturated colour) pair."""
    families = [body_family(c) for c in range(len(VOC_CLASSES))]
    assert all(families.count(f) == FAMILY_SIZE for f in range(FAMILIES))
    parts = {(_PART_SHAPES[c // 5], _PART_COLOURS[c % 5]) for c in range(len(VOC_CLASSES))}
    assert len(parts) == len(VOC_CLASSES)
    same = np.equal.outer(families, families) & ~np.eye(len(families), dtype=bool)
    for tint in (TINY.tint, 0):  # 0: ToyVOC v1, one body per family
        bodies = np.array([body_colours(c, tint) for c in range(len(VOC_CLASSES))])  # (20, 2, 3)
        gap = np.linalg.norm(bodies[:, None] - bodies[None], axis=3).mean(axis=2)
        assert 1.4 * tint <= gap[same].min() and gap[same].max() <= 2.01 * tint
    for parts in ("small", "large"):
        colours = np.array([part_look(c, parts)[1] for c in range(len(VOC_CLASSES))])
        part_to_body = np.linalg.norm(colours[:, None] - bodies.reshape(1, -1, 3), axis=2)
        assert part_to_body.min() > 60  # saturated parts: stronger evidence than any tint
    counts = [len(read_xml_labels(p)) for p in sorted((toy_root / "Annotations").glob("*.xml"))]
    assert min(counts) >= 1 and max(counts) <= 3 and len(set(counts)) > 1


@pytest.mark.parametrize("parts", ["small", "large"])
def test_part_map_finds_the_parts_colours(tmp_path, parts):
    """The parts a benchmark recomputes are where the images show the parts' saturated colours,
    and the rest of each object is not."""
    config = ToyConfig(seed=3, train=6, val=1, parts=parts)
    generate(tmp_path / "toy", config)
    index = read_voc(tmp_path / "toy", ["train_aug"])
    colours = np.array([part_look(c, parts)[1] for c in range(len(VOC_CLASSES))])
    for sample in index.split("train_aug"):
        part = part_map(config, sample.id)
        mask = read_mask(index.mask_path(sample))
        assert (mask[part] > 0).all()
        image = read_image(index.image_path(sample)).astype(np.float32)
        nearest = np.linalg.norm(image[:, :, None] - colours, axis=3).min(axis=2)
        inside = (mask > 0) & (mask != IGNORE)
        on_part, on_body = nearest[part & inside], nearest[~part & inside]
        assert on_part.size and np.median(on_part) < 0.6 * np.median(on_body)


def test_large_parts_are_a_sixth_of_the_object_in_a_hue_of_their_own(tmp_path):
    """Large parts (the default): every class's part has its own hue and, within a family, its
    own shape, and parts cover about a sixth of the object pixels (small ones, v2's, a tenth)."""
    looks = [part_look(c, "large") for c in range(len(VOC_CLASSES))]
    hues = np.array([colour for _, colour in looks])
    gap = np.linalg.norm(hues[:, None] - hues[None], axis=2) + 1e9 * np.eye(len(hues))
    assert gap.min() > 50
    for f in range(FAMILIES):
        assert len({looks[c][0] for c in range(len(VOC_CLASSES)) if body_family(c) == f}) == 4
    share = {}
    for parts in ("small", "large"):
        config = ToyConfig(seed=3, train=24, val=1, size=64, parts=parts)
        generate(tmp_path / parts, config)
        masks = [
            read_mask(tmp_path / parts / "SegmentationClassAug" / f"{i}.png")
            for i in image_ids(config)["train_aug"]
        ]
        parts_px = sum(part_map(config, i).sum() for i in image_ids(config)["train_aug"])
        share[parts] = parts_px / sum(((m > 0) & (m != IGNORE)).sum() for m in masks)
    assert share["small"] < 0.12 and 0.13 < share["large"] < 0.25


def test_benchmarks_name_their_results_after_the_toyvoc_they_ran_on():
    assert toy_variant(ToyConfig.tint, None) == (ToyConfig(), "")
    assert toy_variant(16, None) == (ToyConfig(tint=16), "_tint16")
    assert toy_variant(32, "small") == (ToyConfig(parts="small"), "_small_parts")
    assert toy_variant(0, "small")[1] == "_tint0_small_parts"


def test_body_and_part_measures_where_cams_fire(dataset_artifact, tmp_path):
    """CAMs that are 1 on every part and 0.1 elsewhere: part activation 1, body 0.1, none of
    the body above a 0.2 threshold, every visible part the peak; 0.3 on parts and 1 elsewhere:
    the body covered and no peak on a part."""
    index = load_index(dataset_artifact)
    cases = {(1.0, 0.1): (1.0, 0.1, 0.0, 1.0), (0.3, 1.0): (0.3, 1.0, 1.0, 0.0)}
    for (on_part, elsewhere), expected in cases.items():
        cams = tmp_path / f"cams{on_part}"
        (cams / "cams").mkdir(parents=True)
        for sample in index.split("train"):
            part = part_map(TINY, sample.id)
            cam = np.where(part, on_part, elsewhere)[None].repeat(len(sample.labels), axis=0)
            np.savez(
                cams / "cams" / f"{sample.id}.npz",
                cam=cam.astype(np.float16),
                keys=np.array(sample.labels),
            )
        measured = body_and_part(dataset_artifact, cams, "train", 0.2)
        keys = ("part_activation", "body_activation", "body_covered", "peak_on_part")
        assert [measured[k] for k in keys] == pytest.approx(list(expected), abs=2e-3)
        assert 0.02 < measured["part_share"] < 0.3  # parts are about a tenth of an object


def test_refuses_to_overwrite_a_foreign_directory(cli, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    result = cli("data", "toy", "--out", tmp_path / "mine")
    assert result.code == 2 and "refusing" in result.err
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize(
    "flag", [["--train", "0"], ["--size", "8"], ["--tint", "61"], ["--parts", "medium"]]
)
def test_bad_sizes(cli, tmp_path, flag):
    result = cli("data", "toy", "--out", tmp_path / "t", *flag)
    assert result.code == 2 and result.err.startswith("error:")
    assert not (tmp_path / "t").exists()
