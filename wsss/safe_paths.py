"""Relative paths that come from data (S3 keys, manifest entries, image ids, split lists) are
checked once, where they enter, before anything joins them to a local directory: none may point
outside it. A bad one is a one-line WsssError naming where it came from."""

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
