"""train_cam and extract_seeds end to end on a tiny ToyVOC: artifacts, resume after kill -9,
DDP with two gloo processes, and the bad inputs these stages must refuse."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.helpers import tiny_params
from wsss.artifacts.manifest import MANIFEST
from wsss.artifacts.opening import open_artifact
from wsss.artifacts.output import staging_of
from wsss.data.dataset import MultiScaleSet
from wsss.data.io import read_mask, write_mask
from wsss.data.transforms import IMAGENET_MEAN, IMAGENET_STD, scaled_size
from wsss.inference import multiscale_cams, seeds_from_cams
from wsss.methods.registry import METHODS
from wsss.runtime import describe

WSSS = str(Path(sys.executable).parent / "wsss")


@pytest.fixture(scope="module")
def cam_model(dataset_artifact, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("cam")
    out = work / "cam_model"
    params = tiny_params(work / "params.yaml")
    result = subprocess.run(
        [
            WSSS,
            "run",
            "train_cam",
            "--in",
            f"dataset={dataset_artifact}",
            "--out",
            out,
            "--params",
            params,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (work / "stdout.txt").write_text(result.stdout)  # its log, outside the artifact
    return out


def test_log_lines_tell_time_and_the_history_keeps_exact_values(cam_model):
    """Without a terminal (CI, DVC, a pod) the JSON log lines are the progress: elapsed, images
    per second, time left; train_log.jsonl (in the artifact's bytes) has no times."""
    lines = [
        json.loads(line)
        for line in (cam_model.parent / "stdout.txt").read_text().splitlines()
        if line.startswith("{")
    ]
    history = [
        json.loads(line) for line in (cam_model / "train_log.jsonl").read_text().splitlines()
    ]
    assert len(lines) == len(history) and lines[-1]["step"] == history[-1]["step"]
    for line in lines:
        assert line["elapsed_s"] >= 0 and line["images_s"] > 0 and line["eta_s"] >= 0
    assert lines[-1]["eta_s"] == 0
    assert not any("elapsed_s" in row or "eta_s" in row for row in history)
    assert set(history[-1]) >= {"step", "lr", "cls", "total"}


def test_cam_model_artifact(cam_model):
    artifact = open_artifact(cam_model, "cam_model")
    m = artifact.manifest
    assert {"model.pt", "train_log.jsonl", "loss_curve.png", "metrics.json"} <= set(m.files)
    assert "checkpoint.pt" not in m.files  # removed once training is done
    assert m.metrics["steps"] == 8 and 0 <= m.metrics["cls_map"] <= 1
    log = [json.loads(line) for line in (cam_model / "train_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in log] == list(range(1, 9))
    assert "kt" not in log[0] and {"kt", "seg_two", "local", "global", "bg"} <= set(log[-1])
    saved = torch.load(cam_model / "model.pt", weights_only=True)
    assert saved["meta"]["backbone"] == "toy" and saved["meta"]["num_classes"] == 20


def test_extract_seeds(cli, dataset_artifact, cam_model, tmp_path):
    out = tmp_path / "cams"
    params = tiny_params(tmp_path / "params.yaml")
    plots = tmp_path / "plots" / "extract_seeds"
    inside = cli(
        "run",
        "extract_seeds",
        "--in",
        f"dataset={dataset_artifact}",
        "--in",
        f"cam_model={cam_model}",
        "--out",
        out,
        "--params",
        params,
        "--plots",
        out / "plots",
    )
    assert inside.code == 2 and "--plots" in inside.err and "inside --out" in inside.err
    result = cli(
        "run",
        "extract_seeds",
        "--in",
        f"dataset={dataset_artifact}",
        "--in",
        f"cam_model={cam_model}",
        "--out",
        out,
        "--params",
        params,
        "--plots",
        plots,
    )
    assert result.code == 0, result.err
    m = open_artifact(out, "cams").manifest
    # DVC's plot data, outside the artifact: the sweep of seed_scores.json, one row a threshold
    sweep = json.loads((out / "seed_scores.json").read_text())["sweep"]
    rows = json.loads((plots / "threshold_sweep.json").read_text())
    assert [(r["threshold"], r["seed_miou"]) for r in rows] == [
        (float(t), miou) for t, miou in sweep.items()
    ]
    assert not any(name.endswith("sweep.json") for name in m.files)  # not twice
    # every train_aug image is extracted; only those of score_split (train) are scored
    assert m.metrics["images"] == 16 and m.metrics["scored_images"] == 4
    assert m.metrics["seed_miou"] >= m.metrics["seed_miou_fixed"] - 1e-9  # best of the sweep
    assert 0.1 <= m.metrics["seed_threshold"] < 0.3
    assert {"threshold_sweep.png", "cam_overlays.png", "seed_scores.json"} <= set(m.files)
    labels = json.loads((dataset_artifact / "labels.json").read_text())
    classes = json.loads((dataset_artifact / "classes.json").read_text())
    for npz_path in (out / "cams").glob("*.npz"):
        npz = np.load(npz_path)
        image_id = npz_path.stem
        assert [classes[k] for k in npz["keys"]] == labels[image_id]  # class-keyed
        assert npz["cam"].dtype == np.float16 and npz["cam"].max() <= 1.0
        seed = read_mask(out / "seeds" / f"{image_id}.png")
        assert set(np.unique(seed)) <= {0, *(int(k) + 1 for k in npz["keys"])}
    assert m.inputs["cam_model"].manifest_digest == open_artifact(cam_model).manifest_digest


def test_seed_rule():
    cams = torch.tensor([[[0.5, 0.1]], [[0.3, 0.15]]])  # 2 classes, 1 x 2 pixels
    assert seeds_from_cams(cams, 0.2).tolist() == [[1, 0]]
    assert seeds_from_cams(cams, 0.12).tolist() == [[1, 2]]


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.slow
def test_resume_after_kill_matches_an_uninterrupted_run(dataset_artifact, method, tmp_path):
    """Everything a method carries across steps (weights, optimizer, FSR's teacher and DINO
    centres, the RNG) is in the checkpoint: killed and resumed = never interrupted."""
    section = {"method": method, "checkpoint_every": 1, "epochs": 3}
    params = tiny_params(tmp_path / "params.yaml", train_cam=section)
    out = tmp_path / "killed"
    cmd = [
        WSSS,
        "run",
        "train_cam",
        "--in",
        f"dataset={dataset_artifact}",
        "--out",
        str(out),
        "--params",
        str(params),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = staging_of(out) / "checkpoint.pt"  # the run writes beside OUT until it is done
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if ckpt.exists() and torch.load(ckpt, weights_only=True)["step"] >= 5:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and ckpt.exists()
    assert torch.load(ckpt, weights_only=True)["step"] < 12  # killed before the end
    resumed = subprocess.run(cmd, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert '"event": "resume"' in resumed.stdout
    straight = tmp_path / "straight"
    cmd[cmd.index(str(out))] = str(straight)
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    a = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(straight / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


@pytest.mark.slow
def test_ddp_two_processes_match_one(dataset_artifact, tmp_path):
    """Baseline with GroupNorm: a global batch of 8 on one process = 2 x 4 on two (gloo)."""
    common = {"method": "baseline", "toy_norm": "group", "epochs": 1, "warmup_epochs": 0}
    one = tiny_params(tmp_path / "one.yaml", train_cam=common | {"batch_size": 8})
    two = tiny_params(tmp_path / "two.yaml", train_cam=common | {"batch_size": 4})
    base = ["run", "train_cam", "--in", f"dataset={dataset_artifact}"]
    single = subprocess.run(
        [WSSS, *base, "--out", tmp_path / "one", "--params", one], capture_output=True, text=True
    )
    assert single.returncode == 0, single.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    double = subprocess.run(
        [*torchrun, "-m", "wsss.cli", *base, "--out", tmp_path / "two", "--params", two],
        capture_output=True,
        text=True,
    )
    assert double.returncode == 0, double.stderr
    m = open_artifact(tmp_path / "two", "cam_model").manifest
    assert m.device == describe(torch.device("cpu"), 2) and m.metrics["steps"] == 2
    a = torch.load(tmp_path / "one" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "two" / "model.pt", weights_only=True)["state_dict"]
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_bad_cam_inputs(cli, dataset_artifact, cam_model, tmp_path):
    seeds = ["run", "extract_seeds", "--in", f"dataset={dataset_artifact}", "--out", tmp_path / "o"]
    result = cli(*seeds, "--in", f"cam_model={dataset_artifact}")
    assert result.code == 2 and "expected an artifact of kind 'cam_model'" in result.err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.pt").write_bytes(b"x")
    result = cli(*seeds, "--in", f"cam_model={broken}")
    assert result.code == 2 and "no manifest.json" in result.err
    # a checkpoint for another class count (a cam_model whose meta says 5 classes)
    other = tmp_path / "other"
    import shutil

    shutil.copytree(cam_model, other)
    saved = torch.load(other / "model.pt", weights_only=True)
    saved["meta"]["num_classes"] = 5
    torch.save(saved, other / "model.pt")
    result = cli(*seeds, "--in", f"cam_model={other}")
    assert result.code == 2 and "model.pt" in result.err and result.err.count("\n") == 1
    assert not (tmp_path / "o" / MANIFEST).exists()


def test_divergence_is_one_line_naming_the_loss(cli, dataset_artifact, tmp_path):
    params = tiny_params(tmp_path / "params.yaml", train_cam={"lr": 1e30, "method": "baseline"})
    out = tmp_path / "cam_model"
    result = cli(
        "run", "train_cam", "--in", f"dataset={dataset_artifact}", "--out", out, "--params", params
    )
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert "train_cam: the loss became non-finite at step" in result.err
    assert "(cls, total)" in result.err and "learning rate" in result.err
    assert not (out / MANIFEST).exists()


def test_inference_scales_resize_the_uint8_image_as_pil_does():
    assert scaled_size((97, 131), 0.5) == (48, 66)  # 48.5 -> 48, 65.5 -> 66 (half to even)
    assert scaled_size((97, 131), 1.5) == (146, 196)  # 145.5 -> 146, 196.5 -> 196
    image = np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    base = [{"image": torch.from_numpy(image).permute(2, 0, 1), "labels": torch.ones(2)}]
    views = MultiScaleSet(base, (1.0, 0.5, 1.5))[0]["views"]
    assert [tuple(v.shape) for v in views] == [(3, 97, 131), (3, 48, 66), (3, 146, 196)]
    pil = np.asarray(Image.fromarray(image).resize((66, 48), Image.Resampling.BICUBIC))
    mean, std = (
        torch.tensor(IMAGENET_MEAN)[:, None, None],
        torch.tensor(IMAGENET_STD)[:, None, None],
    )
    expected = (torch.from_numpy(pil.copy()).permute(2, 0, 1) / 255 - mean) / std
    assert torch.allclose(views[1], expected, atol=1e-6)
    plain = (torch.from_numpy(image).permute(2, 0, 1) / 255 - mean) / std
    assert torch.allclose(views[0], plain, atol=1e-6)


class _FixedCams(torch.nn.Module):
    """A stand-in CAM network that returns RAW (2B, C, h, w) whatever it is given."""

    def __init__(self, raw: torch.Tensor):
        super().__init__()
        self.raw = raw

    def forward(self, x):
        return SimpleNamespace(cam=self.raw)


def test_irn_cams_relu_after_the_flip_sum_seed_cams_relu_before():
    plain = torch.zeros(1, 2, 2, 2)
    plain[0, :, 0, 0] = 1.0
    flipped = torch.zeros(1, 2, 2, 2)  # what the flipped image gives, flipped back below
    flipped[0, 0, 0, 0] = -1.0  # class 0: +1 and -1 cancel before a ReLU, not after
    flipped[0, 1, 1, 1] = 1.0
    model = _FixedCams(torch.cat([plain, flipped.flip(-1)]))
    labels = torch.ones(1, 2)
    maps = multiscale_cams(model, [torch.zeros(1, 3, 20, 20)], labels, (20, 20), flip=True)
    assert maps.cam.shape == maps.irn_high_res.shape == (1, 2, 20, 20)
    assert maps.irn_stride4.shape == (1, 2, 5, 5)
    assert maps.cam[0, 0].max() == pytest.approx(1, abs=1e-4)  # ReLU per forward: +1 survives
    assert (maps.irn_high_res[0, 0] == 0).all() and (maps.irn_stride4[0, 0] == 0).all()
    # IRN's high-res map is upsampled to ceil(H/16)*16 = 32 and cropped, not resized to 20
    summed = F.relu(plain + flipped)[:, 1:]
    high = F.interpolate(summed, (32, 32), mode="bilinear", align_corners=False)[..., :20, :20]
    assert torch.allclose(maps.irn_high_res[:, 1:], high / (high.amax() + 1e-5), atol=1e-6)
    absent = multiscale_cams(
        model, [torch.zeros(1, 3, 20, 20)], torch.tensor([[0.0, 1]]), (20, 20), flip=True
    )
    assert (absent.cam[0, 0] == 0).all() and (absent.irn_high_res[0, 0] == 0).all()


def test_a_closed_stdout_does_not_abort_training(dataset_artifact, tmp_path):
    """`wsss run train_cam … | head -1`: the reader leaves after one line, the run finishes."""
    out = tmp_path / "cam_model"
    cmd = [
        WSSS,
        "run",
        "train_cam",
        "--in",
        f"dataset={dataset_artifact}",
        "--out",
        str(out),
        "--params",
        str(tiny_params(tmp_path / "p.yaml")),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline()  # the first log line, then the reader is gone
    proc.stdout.close()
    stderr = proc.communicate(timeout=300)[1].decode()
    assert proc.returncode == 0, stderr
    assert "BrokenPipe" not in stderr and open_artifact(out, "cam_model")


def _garbage(path):
    path.write_bytes(b"\xff\xd8 not a jpeg any more")


def _another_valid_image(path):
    """Still decodes, same size: only the recorded sha256 can tell."""
    Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path, quality=90)


def _gt_mask_edited(path):
    mask = read_mask(path)
    mask[0, 0] = 0 if mask[0, 0] else 1
    write_mask(path, mask)


@pytest.mark.parametrize(
    ("folder", "change"),
    [
        ("JPEGImages", _garbage),
        ("JPEGImages", _another_valid_image),
        ("SegmentationClassAug", _gt_mask_edited),
    ],
)
def test_a_root_file_changed_after_prepare_data_is_one_line(
    cli, cam_model, toy_copy, tmp_path, folder, change
):
    dataset = tmp_path / "dataset"
    assert cli("run", "prepare_data", "--in", f"root={toy_copy}", "--out", dataset).code == 0
    first = (toy_copy / "ImageSets" / "Segmentation" / "train.txt").read_text().split()[0]
    victim = next((toy_copy / folder).glob(f"{first}.*"))
    change(victim)
    result = cli(
        "run",
        "extract_seeds",
        "--in",
        f"dataset={dataset}",
        "--in",
        f"cam_model={cam_model}",
        "--out",
        tmp_path / "cams",
        "--params",
        tiny_params(tmp_path / "p.yaml"),
    )
    assert result.code == 2 and victim.name in result.err and result.err.count("\n") == 1
    if change is not _garbage:
        assert "changed since prepare_data hashed it" in result.err
    assert not (tmp_path / "cams").exists()
