"""prepare_data on VOC-layout roots: the `dataset` artifact, and every bad input it must refuse."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss.artifacts.manifest import MANIFEST
from wsss.data.io import read_mask, write_mask
from wsss.kinds.dataset import load_index


def _prepare(cli, root: Path, out: Path, *extra: str | Path):
    return cli("run", "prepare_data", "--in", f"root={root}", "--out", out, *extra)


def test_dataset_artifact(cli, toy_root, tmp_path):
    out = tmp_path / "dataset"
    result = _prepare(cli, toy_root, out)
    assert result.code == 0, result.err
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["kind"] == "dataset" and manifest["stage"] == "prepare_data"
    assert manifest["metrics"]["images"] == 22 and manifest["metrics"]["images_train"] == 4
    for name in (
        "labels.json",
        "classes.json",
        "splits/train_aug.txt",
        "stats.json",
        "source.json",
    ):
        assert name in manifest["files"]
    index = load_index(out)
    assert index.root.resolve() == toy_root.resolve()
    labels = json.loads((out / "labels.json").read_text())
    assert all(labels[s.id] == index.label_names(s) for s in index.samples.values())
    source = json.loads((out / "source.json").read_text())
    assert len(source["root_digest"]) == 64 and source["format"] == "voc"
    progress = [json.loads(line) for line in result.out.splitlines() if line.startswith("{")]
    assert [p["checked"] for p in progress] == [2 * i for i in range(1, 12)]  # 22 images: ~10
    assert progress[-1]["of"] == 22 and progress[-1]["eta_s"] == 0  # lines, the last at the end


def test_root_digest_tracks_the_bytes(cli, toy_copy, tmp_path):
    assert _prepare(cli, toy_copy, tmp_path / "a").code == 0
    jpg = next((toy_copy / "JPEGImages").glob("*.jpg"))
    image = np.array(Image.open(jpg))
    image[0, 0] = 255 - image[0, 0]
    Image.fromarray(image).save(jpg, quality=80)
    assert _prepare(cli, toy_copy, tmp_path / "b").code == 0
    digests = [json.loads((tmp_path / d / "source.json").read_text())["root_digest"] for d in "ab"]
    assert digests[0] != digests[1]


def _first(root: Path, split: str = "train") -> str:
    return (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()[0]


def _truncate_image(root: Path) -> Path:
    path = root / "JPEGImages" / f"{_first(root)}.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _garbage_image(root: Path) -> Path:
    path = root / "JPEGImages" / f"{_first(root)}.jpg"
    path.write_bytes(b"this is not a jpeg")
    return path


def _mask_wrong_size(root: Path) -> Path:
    path = root / "SegmentationClassAug" / f"{_first(root)}.png"
    write_mask(path, read_mask(path)[:-4])
    return path


def _mask_bad_value(root: Path) -> Path:
    path = root / "SegmentationClassAug" / f"{_first(root)}.png"
    mask = read_mask(path)
    mask[0, 0] = 42
    write_mask(path, mask)
    return path


def _split_names_missing_image(root: Path) -> Path:
    path = root / "ImageSets" / "Segmentation" / "val.txt"
    path.write_text(path.read_text() + "2101_999999\n")
    return path


def _split_lists_an_image_twice(root: Path) -> Path:
    path = root / "ImageSets" / "Segmentation" / "val.txt"
    path.write_text(path.read_text() + _first(root, "val") + "\n")
    return path


def _xml_unknown_class(root: Path) -> Path:
    path = root / "Annotations" / f"{_first(root)}.xml"
    text = path.read_text()
    name = text.split("<name>")[1].split("</name>")[0]
    path.write_text(text.replace(f"<name>{name}</name>", "<name>unicorn</name>", 1))
    return path


def _no_label(root: Path) -> Path:
    path = root / "Annotations" / f"{_first(root)}.xml"
    text = path.read_text()
    path.write_text(text[: text.index("\t<object>")] + "</annotation>\n")
    return path


def _missing_gt_mask(root: Path) -> Path:
    path = root / "SegmentationClassAug" / f"{_first(root, 'val')}.png"
    path.unlink()
    return root


def _colour_mask(root: Path) -> Path:
    path = root / "SegmentationClassAug" / f"{_first(root)}.png"
    Image.open(path).convert("RGB").save(path)
    return path


@pytest.mark.parametrize(
    "corrupt",
    [
        _truncate_image,
        _garbage_image,
        _mask_wrong_size,
        _mask_bad_value,
        _split_names_missing_image,
        _split_lists_an_image_twice,
        _xml_unknown_class,
        _no_label,
        _missing_gt_mask,
        _colour_mask,
    ],
)
def test_bad_root_is_one_line_exit_2_and_no_manifest(cli, toy_copy, tmp_path, corrupt):
    culprit = corrupt(toy_copy)
    out = tmp_path / "dataset"
    result = _prepare(cli, toy_copy, out)
    assert result.code == 2
    assert result.err.startswith("error: ") and result.err.count("\n") == 1
    assert str(culprit) in result.err
    assert not (out / MANIFEST).exists()


def test_a_split_list_may_start_with_a_byte_order_mark(cli, toy_copy, tmp_path):
    path = toy_copy / "ImageSets" / "Segmentation" / "val.txt"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as Windows editors save UTF-8
    assert _prepare(cli, toy_copy, tmp_path / "dataset").code == 0


def test_unknown_params_key(cli, toy_root, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("dataset:\n  splits: [train]\n  mask_splits: [train]\n  colour: blue\n")
    result = _prepare(cli, toy_root, tmp_path / "dataset", "--params", params)
    assert result.code == 2 and result.err.count("\n") == 1
    assert "dataset.colour: unknown key" in result.err and str(params) in result.err
    assert not (tmp_path / "dataset" / MANIFEST).exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("runtime:\n  device: gpu\n", "runtime.device"),
        ("runtime:\n  seed: -1\n", "runtime.seed"),
        ("trian_cam: {}\n", "trian_cam: unknown key"),
        ("- just\n- a list\n", "mapping"),
        ("dataset: [unclosed\n", "not valid YAML"),
        ("runtime:\n  seed: 1\n  seed: 2\n", ':3: not valid YAML (found duplicate key "seed"'),
        ("dataset:\n  mask_splits: [test]\n", "dataset.mask_splits"),
        # values that pass a type check but would crash (or silently mislead) a stage later
        ("runtime:\n  seed: 9223372036854775808\n", "runtime.seed"),
        ("extract_seeds:\n  scales: [0]\n", "extract_seeds.scales.0"),
        ("extract_seeds:\n  scales: []\n", "extract_seeds.scales"),
        ("evaluate:\n  scales: [-1.0]\n", "evaluate.scales.0"),
        ("extract_seeds:\n  sweep: [0.3, 0.1, 0.01]\n", "extract_seeds.sweep"),
        ("extract_seeds:\n  sweep: [0.1, 0.3, 0]\n", "extract_seeds.sweep"),
        ("train_cam:\n  long_side: [88, 64]\n", "train_cam.long_side: the low"),
        ("train_cam:\n  par_dilations: []\n", "train_cam.par_dilations"),
        ("train_deeplab:\n  aspp_rates: [0]\n", "train_deeplab.aspp_rates.0"),
        ("train_irn:\n  scale: [1.5, 0.5]\n", "train_irn.scale"),
        ("train_cam:\n  lr: .inf\n", "train_cam.lr"),
        ("train_cam:\n  margin: .nan\n", "train_cam.margin"),
        ("train_cam:\n  tau_bg: 0.5\n", "train_cam: tau_bg (0.5) must be below tau_fg"),
        # an unhashable method name (Hypothesis found the traceback)
        ("train_cam:\n  method: []\n", "train_cam.method: Input should be 'baseline'"),
        ("train_cam:\n  method: {ktse: 1}\n", "train_cam.method: Input should be"),
        # SIE/SSR/MGA would never run: silently the baseline
        ("train_cam:\n  warmup_epochs: 20\n", "train_cam: warmup_epochs (20) must be below"),
        ("train_cam:\n  num_pair: 9\n", "train_cam: num_pair (9) must be at most batch_size"),
        ("train_irn:\n  bg_threshold: 0.4\n", "train_irn: bg_threshold (0.4) must be below"),
        ("train_irn:\n  radius: 17\n", "train_irn: radius (17) must be at most crop / 4 (16)"),
        ("export_masks:\n  radius: 1000\n", "export_masks.radius"),  # offsets ~ radius^2: OOM
    ],
)
def test_bad_params_name_the_key(cli, toy_root, tmp_path, text, expected):
    params = tmp_path / "params.yaml"
    params.write_text(text)
    result = _prepare(cli, toy_root, tmp_path / "dataset", "--params", params)
    assert result.code == 2 and result.err.count("\n") == 1 and expected in result.err


def test_not_a_dataset_root(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = _prepare(cli, tmp_path / "empty", tmp_path / "dataset")
    assert result.code == 2 and "not a VOC 2012 root" in result.err


def test_refuses_to_clear_a_foreign_out_dir(cli, toy_root, tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep me")
    result = _prepare(cli, toy_root, tmp_path / "home")
    assert result.code == 2 and "refusing" in result.err
    assert (tmp_path / "home" / "notes.txt").exists()


def test_rerun_replaces_an_artifact(cli, toy_root, tmp_path):
    out = tmp_path / "dataset"
    assert _prepare(cli, toy_root, out).code == 0
    (out / "stale.txt").write_text("from an older run")
    assert _prepare(cli, toy_root, out).code == 0
    assert not (out / "stale.txt").exists()
    assert "stale.txt" not in json.loads((out / MANIFEST).read_text())["files"]
