"""The installed console script: exit codes and one-line errors, as a user's shell sees them."""

import subprocess
import sys
from pathlib import Path

import wsss
from wsss.stages import PIPELINE

WSSS = str(Path(sys.executable).parent / "wsss")


def test_help_and_exit_codes(tmp_path):
    assert subprocess.run([WSSS, "--help"], capture_output=True).returncode == 0
    bad = subprocess.run(
        [WSSS, "run", "prepare_data", "--in", f"root={tmp_path / 'nope'}", "--out", tmp_path / "d"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr == f"error: {tmp_path / 'nope'}: dataset root not found\n"
    usage = subprocess.run([WSSS, "run"], capture_output=True, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith("error:")
    assert usage.stderr.count("\n") == 1


def test_version_and_help_a_user_can_read():
    version = subprocess.run([WSSS, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"wsss {wsss.__version__}"
    top = subprocess.run([WSSS, "--help"], capture_output=True, text=True).stdout
    assert "Weakly supervised semantic segmentation" in top and "examples:" in top
    assert "docs/design.md" not in top  # the module's developer note is not the help
    run = subprocess.run([WSSS, "run", "--help"], capture_output=True, text=True).stdout
    for stage in PIPELINE:  # every stage with the --in names it takes
        row = next(line for line in run.splitlines() if line.split()[:1] == [stage.name])
        assert all(f"--in {name}=" in row for name in stage.inputs) and stage.kind in row
    assert not any(line.split()[:1] == ["predict"] for line in run.splitlines())
    toy = subprocess.run([WSSS, "data", "toy", "--help"], capture_output=True, text=True).stdout
    assert "(default: 400)" in toy and "(default: None)" not in run


def test_help_loads_neither_torch_nor_kfp():
    """`--help` and reading params import no ML code (torch, matplotlib) and not kfp."""
    probe = (
        "import sys, contextlib, io\n"
        "from wsss.cli import main as wsss\n"
        "from pipelines.cli import main as pipeline\n"
        "for command in (wsss, pipeline):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        command(['--help'])\n"
        "print(sorted(m for m in ('torch', 'kfp', 'matplotlib') if m in sys.modules))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_every_params_problem_is_reported_at_once(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("train_cam:\n  epochs: 0\n  bogus: 1\nevaluate:\n  scales: x\n")
    bad = subprocess.run(
        [
            WSSS,
            "run",
            "train_cam",
            "--in",
            "dataset=x",
            "--out",
            tmp_path / "o",
            "--params",
            params,
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    lines = bad.stderr.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"error: {params}: ") for line in lines)
    assert [line.split(": ")[2] for line in lines] == [
        "train_cam.epochs",
        "train_cam.bogus",
        "evaluate.scales",
    ]
