"""The CLI contract, for every entry point: exit 0, or 2 with exactly one `error:` line, or 130 on
Ctrl-C; never a traceback; every input byte-identical afterwards; nothing written outside the
declared outputs. First one test per defect class found by hand, then a harness that generates
hostile variants of each command's paths and params (Hypothesis; profiles below)."""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.helpers import TINY_PARAMS, write_coco, write_voc_and_sbd
from wsss.artifacts.lineage import MAX_DEPTH, lineage
from wsss.artifacts.manifest import MANIFEST
from wsss.artifacts.opening import open_artifact
from wsss.cli import main
from wsss.config.params import Params, load_params, with_smoke
from wsss.launcher import launch
from wsss.runner import run_stage
from wsss.stages import STAGES

# `pytest --hypothesis-profile=thorough` for a longer sweep; the default is make test's.
settings.register_profile(
    "default",
    max_examples=350,  # covers each finite space below whole (command x path: 342 cases)
    deadline=None,
    derandomize=True,  # the same cases on every run: a red CI is a regression, not a dice roll
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _cli(*args: object, entry: Callable[[list[str]], int] = main) -> tuple[int, str]:
    """`wsss ARGS` in-process: (exit code, stderr). An exception escaping is a traceback."""
    err = StringIO()
    with redirect_stderr(err), redirect_stdout(StringIO()):
        try:
            code = entry([str(a) for a in args])
        except SystemExit as exc:  # argparse's own exits
            code = int(exc.code or 0)
    return code, err.getvalue()


def _one_error_line(code: int, err: str) -> bool:
    lines = [line for line in err.splitlines() if not line.startswith("warning:")]
    return code == 2 and len(lines) == 1 and lines[0].startswith("error: ")


# -- one test per class --------------------------------------------------------------------------


def test_a_file_the_manifest_does_not_list_is_refused(dataset_artifact, tmp_path):
    copy = tmp_path / "dataset"
    shutil.copytree(dataset_artifact, copy)
    (copy / "extra.json").write_text("{}")
    code, err = _cli("run", "train_cam", "--in", f"dataset={copy}", "--out", tmp_path / "o")
    assert _one_error_line(code, err) and "extra.json is not listed in its manifest" in err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RANK": "1"}, "WORLD_SIZE is not set but RANK is"),
        ({"RANK": "abc", "WORLD_SIZE": "2"}, "RANK: expected a whole number"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "expected 0 <= RANK < WORLD_SIZE"),
        ({"RANK": "1", "WORLD_SIZE": "2"}, "but LOCAL_RANK is not set"),
    ],
)
def test_launcher_variables_outside_torchrun_are_refused(
    toy_root, tmp_path, monkeypatch, env, message
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "ds"
    code, err = _cli("run", "prepare_data", "--in", f"root={toy_root}", "--out", out)
    assert _one_error_line(code, err) and message in err, err
    assert not out.exists() and not any(p.name.startswith(".ds") for p in tmp_path.iterdir())
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")  # a lone process, as some launchers describe it
    assert launch().is_main and launch().world_size == 1


def test_params_are_plain_yaml_and_bounded(toy_root, tmp_path):
    out = tmp_path / "ds"
    for text, message in [
        ("dataset:\n  splits: !!set {train, val}\n", "dataset.splits: a set"),
        ("extract_seeds:\n  sweep: [0, 1, 1.0e-300]\n", "more than 1000 thresholds"),
        ("train_cam:\n  long_side: [8, 1000000]\n", "train_cam.long_side.1"),
        ("train_irn:\n  scale: [100000, 100000]\n", "train_irn.scale.0"),
        ("train_deeplab:\n  toy_width: 1000000\n", "train_deeplab.toy_width"),
        ("runtime:\n  num_workers: 100000\n", "runtime.num_workers"),
    ]:
        params = tmp_path / "p.yaml"
        params.write_text(text)
        code, err = _cli(
            "run", "prepare_data", "--in", f"root={toy_root}", "--out", out, "--params", params
        )
        assert code == 2 and err.startswith("error: ") and message in err, (text, err)
        assert not out.exists()


def test_side_outputs_never_overwrite_what_is_read(dataset_artifact, toy_root, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("runtime:\n  seed: 0\n")
    before = _tree(dataset_artifact) | _tree(tmp_path)
    ds = f"dataset={dataset_artifact}"
    for args in [
        (
            "run",
            "evaluate",
            "--in",
            ds,
            "--in",
            f"seg_model={tmp_path}",
            "--out",
            tmp_path / "e",
            "--metrics",
            dataset_artifact / "stats.json",
        ),
        (
            "run",
            "prepare_data",
            "--in",
            f"root={toy_root}",
            "--out",
            tmp_path / "d",
            "--metrics",
            params,
            "--params",
            params,
        ),
        (
            "run",
            "prepare_data",
            "--in",
            f"root={toy_root}",
            "--out",
            tmp_path / "d",
            "--plots",
            toy_root / "ImageSets",
        ),
    ]:
        code, err = _cli(*args)
        assert _one_error_line(code, err) and "which this command reads" in err, (args, err)
    assert _tree(dataset_artifact) | _tree(tmp_path) == before


def test_write_errors_after_the_stage_are_one_line(toy_root, tmp_path):
    out = tmp_path / "ds"
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("x")
    for metrics in (tmp_path / "a_dir", tmp_path / "a_file" / "m.json"):
        code, err = _cli(
            "run", "prepare_data", "--in", f"root={toy_root}", "--out", out, "--metrics", metrics
        )
        assert _one_error_line(code, err), err
        assert not list(tmp_path.glob("**/.*.tmp-*"))  # no temp file left beside it


def test_params_that_never_end_and_names_with_control_characters(toy_root, tmp_path):
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (2 << 20))
    for params, message in [("/dev/zero", "not a regular file"), (huge, "not a params file")]:
        code, err = _cli(
            "run",
            "prepare_data",
            "--in",
            f"root={toy_root}",
            "--out",
            tmp_path / "ds",
            "--params",
            params,
        )
        assert _one_error_line(code, err) and message in err, err
    code, err = _cli("run", "prepare_data", "--in", f"root={toy_root}", "--out", f"{tmp_path}/d\nx")
    assert _one_error_line(code, err) and "control character" in err
    assert not list(tmp_path.glob("d*"))


def test_score_with_a_list_that_is_not_utf8(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "list.txt").write_bytes(b"\xff\xfe2007_000032\n")
    code, err = _cli(
        "score", "--pred", tmp_path / "p", "--gt", tmp_path / "p", "--list", tmp_path / "list.txt"
    )
    assert _one_error_line(code, err) and "not UTF-8" in err


def test_lineage_of_a_very_deep_chain_ends_in_a_line(dataset_artifact, tmp_path):
    """A chain of MAX_DEPTH + 50 artifacts (each names the previous as its input)."""
    previous = dataset_artifact
    raw = json.loads((dataset_artifact / MANIFEST).read_text())
    for i in range(MAX_DEPTH + 50):
        link = tmp_path / f"a{i}"
        link.mkdir()
        manifest = raw | {
            "inputs": {
                "dataset": {
                    "uri": os.path.relpath(previous, link),
                    "kind": "dataset",
                    "manifest_digest": None,
                }
            },
            "files": {},
        }
        (link / MANIFEST).write_text(json.dumps(manifest))
        previous = link
    tree = lineage(previous)
    depth = 0
    while "inputs" in tree:
        tree, depth = tree["inputs"]["dataset"], depth + 1
    assert depth == MAX_DEPTH and "levels deep" in tree["error"]
    code, err = _cli("lineage", previous, "--json")
    assert code == 0, err


def test_ctrl_c_ends_with_one_line_and_130(toy_root, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(TINY_PARAMS | {"train_cam": TINY_PARAMS["train_cam"] | {"epochs": 10_000}})
    )
    ds = tmp_path / "ds"
    assert _cli("run", "prepare_data", "--in", f"root={toy_root}", "--out", ds)[0] == 0
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wsss.cli",
            "run",
            "train_cam",
            "--in",
            f"dataset={ds}",
            "--out",
            tmp_path / "cam",
            "--params",
            params,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # the first progress line: training has started
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert "Traceback" not in err and not (tmp_path / "cam").exists()


CLUSTER_OPTIONS = [
    *(
        ["submit", "--host", host]
        for host in (
            "http://[::1",
            "http://127.0.0.1:abc",
            "http://127.0.0.1:99999",
            "ftp://127.0.0.1",
            "127.0.0.1:9",
            "http://",
            "",
            "http://127.0.0.1:0",
        )
    ),
    *(["compile", "--out", "p.yaml", "--cache-size", size] for size in ("", "-1", "64GB", "1e9")),
]


@pytest.mark.parametrize("argv", CLUSTER_OPTIONS, ids=repr)
def test_a_hostile_cluster_option_is_one_line(argv, tmp_path, monkeypatch):
    """wsss-pipeline's --host and --cache-size (loopback or unparsable hosts only: nothing is
    sent to another machine)."""
    from pipelines.cli import main as pipeline_main

    monkeypatch.chdir(tmp_path)
    params = Path(__file__).parents[1] / "params.yaml"
    code, err = _cli(*argv, "--params", params, "--allow-toy", entry=pipeline_main)
    assert _one_error_line(code, err), (argv, code, err)
    assert list(tmp_path.iterdir()) == []


# -- the harness ---------------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, str]:
    """Every entry under ROOT (not following symlinks) -> a digest of what it is."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                found[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[str(path)] = "dir"
    return found


@dataclass(frozen=True)
class Workspace:
    """A scratch directory with a ToyVOC root, its dataset artifact, a params file, a COCO
    instances JSON and a VOC 2012 root with SBD beside it."""

    base: Path
    root: Path
    dataset: Path
    params: Path

    @property
    def art(self) -> Path:
        return self.dataset.parent

    @property
    def coco(self) -> Path:
        return self.base / "coco" / "annotations" / "instances_train2014.json"

    @property
    def voc(self) -> Path:
        return self.base / "VOC2012"

    @property
    def sbd(self) -> Path:
        return self.base / "sbd"

    @property
    def masks(self) -> Path:
        return self.root / "SegmentationClassAug"

    @property
    def split_list(self) -> Path:
        return self.root / "ImageSets" / "Segmentation" / "train.txt"


@dataclass(frozen=True)
class Command:
    """One CLI command: its arguments with PATH as the path under attack (an output, or for a
    reading command what it reads), what else it reads, and the PATH with which it must work."""

    name: str
    args: Callable[[Workspace, Path], list[object]]
    reads: Callable[[Workspace], tuple[Path, ...]]
    sound: Callable[[Workspace], Path] = lambda w: w.base / "fresh"
    entry: str = "wsss"
    refuses: frozenset[str] = frozenset()  # damage it must refuse (exit 2) when all else is sound


def _root_and_params(w: Workspace) -> tuple[Path, ...]:
    return w.root, w.params


def _prepare(w: Workspace, *more: object) -> list[object]:
    return ["run", "prepare_data", "--in", f"root={w.root}", "--params", w.params, *more]


# Every stage's artifact, made once per module by a tiny run of the whole pipeline
PIPELINE = {
    "dataset": ("prepare_data", {}),
    "cam_model": ("train_cam", {"dataset": "dataset"}),
    "cams": ("extract_seeds", {"dataset": "dataset", "cam_model": "cam_model"}),
    "irn_model": ("train_irn", {"dataset": "dataset", "cams": "cams"}),
    "pseudo_masks": (
        "export_masks",
        {"dataset": "dataset", "cams": "cams", "irn_model": "irn_model"},
    ),
    "seg_model": ("train_deeplab", {"dataset": "dataset", "pseudo_masks": "pseudo_masks"}),
}


def _stage(stage: str, inputs: dict[str, str]) -> Command:
    """`wsss run STAGE` on the template's artifacts, its --out under attack."""

    def args(w: Workspace, out: Path) -> list[object]:
        ins = [a for n, kind in inputs.items() for a in ("--in", f"{n}={w.art / kind}")]
        return ["run", stage, *ins, "--out", out, "--params", w.params]

    return Command(
        stage,
        args,
        lambda w: (*(w.art / k for k in inputs.values()), w.params),
        refuses=frozenset(PARAMS_DAMAGE | ARTIFACT_DAMAGE),
    )


PARAMS_DAMAGE = {"params: binary junk", "params: cut in half"}
ROOT_DAMAGE = {"root: an image cut in half", "root: a split list not UTF-8", "root: an RGB mask"}
ARTIFACT_DAMAGE = {
    "manifest: cut in half",
    "artifact: a listed file changed",
    "artifact: an unlisted file",
}
PREPARE_REFUSES = frozenset(PARAMS_DAMAGE | ROOT_DAMAGE)

COMMANDS = [
    Command(
        "prepare_data",
        lambda w, o: _prepare(w, "--out", o),
        _root_and_params,
        refuses=PREPARE_REFUSES,
    ),
    Command(
        "metrics",
        lambda w, o: _prepare(w, "--out", w.base / "side", "--metrics", o),
        _root_and_params,
        refuses=PREPARE_REFUSES,
    ),
    Command(
        "plots",
        lambda w, o: _prepare(w, "--out", w.base / "side", "--plots", o),
        _root_and_params,
        refuses=PREPARE_REFUSES,
    ),
    Command(
        "train_cam",
        lambda w, o: [
            "run",
            "train_cam",
            "--in",
            f"dataset={w.dataset}",
            "--out",
            o,
            "--params",
            w.params,
        ],
        lambda w: (w.dataset, w.params),
        refuses=frozenset(PARAMS_DAMAGE | ARTIFACT_DAMAGE | {"root: an image cut in half"}),
    ),
    *(_stage(stage, inputs) for stage, inputs in list(PIPELINE.values())[2:]),
    _stage("evaluate", {"dataset": "dataset", "seg_model": "seg_model"}),
    Command(
        "predict",
        lambda w, o: [
            "predict",
            "--model",
            w.art / "seg_model",
            "--images",
            w.root / "JPEGImages",
            "--out",
            o,
            "--params",
            w.params,
        ],
        lambda w: (w.art / "seg_model", w.root / "JPEGImages", w.params),
        refuses=frozenset(PARAMS_DAMAGE),
    ),
    Command(
        "toy",
        lambda w, o: ["data", "toy", "--out", o, "--train", 2, "--val", 1, "--size", 32],
        lambda w: (),
    ),
    Command(
        "coco-masks",
        lambda w, o: ["data", "coco-masks", "--instances", w.coco, "--out", o],
        lambda w: (w.coco,),
        refuses=frozenset({"coco: not JSON"}),
    ),
    Command(
        "voc-aug",
        lambda w, o: ["data", "voc-aug", "--sbd", w.sbd, "--root", o],
        lambda w: (w.sbd,),
        sound=lambda w: w.voc,
        refuses=frozenset({"sbd: a .mat cut in half"}),
    ),
    Command(
        "weights",
        lambda w, o: ["weights", o],
        lambda w: (w.params,),
        sound=lambda w: w.params,
        refuses=frozenset(PARAMS_DAMAGE),
    ),
    Command(
        "lineage",
        lambda w, o: ["lineage", o, "--json"],
        lambda w: (w.dataset,),
        sound=lambda w: w.dataset,
        refuses=frozenset(ARTIFACT_DAMAGE),
    ),
    Command(
        "smoke",
        lambda w, o: _prepare(w, "--out", o, "--smoke", 2),
        _root_and_params,
        refuses=PREPARE_REFUSES,
    ),
    Command(
        "estimate",
        lambda w, o: ["estimate", o, "--json"],
        lambda w: (w.art / "smoke",),
        sound=lambda w: w.art / "smoke",
    ),
    Command(
        "score",
        lambda w, o: ["score", "--pred", w.masks, "--gt", w.masks, "--list", o],
        lambda w: (w.root,),
        sound=lambda w: w.split_list,
        refuses=frozenset({"root: a split list not UTF-8", "root: an RGB mask"}),
    ),
    Command(
        "compile",
        lambda w, o: ["compile", "--out", o, "--params", w.params, "--allow-toy"],
        lambda w: (w.params,),
        sound=lambda w: w.base / "fresh" / "deep" / "x.yaml",
        entry="wsss-pipeline",
        refuses=frozenset(PARAMS_DAMAGE),
    ),
]


def _cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _first(directory: Path, pattern: str) -> Path:
    return sorted(directory.glob(pattern))[0]


# Damage to one input, the way a faulty disk, a careless edit or a bad copy would do it
DAMAGE: dict[str, Callable[[Workspace], object]] = {
    "none": lambda w: None,
    "params: binary junk": lambda w: w.params.write_bytes(b"\x00\xff: [\x80"),
    "params: cut in half": lambda w: _cut_in_half(w.params),
    "manifest: cut in half": lambda w: (w.dataset / MANIFEST).write_bytes(
        (w.dataset / MANIFEST).read_bytes()[:200]
    ),
    "artifact: a listed file changed": lambda w: (w.dataset / "labels.json").write_bytes(
        (w.dataset / "labels.json").read_bytes() + b" "
    ),
    "artifact: an unlisted file": lambda w: (w.dataset / "extra.bin").write_bytes(b"\x00" * 10),
    "root: an image cut in half": lambda w: _cut_in_half(_first(w.root / "JPEGImages", "*.jpg")),
    "root: a split list not UTF-8": lambda w: w.split_list.write_bytes(b"\xff\xfe\x00"),
    "root: an RGB mask": lambda w: Image.new("RGB", (48, 48)).save(_first(w.masks, "*.png")),
    "coco: not JSON": lambda w: w.coco.write_bytes(b'{"images": ['),
    "sbd: a .mat cut in half": lambda w: _cut_in_half(  # one that only SBD has: it is read
        w.sbd / "cls" / f"{(w.sbd / 'train.txt').read_text().split()[-1]}.mat"
    ),
}
CORRUPTIONS = list(DAMAGE)
ENVIRONMENTS = [
    {},
    {"RANK": "1"},
    {"RANK": "abc", "WORLD_SIZE": "2"},
    {"RANK": "1", "WORLD_SIZE": "2"},
    {"S3_ENDPOINT_URL": "http://[::1"},
    {"WSSS_CACHE_DIR": "/dev/null/cache"},
]


def _hostile_paths(w: Workspace) -> list[Path]:
    """Paths a careless user or a faulty machine hands an output option."""
    a_file = w.base / "a_file"
    return [
        w.dataset,
        w.dataset / "labels.json",
        w.dataset / "sub",
        w.dataset.parent,
        w.root,
        w.root / "ImageSets" / "Segmentation" / "train.txt",
        w.params,
        w.base / "link_to_ds",
        w.base / "loop_a",
        a_file,
        a_file / "under",
        w.base / "foreign",
        w.base / "fresh",
        w.base / "fresh" / "deep" / "x.yaml",
        w.base / "fresh" / ".." / "fresh2",
        w.base / "dangling",
        w.base / "x.json",
        Path(""),
    ]


@pytest.fixture(scope="module")
def template(tmp_path_factory, toy_root) -> Workspace:
    base = tmp_path_factory.mktemp("contract")
    w = Workspace(base, base / "toyvoc", base / "art" / "dataset", base / "params.yaml")
    shutil.copytree(toy_root, w.root)
    w.params.write_text(yaml.safe_dump(TINY_PARAMS))
    params = load_params(w.params)
    for kind, (stage, inputs) in PIPELINE.items():
        uris = {n: str(w.art / k) for n, k in inputs.items()} or {"root": str(w.root)}
        run_stage(stage, uris, w.art / kind, params)
    run_stage("prepare_data", {"root": str(w.root)}, w.art / "smoke", with_smoke(params, 2))
    return w


def _workspace(template: Workspace) -> Workspace:
    """A copy of TEMPLATE's root and artifacts (their relative URIs still hold) beside the
    hostile entries the paths point at."""
    base = Path(tempfile.mkdtemp(prefix="contract-"))
    w = Workspace(base, base / "toyvoc", base / "art" / "dataset", base / "params.yaml")
    shutil.copytree(template.root, w.root, symlinks=True)
    shutil.copytree(template.art, w.art, symlinks=True)
    shutil.copy(template.params, w.params)
    write_coco(base / "coco")
    write_voc_and_sbd(template.root, base)
    (base / "link_to_ds").symlink_to(w.dataset)
    (base / "loop_a").symlink_to(base / "loop_b")
    (base / "loop_b").symlink_to(base / "loop_a")
    (base / "a_file").write_text("a file")
    (base / "foreign").mkdir()
    (base / "foreign" / "notes.txt").write_text("somebody's")
    (base / "dangling").symlink_to(base / "nowhere" / "x")
    return w


def _allowed(changed: str, outputs: list[Path]) -> bool:
    """Whether CHANGED lies under an output, is a directory above one (made for it), or is one
    of wsss's own siblings of an output (`.<name>.lock`, staging, temp files)."""
    path = Path(changed)
    for out in outputs:
        if path == out or out in path.parents or path in out.parents:
            return True
        sibling = next((p for p in (path, *path.parents) if p.parent == out.parent), None)
        if sibling is not None and sibling.name.startswith(f".{out.name}."):
            return True
    return False


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path


HARNESS = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
PATHS = range(len(_hostile_paths(Workspace(Path("w"), Path("r"), Path("a/d"), Path("p")))))


@pytest.mark.slow  # the three sweeps take minutes: make test-all (CI) runs them
@HARNESS
@given(command=st.sampled_from(COMMANDS), index=st.sampled_from(PATHS))
def test_every_command_keeps_the_contract_on_every_hostile_path(template, command, index):
    """Command x path, undamaged and in a clean environment: a finite space the default
    profile covers whole."""
    _check_case(template, command, lambda w: _hostile_paths(w)[index], "none", {})


@HARNESS
@given(data=st.data())
def test_every_command_refuses_the_damaged_inputs_it_reads(template, data):
    """Command x each damage to what it reads, on an otherwise sound command line (covered
    whole): damage it reads is refused, never used silently."""
    command = data.draw(st.sampled_from([c for c in COMMANDS if c.refuses]), label="command")
    damage = data.draw(st.sampled_from(sorted(command.refuses)), label="damage")
    _check_case(template, command, command.sound, damage, {})


@pytest.mark.slow
@HARNESS
@given(command=st.sampled_from(COMMANDS), env=st.sampled_from(ENVIRONMENTS[1:]))
def test_every_command_keeps_the_contract_in_a_hostile_environment(template, command, env):
    """Command x launcher/endpoint/cache environment on a sound command line (covered whole)."""
    _check_case(template, command, command.sound, "none", env)


@pytest.mark.slow
@settings(HARNESS, max_examples=max(settings().max_examples // 6, 10))
@given(
    command=st.sampled_from(COMMANDS),
    index=st.sampled_from(PATHS),
    damage=st.sampled_from(CORRUPTIONS),
    env=st.sampled_from(ENVIRONMENTS),
)
def test_every_command_keeps_the_contract_on_hostile_combinations(
    template, command, index, damage, env
):
    """All four axes drawn together (a sample: `thorough` draws ten times as many)."""
    _check_case(template, command, lambda w: _hostile_paths(w)[index], damage, env)


def _check_case(
    template: Workspace,
    command: Command,
    path_of: Callable[[Workspace], Path],
    damage: str,
    env: dict[str, str],
) -> None:
    """Run one case in a fresh workspace and assert the contract."""
    from pipelines.cli import main as pipeline_main

    w = _workspace(template)
    cwd, saved = os.getcwd(), dict(os.environ)
    os.chdir(w.base)  # a relative or empty path lands in the scratch directory
    try:
        out = path_of(w)
        DAMAGE[damage](w)
        os.environ.update(env)
        argv = command.args(w, out)
        before = _tree(w.base)
        entry = pipeline_main if command.entry == "wsss-pipeline" else main
        code, err = _cli(*argv, entry=entry)
        after = _tree(w.base)
        assert code == 0 or _one_error_line(code, err), (argv, damage, env, code, err)
        event(f"{command.name}: exit {code}")
        if out == command.sound(w) and not env:
            if damage == "none":  # the command line itself is sound: the harness tests it
                assert code == 0, (argv, err)
            elif damage in command.refuses:  # damage it reads is never used silently
                assert code == 2, (argv, damage, "accepted")
        for read in command.reads(w):
            for path, digest in before.items():
                if path == str(read) or path.startswith(f"{read}/"):
                    assert after.get(path) == digest, f"{argv}: input {path} changed"
        named = Path(os.path.abspath(out))
        outputs = [named, _real(named), w.base / "side"]
        changed = set(after) - set(before) | {p for p in before if after.get(p) != before[p]}
        locks = {str(r.with_name(f".{r.name}.lock")) for r in command.reads(w)}  # a reader's
        for path in changed - locks:
            assert _allowed(path, outputs), f"{argv}: wrote {path} outside its outputs"
        if code == 0 and command.name in STAGES:
            artifact = open_artifact(_real(named))
            assert artifact.manifest.stage == command.name  # complete, not partial
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.chdir(cwd)
        shutil.rmtree(w.base, ignore_errors=True)


def _fields(section: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(section, dict):
        return [f for k, v in section.items() for f in _fields(v, (*prefix, k))]
    return [prefix]


PARAM_FIELDS = _fields(Params().model_dump(mode="json"))
HOSTILE_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.integers(-(10**9), 10**9), st.floats(), st.text(max_size=5)), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=st.sampled_from(PARAM_FIELDS), value=HOSTILE_VALUES)
def test_every_params_field_takes_a_hostile_value_with_one_line_or_runs(
    toy_root, tmp_path_factory, field, value
):
    """Any value in any params field: refused with one line naming the field, or accepted; the
    values that validate are what the field bounds admit (prepare_data runs on them)."""
    raw: dict = {}
    node = raw
    for key in field[:-1]:
        node = node.setdefault(key, {})
    node[field[-1]] = value
    base = tmp_path_factory.mktemp("params")
    params = base / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    code, err = _cli(
        "run", "prepare_data", "--in", f"root={toy_root}", "--out", base / "ds", "--params", params
    )
    assert code == 0 or (code == 2 and err.startswith("error: ")), (field, value, err)
    if code == 2:
        assert all(line.startswith("error: ") for line in err.splitlines()), err
        assert not (base / "ds").exists()


@pytest.fixture(params=["full", "read-only"])
def small_disk(request, tmp_path):
    """A 1 MiB tmpfs, filled up or mounted read-only (mounting needs root: CI and the image
    tests run as root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    options = "size=1m" + (",ro" if request.param == "read-only" else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", disk], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()[:80]})")
    try:
        if request.param == "full":
            with contextlib.suppress(OSError), open(disk / "filler", "wb") as fh:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
        yield disk
    finally:
        subprocess.run(["umount", disk], check=True)


def test_a_full_or_read_only_disk_is_one_line(small_disk, toy_root, tmp_path):
    from pipelines.cli import main as pipeline_main

    instances = write_coco(tmp_path / "coco")
    disk = small_disk
    cases = [
        (main, ["run", "prepare_data", "--in", f"root={toy_root}", "--out", disk / "ds"], "ds"),
        (
            main,
            [
                "run",
                "prepare_data",
                "--in",
                f"root={toy_root}",
                "--out",
                tmp_path / "ds",
                "--metrics",
                disk / "m.json",
            ],
            "m.json",
        ),
        (main, ["data", "toy", "--out", disk / "toy", "--train", 2, "--val", 1], "toy"),
        (main, ["data", "coco-masks", "--instances", instances, "--out", disk / "coco"], "coco"),
        (pipeline_main, ["compile", "--out", disk / "p.yaml", "--allow-toy"], "p.yaml"),
    ]
    for entry, argv, name in cases:
        before = _tree(disk)
        code, err = _cli(*argv, entry=entry)
        assert _one_error_line(code, err), (argv, code, err)
        assert not list(disk.glob(f"{name}/**/*.png")), f"{argv}: partial masks"
        if name != "coco":  # the COCO root exists before its masks are drawn; it may stay empty
            assert not (disk / name).exists(), f"{argv}: a partial {name}"
        for path in set(_tree(disk)) - set(before):  # only wsss's own siblings, and folders
            top = Path(path).relative_to(disk).parts[0]
            assert top.startswith(f".{name}.") or Path(path).is_dir(), path


@pytest.mark.slow
def test_a_full_cache_under_an_s3_download_is_a_disk_error(
    s3, small_disk, toy_root, tmp_path, monkeypatch
):
    monkeypatch.setenv("WSSS_CACHE_DIR", str(small_disk / "cache"))
    root = s3.upload_tree(toy_root, "toy")
    code, err = _cli("run", "prepare_data", "--in", f"root={root}", "--out", tmp_path / "ds")
    assert _one_error_line(code, err), err
    assert "S3" not in err and str(small_disk) in err, err
