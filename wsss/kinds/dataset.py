"""The `dataset` artifact: the index of a dataset root (written by prepare_data)."""

import json
from pathlib import Path

from wsss.artifacts.storage import cached_root
from wsss.artifacts.uri import is_remote, resolve_uri
from wsss.data.index import DatasetIndex
from wsss.errors import WsssError

SOURCE = "source.json"  # the root's URI (relative to the artifact), format and digest
ROOT_FILES = "root_files.json"  # root-relative path -> sha256, size of every file the index uses
FULL_SPLITS = "full_splits"  # in SOURCE, for a smoke cut: each split's size in the full dataset


def load_index(dataset_dir: Path, smoke: int | None = None) -> DatasetIndex:
    """The DatasetIndex of a `dataset` artifact, with its root resolved from the artifact, each
    split cut to SMOKE images for a smoke run (the artifact's own cut if prepare_data made one).

    An s3:// root is synced once per machine into WSSS_CACHE_DIR and checked file by file
    against the digests recorded here (docs/design.md §4: no dataset copy per step).
    """
    source = json.loads((dataset_dir / SOURCE).read_text())
    root_uri = resolve_uri(dataset_dir, source["root"])
    root_files = json.loads((dataset_dir / ROOT_FILES).read_text())
    if is_remote(root_uri):
        root = cached_root(root_uri, root_files, source["root_digest"])
    else:
        root = Path(root_uri)
    sha256 = {rel: entry["sha256"] for rel, entry in root_files.items()}
    full = source.get(FULL_SPLITS, {})
    index = DatasetIndex.load(dataset_dir, root, source["format"], sha256, full)
    return index if smoke is None else index.smoke_cut(smoke)


def require_splits(index: DatasetIndex, section: str, p, *keys: str) -> None:
    """Each params field KEYS of SECTION (P) must name a split of the dataset."""
    for key in keys:
        if getattr(p, key) not in index.splits:
            raise WsssError(
                f"params: {section}.{key}: '{getattr(p, key)}' is not a split of the dataset"
            )
