"""Smoke runs (`--smoke N`): the cut, the marking, the refusal by full runs, the cost records and
`wsss estimate`, and the progress every stage prints without a terminal."""

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from wsss.artifacts.manifest import RUN_RECORD, read_run_record
from wsss.artifacts.opening import open_artifact
from wsss.checkpoint import resume_key
from wsss.cli import main
from wsss.config.params import Params, with_smoke
from wsss.data.index import DatasetIndex, Sample
from wsss.data.pairs import EpochSampler
from wsss.estimate import estimate
from wsss.kinds.dataset import SOURCE
from wsss.stages import PIPELINE
from wsss.training import full_run_seconds, smoke_steps

INFERENCE = {"extract_seeds", "export_masks", "evaluate", "train_irn"}  # train_irn: its mining


def _index() -> DatasetIndex:
    """val apart; train inside train_aug; class 0 everywhere, classes 1-3 in a few images."""
    labels = {
        "a": (0,),
        "b": (0,),
        "c": (0, 1),
        "d": (0,),
        "e": (0, 2),
        "f": (0, 3),
        "g": (0,),
        "v1": (0,),
        "v2": (0, 1),
        "v3": (0,),
    }
    samples = {i: Sample(i, f"{i}.jpg", None, c) for i, c in labels.items()}
    splits = {"train_aug": list("abcdefg"), "train": list("bcde"), "val": ["v1", "v2", "v3"]}
    return DatasetIndex("voc", Path("/root"), ("w", "x", "y", "z"), splits, samples)


def test_the_cut_keeps_smaller_splits_inside_larger_ones_and_covers_the_classes():
    cut = _index().smoke_cut(2)
    assert cut.splits["val"] == ["v1", "v2"]  # class 1 brought by v2
    assert cut.splits["train"] == ["b", "c"]
    assert cut.splits["train_aug"] == ["b", "c"]  # train's cut, inside: scored where masked
    assert set(cut.samples) == {"b", "c", "v1", "v2"}
    assert {s: cut.full_size(s) for s in cut.splits} == {"train_aug": 7, "train": 4, "val": 3}
    wider = _index().smoke_cut(5)
    assert set(wider.splits["train"]) <= set(wider.splits["train_aug"])
    covered = {c for i in wider.splits["train_aug"] for c in wider.samples[i].labels}
    assert covered == {0, 1, 2, 3}  # every class the split has, within 5 images
    assert _index().smoke_cut(10).full_size("train_aug") == 7  # nothing to cut


def test_smoke_training_steps_and_sampler():
    assert smoke_steps(5, 2) == [2, 0, 0, 0, 2] and smoke_steps(1, 3) == [3]
    sampler = EpochSampler(3, batch_size=4, seed=1, steps=2)
    drawn = list(sampler)
    assert len(drawn) == 8 and set(drawn) == {0, 1, 2}  # the permutation repeated
    assert list(EpochSampler(10, 4, 1)) == list(EpochSampler(10, 4, 1, steps=2))  # whole batches
    # warm-up epochs 0-2 at batch 8 cost what epoch 0 did, the rest what the last one did
    assert full_run_seconds([10] * 6, [8, 8, 8, 16, 16, 16], {0: 1.0, 5: 3.0}) == 30 + 90
    assert full_run_seconds([10] * 4, [8] * 4, {0: 1.0, 3: 3.0}) == 10 + 10 + 30 + 30  # nearest
    assert full_run_seconds([10], [8], {}) is None
    full, smoke = Params(), with_smoke(Params(), 2)
    assert resume_key("train_cam", full.train_cam, 0, {}, full.smoke) != resume_key(
        "train_cam", smoke.train_cam, 0, {}, smoke.smoke
    )  # a smoke checkpoint is never resumed by a full run


@pytest.fixture(scope="module")
def smoke_run(toy_root, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """make run's own params (the ToyVOC preset) as a smoke run of 2 images per split through
    the CLI; (artifacts, each stage's stdout)."""
    art = tmp_path_factory.mktemp("smoke")
    logs = {}
    for stage in PIPELINE:
        ins = [a for n in stage.inputs for a in ("--in", f"{n}={art / n}")]
        ins = ins if stage.name != "prepare_data" else ["--in", f"root={toy_root}"]
        argv = ["run", stage.name, *ins, "--out", str(art / stage.kind), "--smoke", "2"]
        out, err = io.StringIO(), io.StringIO()  # as in a pod's log: no terminal
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        assert code == 0, (stage.name, err.getvalue())
        logs[stage.name] = out.getvalue().splitlines()
    return art, logs


def test_a_smoke_run_is_marked_cut_and_costed(smoke_run, toy_root):
    art, _ = smoke_run
    dataset = open_artifact(art / "dataset", "dataset")
    assert dataset.manifest.metrics["images_train_aug"] == 2
    full = json.loads((art / "dataset" / SOURCE).read_text())["full_splits"]
    assert full["train_aug"] == len(
        (toy_root / "ImageSets/Segmentation/train_aug.txt").read_text().split()
    )
    for stage in PIPELINE:
        artifact = open_artifact(art / stage.kind, stage.kind)
        assert artifact.manifest.smoke == 2 and artifact.manifest.params["smoke"]["images"] == 2
        run = read_run_record(art / stage.kind)
        assert run.phases and run.peak_memory["cpu_rss"] > 0
        for phase in run.phases:
            assert phase.done >= 1 and phase.full >= phase.done and phase.seconds_per_unit > 0
    steps = read_run_record(art / "cam_model").phases[0]
    preset = Params().train_cam
    assert steps.unit == "step" and steps.done == 2 * Params().smoke.steps
    batches = [preset.warmup_batch_size] * preset.warmup_epochs
    batches += [preset.batch_size] * (preset.epochs - preset.warmup_epochs)
    assert steps.full == sum(full["train_aug"] // b for b in batches)
    assert open_artifact(art / "cams").manifest.metrics["images"] == 2


def test_every_stage_prints_progress_lines_without_a_terminal(smoke_run):
    _, logs = smoke_run
    for stage in PIPELINE:
        progress = [json.loads(line) for line in logs[stage.name] if line.startswith("{")]
        assert progress, f"{stage.name}: no progress line"
        last = progress[-1]
        assert {"elapsed_s", "images_s", "eta_s"} <= set(last), last
        if stage.name in INFERENCE:
            ends = [p for p in progress if "done" in p]
            assert ends and ends[-1]["done"] == ends[-1]["of"] == 2, (stage.name, progress)


def test_a_full_run_refuses_a_smoke_artifact(smoke_run, tmp_path, cli):
    art, _ = smoke_run
    result = cli("run", "train_cam", "--in", f"dataset={art / 'dataset'}", "--out", tmp_path / "c")
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert "a smoke run's dataset (2 images per split)" in result.err
    assert not (tmp_path / "c").exists()
    shown = cli("lineage", art / "evaluation")
    heads = [line for line in shown.out.splitlines() if " <- " in line]
    assert shown.code == 0 and len(heads) >= 7
    assert all("[SMOKE RUN: 2 images per split]" in line for line in heads)


def test_estimate_scales_each_stage_to_the_full_run(smoke_run, dataset_artifact, cli):
    art, _ = smoke_run
    costs = {c.stage: c for c in estimate(str(art / "evaluation"))}
    assert list(costs) == [s.name for s in PIPELINE]  # upstream first, each once
    for stage in PIPELINE:
        run = read_run_record(art / stage.kind)
        scaled = sum(p.full_seconds or p.seconds_per_unit * p.full for p in run.phases)
        assert costs[stage.name].full_s >= round(scaled, 1) - 0.1
    cams = costs["extract_seeds"]  # one .npz and one .png per image: grows with the images
    files = open_artifact(art / "cams").manifest.files
    per_image = sum(f.size for rel, f in files.items() if rel.startswith(("cams/", "seeds/")))
    grown = per_image * (read_run_record(art / "cams").phases[0].full / 2 - 1)
    assert cams.full_bytes - cams.smoke_bytes == pytest.approx(grown, abs=1)
    model = costs["train_cam"]  # a model file: the same size at any data size
    assert model.full_bytes == model.smoke_bytes
    shown = cli("estimate", art / "evaluation")
    assert shown.code == 0 and "total" in shown.out and "assumes:" in shown.out
    refused = cli("estimate", dataset_artifact)
    assert refused.code == 2 and "not a smoke run's artifact" in refused.err


def test_predict_in_a_smoke_run_cuts_the_folder_and_prints_progress(smoke_run, toy_root, tmp_path):
    """`wsss predict` with a smoke params file reads the smoke seg_model (a full predict refuses
    it), predicts N images of the folder and prints its progress lines."""
    art, _ = smoke_run
    images = toy_root / "JPEGImages"
    refused = tmp_path / "refused"
    argv = ["predict", "--model", str(art / "seg_model"), "--images", str(images), "--out"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main([*argv, str(refused)]) == 2
    assert "a smoke run's seg_model" in err.getvalue() and not refused.exists()
    params = tmp_path / "smoke.yaml"
    params.write_text("smoke:\n  images: 3\n")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main([*argv, str(tmp_path / "pred"), "--params", str(params)]) == 0
    assert len(list((tmp_path / "pred" / "masks").glob("*.png"))) == 3
    progress = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    assert progress[-1]["stage"] == "predict" and progress[-1]["done"] == progress[-1]["of"] == 3


def test_estimate_refuses_a_damaged_cost_record_with_one_line(smoke_run, tmp_path, cli):
    """run.json informs and no digest vouches for it: a wrong type in a phase is refused where
    it is read, never multiplied."""
    art, _ = smoke_run
    copy = tmp_path / "art"
    shutil.copytree(art, copy)
    record = json.loads((copy / "irn_model" / RUN_RECORD).read_text())
    record["phases"][0]["full"] = "x"
    (copy / "irn_model" / RUN_RECORD).write_text(json.dumps(record))
    result = cli("estimate", copy / "evaluation")
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert "irn_model: no readable cost in its run.json" in result.err
