"""Writing an artifact directory so that nothing is lost: stage, then swap.

A stage writes into a staging sibling of its output, `.<name>.staging` (where a training stage
also keeps its checkpoints, so a rerun resumes there; nothing else survives into a rerun). Only
a finished artifact, its manifest written, replaces the output, by two renames; an interrupted
swap is completed or undone by the next run. Until then an existing artifact at the output
stays complete. An exclusive lock (`.<name>.lock`) keeps two runs off one output, and before
anything is touched the output is checked: not empty, not an input or inside or above one,
and either absent, an empty directory or a wsss artifact (a manifest that parses).
"""

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wsss.artifacts.manifest import MANIFEST, is_wsss_manifest
from wsss.errors import WsssError

# A training stage's checkpoints: the files a rerun keeps of the last run's staging directory.
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"  # select_on_val: the best epoch so far (survives a resume)
RESUME_FILES = (CHECKPOINT, BEST)


def staging_of(out: Path) -> Path:
    return out.with_name(f".{out.name}.staging")


def _old_of(out: Path) -> Path:
    return out.with_name(f".{out.name}.old")


def check_out(out: str | Path, inputs: dict[str, Path]) -> Path:
    """The real directory OUT names (symlinks resolved), if a stage may write it; INPUTS are
    the local directories the stage reads. Touches nothing."""
    if not str(out).strip():
        raise WsssError("--out: empty; expected a directory or an s3:// URI")
    target = Path(out).resolve()
    if target.exists() and not target.is_dir():
        raise WsssError(f"{out}: exists and is not a directory")
    for name, path in inputs.items():
        source = path.resolve()
        if target == source or source in target.parents or target in source.parents:
            raise WsssError(
                f"{out}: the output would overlap the input '{name}' ({path}); "
                "choose a directory outside it"
            )
    if target.is_dir() and any(target.iterdir()):
        manifest = target / MANIFEST
        if not manifest.is_file():
            raise WsssError(
                f"{out}: exists, is not empty and is not an artifact; refusing to use it"
            )
        if not is_wsss_manifest(manifest.read_bytes()):  # an older wsss's artifact is replaced
            raise WsssError(f"{manifest}: not a wsss manifest; refusing to replace {out}")
    return target


@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold OUT's lock for the block; a second run on OUT is a one-line error."""
    lock = out.with_name(f".{out.name}.lock")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        raise WsssError(f"{out}: cannot write here ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WsssError(f"{out}: another run is writing it (lock {lock})") from None
        yield
    finally:
        os.close(fd)


def begin(out: Path, keep: tuple[str, ...] = ()) -> Path:
    """The staging directory of OUT, ready for a stage: empty but for the files KEEP names (a
    training stage's checkpoints, to resume), so nothing of an earlier run's other files can
    end up in the new artifact. An interrupted swap of an earlier run is settled first."""
    old = _old_of(out)
    if old.exists():
        if out.exists():
            shutil.rmtree(old)
        else:
            old.rename(out)  # the swap stopped halfway: the old artifact comes back
    staging = staging_of(out)
    staging.mkdir(parents=True, exist_ok=True)
    for entry in staging.iterdir():
        if entry.name in keep and entry.is_file():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return staging


def swap(staging: Path, out: Path) -> None:
    """Make the finished STAGING directory OUT, replacing what was there."""
    old = _old_of(out)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    if old.exists():
        shutil.rmtree(old)
