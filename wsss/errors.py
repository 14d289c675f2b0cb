"""The error types that mean "bad input or params": the CLI turns them into one line, exit 2."""

import errno
import math
import pickle


class WsssError(Exception):
    """Bad input, bad params or an unusable artifact; the message names the file or field."""


class Diverged(WsssError):
    """Training produced a non-finite loss: the params (most often the learning rate) do not
    suit the data. Benchmarks catch it to record the run as diverged and go on."""

    def __init__(self, stage: str, step: int, parts: dict[str, float]):
        bad = ", ".join(k for k, v in parts.items() if not math.isfinite(v))
        super().__init__(
            f"{stage}: the loss became non-finite at step {step} ({bad}); "
            "lower the learning rate or check the data"
        )
        self.step = step


def load_problem(exc: Exception) -> str:
    """One line saying why torch.load failed, never torch's advice to unpickle code."""
    if isinstance(exc, pickle.UnpicklingError):  # the safe loader refused what the file holds
        return "it holds objects other than tensors and plain data; wsss never unpickles code"
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


# What the machine, not wsss, gets wrong when a file is written or read: full, read-only, no
# permission, a path through a file, a directory where a file goes, a symlink loop, too long.
ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.EFBIG,
        errno.EIO,
        errno.EEXIST,
        errno.ENOTEMPTY,
        errno.ENOENT,
    }
)


# Errors that are the disk's whichever file met them.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})


def file_problem(exc: OSError, where: object = None) -> WsssError | None:
    """A file-system failure as one line naming the file (or WHERE, the place being written,
    when the error names none: a full disk found when a file is closed); None for any other
    OSError, and for one that names no file unless its errno alone says it is the machine's."""
    if exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    name = exc.filename or where
    if name is None and exc.errno not in DISK_ERRNOS:
        return None
    return WsssError(f"{name or 'the disk'}: {exc.strerror or 'file system error'}")
