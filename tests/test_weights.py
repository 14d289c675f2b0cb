"""`wsss weights`: every weights file the presets name is known with its source, and a missing or
wrong file is one line that says where the right one comes from."""

from pathlib import Path

import yaml

from wsss.pretrained import KNOWN

REPO = Path(__file__).resolve().parents[1]
LITE0 = REPO / "pretrained" / "efficientnet-lite0-57934424.pth"  # make install puts it there


def _params(path: Path, cam: str | None, irn: str | None = None) -> Path:
    sections = {"train_cam": {"weights": cam}, "train_irn": {"weights": irn}}
    path.write_text(yaml.safe_dump(sections))
    return path


def test_every_file_a_preset_names_is_known_with_its_source(cli):
    listed = cli("weights")
    assert listed.code == 0
    for preset in sorted((REPO / "params").glob("*.yaml")):
        for section in yaml.safe_load(preset.read_text()).values():
            if isinstance(section, dict) and section.get("weights"):
                name = Path(section["weights"]).name
                assert name in KNOWN, f"{preset.name}: {name} has no source on record"
                assert f"{name}: " in listed.out and KNOWN[name].source in listed.out
    guide = (REPO / "docs" / "datasets.md").read_text()
    for name, known in KNOWN.items():  # the guide's table is the list's
        assert f"`{name}`" in guide and known.source.split()[0].strip("`") in guide, name


def test_present_files_are_checked_and_wrong_ones_are_one_line_each(cli, tmp_path):
    good = cli("weights", _params(tmp_path / "ok.yaml", str(LITE0), "s3://bucket/r50.pth"))
    assert good.code == 0, good.err
    assert f"{LITE0}: sha256 {KNOWN[LITE0.name].sha256} (the published file)" in good.out
    assert "s3://bucket/r50.pth: on object storage, not checked here" in good.out

    partial = tmp_path / "resnet50-19c8e357.pth"
    partial.write_bytes(b"half a download")
    own = tmp_path / "mine.pth"
    own.write_bytes(b"weights of my own")
    missing = tmp_path / "pretrained" / "resnet101-cd907fc2.pth"
    result = cli(
        "weights",
        _params(tmp_path / "a.yaml", str(partial), str(own)),
        _params(tmp_path / "b.yaml", str(missing)),
    )
    assert result.code == 2
    errors = result.err.splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors), result.err
    assert "not the published file" in errors[0] and KNOWN[partial.name].source in errors[0]
    assert "weights file not found" in errors[1] and KNOWN[missing.name].source in errors[1]
    assert f"{own}: sha256 " in result.out and "not one of wsss's known files" in result.out
