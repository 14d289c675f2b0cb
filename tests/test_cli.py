"""The installed console script: exit codes and one-line errors, as a user's shell sees them."""

import subprocess
import sys
from pathlib import Path

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
