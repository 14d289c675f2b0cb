"""Bad files a careless user or a faulty machine hands over: each is one `error:` line (exit 2)
naming the file, or for `wsss predict` a skip with a warning, never a traceback."""

import os

import pytest
import torch
from PIL import Image

from tests.helpers import seal
from wsss.artifacts.manifest import MANIFEST
from wsss.data.io import MAX_PIXELS, image_size, open_image
from wsss.errors import WsssError
from wsss.models.weights import load_weights


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("content", [b"", b"not a zip", "pickle"])
def test_unloadable_weights_are_one_line_without_torch_advice(tmp_path, content):
    path = tmp_path / "w.pth"
    if content == "pickle":
        torch.save({"x": Payload()}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(WsssError) as info:
        load_weights(path, mxnet_names=False)
    message = str(info.value)
    assert message.startswith(f"{path}: not a valid") and "\n" not in message
    assert "weights_only" not in message


def test_an_unloadable_model_in_an_artifact_is_one_line(cli, dataset_artifact, tmp_path):
    model = tmp_path / "cam_model"
    model.mkdir()
    torch.save({"meta": Payload(), "state_dict": {}}, model / "model.pt")
    seal(model, "cam_model", "train_cam", {"dataset": dataset_artifact})
    result = cli(
        "run",
        "extract_seeds",
        "--in",
        f"dataset={dataset_artifact}",
        "--in",
        f"cam_model={model}",
        "--out",
        tmp_path / "cams",
    )
    assert result.code == 2 and "not a loadable CAM checkpoint" in result.err
    assert result.err.count("\n") == 1 and "weights_only" not in result.err
    assert not (tmp_path / "cams" / MANIFEST).exists()


def test_images_above_the_pixel_limit_are_refused_before_decoding(tmp_path):
    side = int(MAX_PIXELS**0.5) + 1
    bomb = tmp_path / "bomb.png"
    Image.new("L", (side, side)).save(bomb)  # a few kB that would decode to 16 MP+
    for read in (open_image, image_size):
        with pytest.raises(WsssError, match="over the limit"):
            read(bomb)


@pytest.mark.parametrize("kind", ["directory", "latin-1"])
def test_bad_params_files(cli, toy_root, tmp_path, kind):
    params = tmp_path / "params.yaml"
    if kind == "directory":
        params.mkdir()
    else:
        params.write_bytes("dataset:\n  format: v\xf6c\n".encode("latin-1"))
    result = cli(
        "run",
        "prepare_data",
        "--in",
        f"root={toy_root}",
        "--out",
        tmp_path / "o",
        "--params",
        params,
    )
    assert result.code == 2 and str(params) in result.err and result.err.count("\n") == 1


@pytest.mark.parametrize("size", [(1, 1), (15, 40), (4096, 10)])
def test_an_image_no_stage_can_take_is_refused_where_it_is_read(cli, toy_copy, tmp_path, size):
    """1 x 1 (no 0.5-scale pass), 4096 x 10 (train_cam's long-side resize leaves 0 rows)."""
    image = sorted((toy_copy / "JPEGImages").glob("*.jpg"))[0]
    Image.new("RGB", size).save(image)
    result = cli("run", "prepare_data", "--in", f"root={toy_copy}", "--out", tmp_path / "ds")
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert image.name in result.err and "at least 16" in result.err
