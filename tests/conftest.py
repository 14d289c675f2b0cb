"""Shared fixtures: a tiny ToyVOC, its `dataset` artifact, and a CLI runner."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from wsss.cli import main
from wsss.data.toy import ToyConfig, generate
from wsss.params import Params
from wsss.stages import run_stage

TINY = ToyConfig(seed=3, train=16, val=6, size=48)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run `wsss ARGS...` in-process; returns exit code, stdout and stderr."""

    def run(*args: str | Path) -> CliResult:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own exits
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    """A tiny ToyVOC, generated once; tests that modify it take `toy_copy`."""
    root = tmp_path_factory.mktemp("toy") / "toyvoc"
    generate(root, TINY)
    return root


@pytest.fixture
def toy_copy(toy_root, tmp_path) -> Path:
    root = tmp_path / "toyvoc"
    shutil.copytree(toy_root, root)
    return root


@pytest.fixture(scope="session")
def dataset_artifact(toy_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("artifacts") / "dataset"
    run_stage("prepare_data", {"root": str(toy_root)}, out, Params())
    return out
