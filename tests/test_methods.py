"""One interface test over every CAM method (as smp's model tester runs over every model): its
params parse and round-trip, one training step moves the network, train_cam and extract_seeds
run on the tiny ToyVOC. `mirror` (tests/toy_method.py) is added with an entry in each registry,
as a new method would be. Resume after a kill, per method: tests/test_cam_stages.py."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers import tiny_cam, tiny_params
from tests.toy_method import Mirror, MirrorParams
from wsss.artifacts.opening import open_artifact
from wsss.config.params import digest, parse_params
from wsss.config.train_cam import METHOD_PARAMS, switch_method
from wsss.errors import WsssError
from wsss.kinds.cam_model import build_cam_model
from wsss.losses.classification import cls_loss
from wsss.methods.registry import METHODS, build_method

ALL = [*METHODS, "mirror"]
DOCS = Path(__file__).parents[1] / "docs" / "method.md"


@pytest.fixture(autouse=True)
def mirror(monkeypatch):
    monkeypatch.setitem(METHODS, "mirror", Mirror)
    monkeypatch.setitem(METHOD_PARAMS, "mirror", MirrorParams)


def test_the_two_registries_name_the_same_methods():
    """A method's code (METHODS) and its torch-free params model (METHOD_PARAMS) agree."""
    assert list(METHODS) == list(METHOD_PARAMS)
    assert all(METHODS[name].params is METHOD_PARAMS[name] for name in METHODS)


def _section(method: str) -> dict:
    return tiny_cam(method) | {"method": method}


def _batch(n: int, size: int, classes: int) -> dict:
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(n, classes)
    labels[torch.arange(n), torch.arange(n) % classes] = 1
    return {
        "image": torch.randn(n, 3, size, size, generator=g),
        "labels": labels,
        "pair_image": torch.randn(n, 3, size, size, generator=g),
        "pair_labels": labels.roll(1, 0),
    }


@pytest.mark.parametrize("method", ALL)
def test_params_are_the_methods_own_and_round_trip(method):
    p = parse_params({"train_cam": _section(method)}, "p.yaml").train_cam
    assert type(p) is METHODS[method].params and p.method == method
    again = parse_params({"train_cam": p.model_dump(mode="json")}, "p.yaml").train_cam
    assert again == p and digest(again.model_dump()) == digest(p.model_dump())
    other = "fsr" if method != "fsr" else "baseline"
    foreign = sorted(set(METHODS[other].params.model_fields) - set(type(p).model_fields))[0]
    unknown = rf"train_cam\.{foreign}: unknown key for method '{method}'"
    with pytest.raises(WsssError, match=unknown):
        parse_params({"train_cam": _section(method) | {foreign: 1}}, "p.yaml")
    switched = switch_method(p, other)
    assert switched.method == other and switched.epochs == p.epochs and switched.crop == p.crop
    # a field of the same name but another meaning is not carried over (FSR's AdamW lr)
    assert switch_method(parse_params({}, "p").train_cam, "fsr").lr == 1e-3


def test_an_unknown_method_names_the_methods():
    with pytest.raises(WsssError, match=r"train_cam\.method: Input should be 'baseline', 'ktse'"):
        parse_params({"train_cam": {"method": "nope"}}, "p.yaml")


@pytest.mark.parametrize("method", ALL)
def test_one_training_step_moves_the_network(method):
    torch.manual_seed(0)
    p = parse_params({"train_cam": _section(method)}, "p.yaml").train_cam  # warm-up: 1 epoch
    m = build_method(p)
    assert len(m.batch_sizes()) == p.epochs
    model = build_cam_model({"method": method, "num_classes": 3} | m.network_meta()).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = m.optimizer(model)
    assert all("base_lr" in g for g in optimizer.param_groups)
    assert 0 < m.lr_factor(0, 10) <= 1
    total, parts = m.loss(model, _batch(4, 32, 3), epoch=p.epochs - 1)
    assert torch.isfinite(total) and parts["total"] == pytest.approx(float(total.detach()))
    total.backward()
    optimizer.step()
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    out = model.eval()(torch.randn(1, 3, 32, 32))
    assert out.logits.shape == (1, 3) and out.cam.shape[:2] == (1, 3)


@pytest.mark.parametrize("method", ALL)
def test_the_loss_trains_the_logits_cls_map_scores(method):
    """train_cam's cls_map scores the network's forward logits: a method's L_cls (its "cls"
    part) must be the classification loss of those very logits, not of another pooling."""
    p = parse_params({"train_cam": _section(method)}, "p.yaml").train_cam
    m = build_method(p)
    model = build_cam_model({"method": method, "num_classes": 3} | m.network_meta()).train()
    batch = _batch(4, 32, 3)
    torch.manual_seed(0)
    _, parts = m.loss(model, batch, epoch=0)
    torch.manual_seed(0)
    scored = cls_loss(model(batch["image"]).logits.detach(), batch["labels"])
    assert parts["cls"] == pytest.approx(float(scored), rel=1e-5)


@pytest.mark.parametrize("method", ALL)
def test_train_cam_then_extract_seeds(cli, dataset_artifact, method, tmp_path):
    params = tiny_params(tmp_path / "p.yaml", train_cam={"method": method})
    cam = cli(
        "run",
        "train_cam",
        "--in",
        f"dataset={dataset_artifact}",
        "--out",
        tmp_path / "cam_model",
        "--params",
        params,
    )
    assert cam.code == 0, cam.err
    manifest = open_artifact(tmp_path / "cam_model", "cam_model").manifest
    section = parse_params(yaml.safe_load(params.read_text()), str(params)).train_cam
    assert manifest.params["train_cam"] == section.model_dump(mode="json")  # its own fields only
    saved = torch.load(tmp_path / "cam_model" / "model.pt", weights_only=True)
    assert saved["meta"]["method"] == method
    log = [json.loads(line) for line in (tmp_path / "cam_model" / "train_log.jsonl").open()]
    _, parts = build_method(section).loss(
        build_cam_model(saved["meta"]), _batch(4, 32, 20), epoch=10**6
    )
    assert set(parts) <= set(log[-1])  # every part of the loss is logged
    seeds = cli(
        "run",
        "extract_seeds",
        "--in",
        f"dataset={dataset_artifact}",
        "--in",
        f"cam_model={tmp_path / 'cam_model'}",
        "--out",
        tmp_path / "cams",
        "--params",
        params,
    )
    assert seeds.code == 0, seeds.err
    assert 0 <= open_artifact(tmp_path / "cams").manifest.metrics["seed_miou"] <= 1


def test_the_voc_sections_in_the_docs_parse():
    """docs/method.md's FSR and destruction sections for VOC are valid train_cam sections."""
    blocks = DOCS.read_text().split("```yaml\n")[1:]
    methods = {}
    for block in blocks:
        section = yaml.safe_load(block.split("```")[0])["train_cam"]
        methods[section["method"]] = parse_params({"train_cam": section}, "docs").train_cam
    assert set(methods) == {"fsr", "destruction"}
    assert methods["fsr"].encoder == "vit_b16" and methods["destruction"].backbone == "resnet38d"
