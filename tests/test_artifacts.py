"""Manifests (written last, checked on read) and the lineage walk."""

import json
import shutil
from pathlib import Path

import pytest
import torch

import wsss.artifacts.lineage as lineage_module
from tests.helpers import seal
from wsss.artifacts.lineage import lineage
from wsss.artifacts.manifest import MANIFEST, sha256_file
from wsss.artifacts.opening import open_artifact
from wsss.config.params import Params, digest
from wsss.errors import WsssError
from wsss.runner import open_inputs, run_stage
from wsss.runtime import cpu_model, describe
from wsss.stages import Stage


def test_manifest_records_params_inputs_and_files(dataset_artifact, toy_root):
    artifact = open_artifact(dataset_artifact, "dataset")
    m = artifact.manifest
    assert m.params == {
        "dataset": Params().dataset.model_dump(),
        "runtime": Params().runtime.model_dump(),
    }
    assert m.params_digest == digest(m.params)
    root = (dataset_artifact / m.inputs["root"].uri).resolve()
    assert root == toy_root.resolve() and m.inputs["root"].kind is None
    assert m.files and all(
        sha256_file(dataset_artifact / rel) == entry.sha256 for rel, entry in m.files.items()
    )
    assert ".partial" not in m.files and MANIFEST not in m.files
    assert json.loads((dataset_artifact / "metrics.json").read_text()) == m.metrics


def test_open_artifact_refuses_incomplete_and_wrong_kind(dataset_artifact, tmp_path):
    with pytest.raises(WsssError, match="expected an artifact of kind 'cam_model', got 'dataset'"):
        open_artifact(dataset_artifact, "cam_model")
    broken = tmp_path / "broken"
    shutil.copytree(dataset_artifact, broken)
    (broken / "labels.json").write_text("{}")
    with pytest.raises(WsssError, match=r"labels\.json is missing or has the wrong size"):
        open_artifact(broken)
    (broken / MANIFEST).unlink()
    with pytest.raises(WsssError, match=r"no manifest\.json"):
        open_artifact(broken)
    (broken / MANIFEST).write_text('{"kind": "dataset"}')
    with pytest.raises(WsssError, match="invalid manifest"):
        open_artifact(broken)


def test_a_manifest_whose_params_were_edited_is_refused(dataset_artifact, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(dataset_artifact, edited)
    manifest = json.loads((edited / MANIFEST).read_text())
    manifest["params"]["dataset"]["verify"] = not manifest["params"]["dataset"]["verify"]
    (edited / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(WsssError, match="params do not match params_digest"):
        open_artifact(edited)


def test_stage_inputs_must_be_complete_and_of_the_right_kind(dataset_artifact, tmp_path):
    stage = Stage("train_cam", "cam_model", {"dataset": "dataset"}, "dataset")
    assert (
        open_inputs(stage, {"dataset": str(dataset_artifact)})["dataset"].manifest.kind == "dataset"
    )
    wrong = Stage("extract_seeds", "cams", {"cam_model": "cam_model"}, "dataset")
    with pytest.raises(WsssError, match="expected an artifact of kind 'cam_model'"):
        open_inputs(wrong, {"cam_model": str(dataset_artifact)})
    (tmp_path / "half").mkdir()
    with pytest.raises(WsssError, match=r"no manifest\.json"):
        open_inputs(stage, {"dataset": str(tmp_path / "half")})
    with pytest.raises(WsssError, match="missing --in dataset=URI"):
        open_inputs(stage, {})
    with pytest.raises(WsssError, match="unknown input 'cams'"):
        open_inputs(stage, {"dataset": str(dataset_artifact), "cams": "x"})


def test_cli_input_errors(cli, tmp_path):
    result = cli("run", "prepare_data", "--out", tmp_path / "d")
    assert result.code == 2 and "missing --in root=URI" in result.err
    result = cli("run", "train_everything", "--in", "a=b", "--out", tmp_path / "d")
    assert result.code == 2 and "unknown stage" in result.err
    result = cli("run", "prepare_data", "--in", "root", "--out", tmp_path / "d")
    assert result.code == 2 and result.err.count("\n") == 1 and "NAME=URI" in result.err


def _downstream(dataset: Path, out: Path) -> None:
    """A second-generation artifact, written as a stage would, to walk lineage through."""
    out.mkdir()
    (out / "weights.bin").write_bytes(b"\0" * 8)
    seal(out, "cam_model", "train_cam", {"dataset": dataset})


def test_lineage_walks_back_to_the_root_and_survives_a_move(cli, toy_root, tmp_path):
    work = tmp_path / "work"
    run_stage("prepare_data", {"root": str(toy_root)}, work / "artifacts" / "dataset", Params())
    _downstream(work / "artifacts" / "dataset", work / "artifacts" / "cam_model")
    tree = lineage(work / "artifacts" / "cam_model")
    assert tree["stage"] == "train_cam" and tree["metrics"] == {"loss": 0.5}
    dataset = tree["inputs"]["dataset"]
    assert dataset["stage"] == "prepare_data" and dataset["kind"] == "dataset"
    assert Path(dataset["inputs"]["root"]["uri"]).resolve() == toy_root.resolve()
    assert "changed" not in dataset

    result = cli("lineage", work / "artifacts" / "cam_model")
    assert result.code == 0
    assert "cam_model <- train_cam" in result.out and "dataset <- prepare_data" in result.out
    assert "[dataset root]" in result.out and "images=22" in result.out

    moved = tmp_path / "moved"
    shutil.copytree(work / "artifacts", moved / "artifacts")
    result = cli("lineage", moved / "artifacts" / "cam_model", "--json")
    assert json.loads(result.out)["inputs"]["dataset"]["params_digest"] == dataset["params_digest"]

    # The same stage on the same root and params again writes the same bytes (when and how long
    # it ran are in run.json, outside the manifest): downstream sees the artifact it used.
    manifest = work / "artifacts" / "dataset" / MANIFEST
    before = manifest.read_bytes()
    run_stage("prepare_data", {"root": str(toy_root)}, work / "artifacts" / "dataset", Params())
    assert manifest.read_bytes() == before
    again = lineage(work / "artifacts" / "cam_model")["inputs"]["dataset"]
    assert "changed" not in again and again["run"]["duration_s"] > 0

    # Re-running the upstream stage is visible downstream: the manifest digest no longer matches.
    other = Params.model_validate({"dataset": {"verify": False}})
    run_stage("prepare_data", {"root": str(toy_root)}, work / "artifacts" / "dataset", other)
    assert lineage(work / "artifacts" / "cam_model")["inputs"]["dataset"]["changed"] is True
    assert "CHANGED" in cli("lineage", work / "artifacts" / "cam_model").out


def test_lineage_of_an_incomplete_artifact_is_exit_2(cli, tmp_path):
    (tmp_path / "x").mkdir()
    result = cli("lineage", tmp_path / "x")
    assert result.code == 2 and "no manifest.json" in result.err


def test_lineage_survives_a_cycle_and_reads_each_manifest_once(cli, tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    for art in (a, b):
        art.mkdir()
        (art / "x.txt").write_text(art.name)
    seal(a, "cams", "extract_seeds", {})
    seal(b, "cams", "extract_seeds", {"cams": a})
    manifest = json.loads((a / MANIFEST).read_text())  # a now claims b as its input: a cycle
    manifest["inputs"] = {"cams": {"uri": "../b", "kind": "cams", "manifest_digest": None}}
    (a / MANIFEST).write_text(json.dumps(manifest))
    result = cli("lineage", b)
    assert result.code == 0 and "a cycle" in result.out

    chain = [tmp_path / "level0"]  # 18 levels, each reading the one below through two inputs
    chain[0].mkdir()
    seal(chain[0], "dataset", "prepare_data", {})
    for i in range(1, 19):
        chain.append(tmp_path / f"level{i}")
        chain[i].mkdir()
        seal(
            chain[i], "cams", "extract_seeds", {"dataset": chain[i - 1], "cam_model": chain[i - 1]}
        )
    reads = []
    real = lineage_module.read_manifest
    monkeypatch.setattr(lineage_module, "read_manifest", lambda uri: reads.append(uri) or real(uri))
    tree = lineage_module.lineage(chain[-1])
    assert len(reads) == 19 and tree["inputs"]["cam_model"]["repeated"]


def test_a_cpu_device_names_its_instruction_set_and_model(monkeypatch):
    """Two AVX512 CPUs of different makers trained different models from one seed: the
    manifest's device must tell them apart, not only the instruction set."""
    capability = torch.backends.cpu.get_cpu_capability()
    assert cpu_model()  # Linux: /proc/cpuinfo's model name
    assert describe(torch.device("cpu")) == f"cpu:{capability} ({cpu_model()})"
    assert describe(torch.device("cpu"), 2).endswith(") x2")
    monkeypatch.setattr("wsss.runtime.cpu_model", lambda: "")
    assert describe(torch.device("cpu")) == f"cpu:{capability}"
