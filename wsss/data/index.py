"""The dataset index: which images exist, where their masks are, and their image-level labels.

Readers (VOC, COCO) build a DatasetIndex from a root; the `dataset` artifact stores it as JSON so
that later stages never re-parse a dataset's own layout.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wsss.data import io
from wsss.errors import WsssError
from wsss.safe_paths import file_name, relative_path


@dataclass(frozen=True)
class Sample:
    """One image: root-relative paths and its foreground class ids (0-based, bg excluded)."""

    id: str
    image: str
    mask: str | None
    labels: tuple[int, ...]


@dataclass
class DatasetIndex:
    format: str
    root: Path
    classes: tuple[str, ...]
    splits: dict[str, list[str]]
    samples: dict[str, Sample] = field(default_factory=dict)
    # Root-relative paths of the other files the index was read from (split lists, annotations).
    sources: list[str] = field(default_factory=list)
    # Root-relative path -> sha256 that prepare_data recorded; what read_image/read_gt_mask check.
    sha256: dict[str, str] = field(default_factory=dict)
    # A smoke run's cut index: each split's size in the full dataset (what a full run would read).
    full_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Foreground classes plus background."""
        return len(self.classes) + 1

    @property
    def names_with_background(self) -> list[str]:
        """The name of each label map value 0..num_classes - 1: background, then the classes."""
        return ["background", *self.classes]

    def split(self, name: str) -> list[Sample]:
        if name not in self.splits:
            raise WsssError(f"split '{name}' not in the dataset (has: {', '.join(self.splits)})")
        return [self.samples[i] for i in self.splits[name]]

    def full_size(self, split: str) -> int:
        """How many images SPLIT holds in the full dataset (a smoke cut holds fewer)."""
        return self.full_sizes.get(split, len(self.split(split)))

    def smoke_cut(self, images: int) -> "DatasetIndex":
        """Each split cut to IMAGES images for a smoke run. Smaller splits are cut first and a
        larger split keeps the cut images it contains (VOC's train inside train_aug stays
        inside); the rest are picked to cover as many classes as the data allows."""
        if all(len(ids) <= images for ids in self.splits.values()):
            return self
        splits: dict[str, list[str]] = {}
        chosen: list[str] = []
        for name in sorted(self.splits, key=lambda n: (len(self.splits[n]), n)):
            ids = self.splits[name]
            members = set(ids)
            cut = [i for i in chosen if i in members][:images]
            covered = {c for i in cut for c in self.samples[i].labels}
            for i in ids:  # first the images that bring a class not yet covered
                labels = set(self.samples[i].labels)
                if len(cut) < images and not covered >= labels:
                    cut.append(i)
                    covered |= labels
            taken = set(cut)
            cut += [i for i in ids if i not in taken][: images - len(cut)]
            taken = set(cut)
            splits[name] = [i for i in ids if i in taken]  # the split's own order
            before = set(chosen)
            chosen += [i for i in splits[name] if i not in before]
        kept = set(chosen)
        return DatasetIndex(
            self.format,
            self.root,
            self.classes,
            {name: splits[name] for name in self.splits},
            {i: s for i, s in self.samples.items() if i in kept},
            self.sources,
            self.sha256,
            {name: self.full_size(name) for name in self.splits},
        )

    def image_path(self, sample: Sample) -> Path:
        return self.root / sample.image

    def mask_path(self, sample: Sample) -> Path | None:
        return None if sample.mask is None else self.root / sample.mask

    def read_image(self, sample: Sample) -> np.ndarray:
        """The sample's RGB image, refused if its bytes are not the ones prepare_data hashed."""
        path = self.image_path(sample)
        return io.read_image(path, self._recorded_bytes(sample.image))

    def read_gt_mask(self, sample: Sample) -> np.ndarray | None:
        """The sample's GT label map (None without one), checked as read_image is."""
        path = self.mask_path(sample)
        if path is None:
            return None
        return io.read_mask(path, self._recorded_bytes(sample.mask))

    def _recorded_bytes(self, rel: str) -> bytes | None:
        """REL's bytes, read once and hashed (cheap beside decoding them); None when nothing
        was recorded (an index read straight from a root)."""
        expected = self.sha256.get(rel)
        if expected is None:
            return None
        path = self.root / rel
        data, (sha256, _) = io.read_hashed(path)
        if sha256 != expected:
            raise WsssError(f"{path}: changed since prepare_data hashed it; rerun prepare_data")
        return data

    def label_names(self, sample: Sample) -> list[str]:
        return [self.classes[c] for c in sample.labels]

    def save(self, out: Path) -> None:
        """Write labels.json, classes.json, samples.json and splits/<split>.txt into OUT."""
        (out / "splits").mkdir(parents=True, exist_ok=True)
        ordered = sorted(self.samples.values(), key=lambda s: s.id)
        _dump(out / "classes.json", list(self.classes))
        _dump(out / "labels.json", {s.id: self.label_names(s) for s in ordered})
        _dump(out / "samples.json", {s.id: {"image": s.image, "mask": s.mask} for s in ordered})
        for name, ids in self.splits.items():
            (out / "splits" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))

    @classmethod
    def load(
        cls,
        directory: Path,
        root: Path,
        format: str,
        sha256: dict[str, str],
        full_sizes: dict[str, int],
    ) -> "DatasetIndex":
        """Read what save() wrote; ROOT is where the images are now (original or local copy),
        SHA256 the digests of its files that reads are checked against. Ids become output file
        names and paths are joined to ROOT: each is checked here."""
        classes = tuple(json.loads((directory / "classes.json").read_text()))
        class_id = {name: i for i, name in enumerate(classes)}
        labels = json.loads((directory / "labels.json").read_text())
        where = directory / "samples.json"
        paths = json.loads(where.read_text())
        samples = {}
        for i, p in paths.items():
            mask = p["mask"] and relative_path(p["mask"], f"{where}: '{i}' mask")
            image = relative_path(p["image"], f"{where}: '{i}' image")
            samples[i] = Sample(
                file_name(i, f"{where}: id"), image, mask, tuple(class_id[n] for n in labels[i])
            )
        splits = {}
        for f in sorted((directory / "splits").glob("*.txt")):
            splits[f.stem] = f.read_text().split()
            if unknown := next((i for i in splits[f.stem] if i not in samples), None):
                raise WsssError(f"{f}: image {unknown!r} is not in the dataset's samples.json")
        return cls(format, root, classes, splits, samples, sha256=sha256, full_sizes=full_sizes)


def _dump(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")


def read_split_list(path: Path, exists: Callable[[str], bool]) -> list[str]:
    """Image ids, one per line; a missing list or an id whose image is missing is a WsssError."""
    if not path.is_file():
        raise WsssError(f"{path}: split list not found")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of an id
    except UnicodeDecodeError as exc:
        raise WsssError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    ids: list[str] = []
    line_of: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        # accepts "X" and "/JPEGImages/X.jpg /Seg.../X.png"
        image_id = file_name(Path(tokens[0]).stem, f"{path}:{lineno}")
        if not exists(image_id):
            raise WsssError(
                f"{path}:{lineno}: image '{image_id}' is listed but its file is missing"
            )
        if image_id in line_of:
            # it would weigh twice in training and in every score
            raise WsssError(
                f"{path}:{lineno}: image '{image_id}' is listed again (first on line "
                f"{line_of[image_id]})"
            )
        line_of[image_id] = lineno
        ids.append(image_id)
    if not ids:
        raise WsssError(f"{path}: split list is empty")
    return ids
