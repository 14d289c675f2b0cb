"""Params files: the shipped presets load, and the ToyVOC preset equals the defaults."""

from pathlib import Path

import pytest

from wsss.config.params import Params, digest, load_params

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["params.yaml", "params/voc.yaml", "params/coco.yaml"])
def test_presets_load(name):
    assert isinstance(load_params(REPO / name), Params)


def test_toyvoc_preset_is_the_default():
    assert load_params(REPO / "params.yaml") == Params() == load_params(None)


def test_digest_is_canonical():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


def test_params_files_are_read_as_yaml_1_2_as_dvc_writes_them(tmp_path):
    """DVC's `exp run -S` rewrites params.yaml in YAML 1.2: bare `off` is a string there (YAML
    1.1 makes it False), and 1e-5 a number (YAML 1.1: a string)."""
    path = tmp_path / "params.yaml"
    path.write_text("train_deeplab:\n  confidence: off\n  min_lr: 1e-5\n")
    p = load_params(path).train_deeplab
    assert p.confidence == "off" and p.min_lr == 1e-5
