"""Relative paths that come from data (S3 keys, manifest entries, image ids, split lists) are
checked once, where they enter, before anything joins them to a local directory: none may point
outside it. A bad one is a one-line WsssError naming where it came from."""

from pathlib import Path

from wsss.errors import WsssError


def _problem(rel: object) -> str | None:
    if not isinstance(rel, str) or not rel:
        return "empty"
    if "\x00" in rel:
        return "contains a NUL byte"
    if "\\" in rel:
        return "contains a backslash"
    if rel.startswith("/"):
        return "absolute"
    segments = rel.split("/")
    if "" in segments:
        return "has an empty segment"
    if ".." in segments or "." in segments:
        return "has a '.' or '..' segment"
    return None


def relative_path(rel: object, where: str) -> str:
    """REL, if it is a relative POSIX path that stays below the directory it is joined to."""
    if problem := _problem(rel):
        raise WsssError(f"{where}: unsafe path {rel!r} ({problem}; expected a relative path)")
    return rel  # type: ignore[return-value]


def file_name(name: object, where: str) -> str:
    """NAME, if it is one safe path segment (an image id becomes `<id>.png` in an output)."""
    if isinstance(name, str) and "/" in name:
        raise WsssError(f"{where}: unsafe name {name!r} (contains '/'; expected a file name)")
    return relative_path(name, where)


def real_path(path: str | Path, what: str) -> Path:
    """PATH with its symlinks resolved; a symlink loop is a one-line error naming WHAT."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):  # RuntimeError: Python 3.11's "Symlink loop"
        raise WsssError(f"{what} {path}: a symlink loop") from None


def check_writes(writes: dict[str, object], reads: dict[str, object]) -> None:
    """Refuse a command whose outputs (WRITES: option -> path) would touch what it reads (READS:
    option -> path): a written path may not be a read one, lie inside one or contain one. Paths
    are compared with symlinks resolved; None and s3:// URIs are skipped."""

    def local(paths: dict[str, object]) -> dict[str, Path]:
        return {
            name: real_path(str(p), name)
            for name, p in paths.items()
            if p is not None and str(p).strip() and "://" not in str(p)
        }

    read = local(reads)
    for flag, target in local(writes).items():
        for name, source in read.items():
            if target == source or source in target.parents or target in source.parents:
                raise WsssError(
                    f"{flag} {writes[flag]}: would write over {name} {reads[name]}, which this "
                    "command reads; choose another path"
                )
