"""Writing an artifact directory so that nothing is lost: stage, then swap.

A stage writes into a staging sibling of its output, `.<name>.staging` (where a training stage
also keeps its checkpoints, so a rerun resumes there; nothing else survives into a rerun). Only
a finished artifact, its manifest written, replaces the output, by two renames; an interrupted
swap is completed or undone by the next run. Until then an existing artifact at the output
stays complete. Before anything is touched the output is checked: not empty, not an input or
inside or above one, and either absent, an empty directory or a wsss artifact (a manifest that
parses). The staging, lock and `.old` siblings are wsss's own: one that is a symlink, or not
of the type wsss makes, is refused, never followed.

Readers and writers (DVC's rwlock, with flock): a stage holds a shared lock on each local
input artifact's `.<name>.lock` while it runs, a writer the exclusive one on its output's; a
writer that finds the output being read (or written) is refused, naming the processes.
"""

import errno
import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from wsss.artifacts.manifest import MANIFEST, is_wsss_manifest
from wsss.errors import WsssError
from wsss.safe_paths import real_path

# A training stage's checkpoints: the files a rerun keeps of the last run's staging directory.
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"  # select_on_val: the best epoch so far (survives a resume)
RESUME_FILES = (CHECKPOINT, BEST)


def staging_of(out: Path) -> Path:
    return out.with_name(f".{out.name}.staging")


def _old_of(out: Path) -> Path:
    return out.with_name(f".{out.name}.old")


def lock_of(artifact: Path) -> Path:
    return artifact.with_name(f".{artifact.name}.lock")


def check_out(out: str | Path, inputs: dict[str, Path]) -> Path:
    """The real directory OUT names (symlinks resolved), if a stage may write it; INPUTS are
    the local directories the stage reads. Touches nothing."""
    if not str(out).strip():
        raise WsssError("--out: empty; expected a directory or an s3:// URI")
    target = real_path(out, "--out")
    if target.exists() and not target.is_dir():
        raise WsssError(f"{out}: exists and is not a directory")
    for name, path in inputs.items():
        source = real_path(path, f"--in {name}=")
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


def _own_entry(path: Path, is_dir: bool) -> bool:
    """Whether PATH, one of wsss's siblings of an artifact, exists; refused when it is a symlink
    or not of the type wsss makes there (IS_DIR)."""
    if path.is_symlink() or (path.exists() and path.is_dir() != is_dir):
        kind = "a symlink" if path.is_symlink() else ("a file" if is_dir else "a directory")
        raise WsssError(f"{path}: {kind} where wsss keeps its own entry; remove it and rerun")
    return path.exists()


def _holders(lock: Path) -> str:
    """' (held by pid N: command …)' for the processes holding LOCK, where /proc/locks tells."""
    try:
        inode = lock.stat().st_ino
        rows = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return ""
    pids = []
    for row in rows:
        fields = row.split()
        if len(fields) > 5 and fields[5].rsplit(":", 1)[-1] == str(inode):
            pids.append(fields[4])
    named = []
    for pid in dict.fromkeys(pids):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            cmd = ""
        named.append(f"pid {pid}" + (f": {cmd.strip()[:120]}" if cmd.strip() else ""))
    return f" (held by {'; '.join(named)})" if named else ""


def _open_lock(lock: Path, writer: bool) -> int | None:
    """A descriptor of LOCK, never through a symlink. A reader that cannot create or write it
    (a read-only place, another user's artifacts) opens it read-only, or goes without: then no
    wsss run of this user can write the artifact either."""
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise WsssError(f"{lock}: a symlink where wsss keeps its lock; remove it") from None
        if writer:
            raise WsssError(f"{lock.parent}: cannot write here ({exc.strerror})") from None
    try:
        return os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None


def _flock(fd: int | None, mode: int, lock: Path, busy: str) -> None:
    """Take LOCK (open as FD) in MODE without waiting; held elsewhere: BUSY and the holders."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        raise WsssError(f"{busy}{_holders(lock)}") from None


@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold OUT's lock for the block; a second writer, or a stage reading OUT, makes it a
    one-line error."""
    lock = lock_of(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WsssError(f"{out}: cannot write here ({exc.strerror})") from None
    fd = _open_lock(lock, writer=True)
    try:
        _flock(
            fd, fcntl.LOCK_EX, lock, f"{out}: another run is writing it or a running stage reads it"
        )
        yield
    finally:
        os.close(fd)


@contextmanager
def reading(artifacts: Iterable[Path]) -> Iterator[None]:
    """Hold a shared lock on each local input artifact for the block, so that no wsss run
    replaces one while the stage reads it; one being written is a one-line error."""
    with ExitStack() as stack:
        for artifact in artifacts:
            real = real_path(artifact, "--in")
            lock = lock_of(real)
            fd = _open_lock(lock, writer=False)
            if fd is None:
                continue
            stack.callback(os.close, fd)
            _flock(fd, fcntl.LOCK_SH, lock, f"{artifact}: another run is writing it")
        yield


def _remove_tree(path: Path) -> None:
    """Remove the directory PATH that wsss made; what cannot be removed is a one-line error."""
    problems: list[str] = []
    shutil.rmtree(path, onerror=lambda _fn, p, info: problems.append(f"{p} ({info[1].strerror})"))
    if problems:
        raise WsssError(
            f"{path}: left by an earlier run and cannot be removed: {problems[0]}; "
            "remove it by hand and rerun"
        )


def begin(out: Path, keep: tuple[str, ...] = ()) -> Path:
    """The staging directory of OUT, ready for a stage: empty but for the files KEEP names (a
    training stage's checkpoints, to resume), so nothing of an earlier run's other files can
    end up in the new artifact. An interrupted swap of an earlier run is settled first."""
    old = _old_of(out)
    if _own_entry(old, is_dir=True):
        if out.exists():
            _remove_tree(old)
        else:
            old.rename(out)  # the swap stopped halfway: the old artifact comes back
    staging = staging_of(out)
    _own_entry(staging, is_dir=True)
    staging.mkdir(parents=True, exist_ok=True)
    for entry in staging.iterdir():
        if entry.name in keep and entry.is_file() and not entry.is_symlink():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return staging


def swap(staging: Path, out: Path) -> None:
    """Make the finished STAGING directory OUT, replacing what was there. The old artifact is
    removed last; what of it cannot be removed stays as `.<name>.old` (the next run says so)."""
    old = _old_of(out)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
