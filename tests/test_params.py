"""Params files: the shipped presets load, and the ToyVOC preset equals the defaults."""

from pathlib import Path

import pytest

from wsss.params import Params, digest, load_params

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["params.yaml", "params/voc.yaml", "params/coco.yaml"])
def test_presets_load(name):
    assert isinstance(load_params(REPO / name), Params)


def test_toyvoc_preset_is_the_default():
    assert load_params(REPO / "params.yaml") == Params() == load_params(None)


def test_digest_is_canonical():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})
