"""The four fine-grained sets as their authors distribute them, read through their own split and label files.

NSGANetV2 read these from ImageFolder trees prepared offline (root/train, root/test; see datasets.py);
when root has no train/ folder, the official release is read instead, with the NSGANetV2 splits:
"train" = the official train + validation images, "test" = the official test images.

- flowers102 (102flowers.tgz + imagelabels.mat + setid.mat): jpg/image_00001.jpg ..., labels 1..102 in
  imagelabels.mat['labels'], 1-based image numbers in setid.mat['trnid' | 'valid' | 'tstid'].
- dtd (dtd-r1.0.1.tar.gz): dtd/images/<class>/<file>.jpg, dtd/labels/{train,val,test}1.txt ("banded/x.jpg"
  per line, split 1); labels are the sorted class folders.
- pets (images.tar.gz + annotations.tar.gz): images/<id>.jpg, annotations/{trainval,test}.txt
  ("<id> <class 1..37> <species> <breed>" per line).
- aircraft (fgvc-aircraft-2013b.tar.gz): fgvc-aircraft-2013b/data/images/<id>.jpg,
  data/images_variant_{trainval,test}.txt ("<id> <variant name>" per line), data/variants.txt (label order).
Each may be given as the folder the archive unpacked to or as the folder that holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from torchvision.datasets import VisionDataset

from codebase.data.formats import data_error, read_rgb_image, visible_classes

#: per data set: the folders (relative to root) where the release may lie, and the entries it must hold
RELEASES: dict[str, tuple[list[str], list[str]]] = {
    "flowers102": (["", "flowers-102"], ["jpg", "imagelabels.mat", "setid.mat"]),
    "dtd": (["", "dtd", "dtd/dtd"], ["images", "labels/train1.txt", "labels/val1.txt", "labels/test1.txt"]),
    "pets": (["", "oxford-iiit-pet"], ["images", "annotations/trainval.txt", "annotations/test.txt"]),
    "aircraft": (["", "fgvc-aircraft-2013b", "fgvc-aircraft-2013b/data", "data"],
                 ["images", "variants.txt", "images_variant_trainval.txt", "images_variant_test.txt"]),
}

def find_release(name: str, root: Path) -> Path | None:
    """The folder holding data set `name`'s official release under root, or None when none is there."""
    bases, entries = RELEASES[name]
    for base in bases:
        if any((root / base / entry).exists() for entry in entries):
            return root / base
    return None


class ListedImages(VisionDataset):
    """Images named by a list: ds[i] -> (PIL RGB image, label); .samples, .classes, .targets."""

    def __init__(self, root: Path, samples: list[tuple[Path, int]], classes: list[str],
                 transform: Callable | None = None) -> None:
        super().__init__(str(root), transform=transform)
        self.samples = [(str(path), label) for path, label in samples]
        self.targets = [label for _, label in samples]
        self.classes = classes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = read_rgb_image(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def load_release(name: str, layout: str, root: Path, base: Path, split: str, n_classes: int,
                 transform: Callable | None = None) -> ListedImages:
    """The split ("train": official train + val, "test") of the release found at `base`."""

    def fail(problem: str) -> ValueError:
        return data_error(name, layout, root, problem)

    missing = [entry for entry in RELEASES[name][1] if not (base / entry).exists()]
    if missing:
        raise fail(f"found part of the official release in {base}, but not {', '.join(missing)}")
    try:
        samples, classes = _READERS[name](base, split)
    except Exception as e:  # .mat and text files of any damage; nothing here runs code from them
        raise fail(f"{base}: unreadable split or label file ({type(e).__name__}: {' '.join(str(e).split())})") from None
    if len(classes) != n_classes:
        raise fail(f"{base} lists {len(classes)} classes, not {n_classes}")
    if not samples:
        raise fail(f"{base}: the {split} split lists no images")
    labels = np.array([label for _, label in samples])
    if labels.min() < 0 or labels.max() >= n_classes:
        raise fail(f"{base}: labels outside 1..{n_classes}")
    absent = [path for path, _ in samples if not path.is_file()]
    if absent:
        raise fail(f"{len(absent)} of the {len(samples)} {split} images are missing, e.g. {absent[0]}")
    return ListedImages(base, samples, classes, transform)


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(path)
    except Exception as e:
        raise ValueError(f"{path.name}: {e}") from None


def _flowers102(base: Path, split: str) -> tuple[list[tuple[Path, int]], list[str]]:
    labels = np.asarray(_loadmat(base / "imagelabels.mat")["labels"]).ravel().astype(np.int64)  # 1..102
    sets = _loadmat(base / "setid.mat")
    keys = ["trnid", "valid"] if split == "train" else ["tstid"]
    ids = np.concatenate([np.asarray(sets[key]).ravel().astype(np.int64) for key in keys])
    if ids.min() < 1 or ids.max() > len(labels):
        raise ValueError(f"setid.mat names image {ids.max() if ids.max() > len(labels) else ids.min()}, "
                         f"imagelabels.mat labels images 1..{len(labels)}")
    samples = [(base / "jpg" / f"image_{i:05d}.jpg", int(labels[i - 1]) - 1) for i in ids]
    return samples, [str(k) for k in range(1, int(labels.max(initial=0)) + 1)]


def _dtd(base: Path, split: str) -> tuple[list[tuple[Path, int]], list[str]]:
    classes = visible_classes(base / "images")
    index = {c: i for i, c in enumerate(classes)}
    files = ["train1.txt", "val1.txt"] if split == "train" else ["test1.txt"]
    samples = []
    for file in files:
        for line in _lines(base / "labels" / file):
            folder, _, _ = line.partition("/")
            samples.append((base / "images" / line, index[folder]))
    return samples, classes


def _pets(base: Path, split: str) -> tuple[list[tuple[Path, int]], list[str]]:
    names: dict[int, str] = {}
    samples = []
    for file in ["trainval.txt", "test.txt"]:  # both, so that every split names all 37 breeds
        for line in _lines(base / "annotations" / file):
            image_id, label = line.split()[:2]
            names.setdefault(int(label) - 1, image_id.rsplit("_", 1)[0])
            if file.startswith(split if split == "test" else "trainval"):
                samples.append((base / "images" / f"{image_id}.jpg", int(label) - 1))
    return samples, [names.get(k, str(k + 1)) for k in range(max(names, default=-1) + 1)]


def _aircraft(base: Path, split: str) -> tuple[list[tuple[Path, int]], list[str]]:
    classes = _lines(base / "variants.txt")
    index = {c: i for i, c in enumerate(classes)}
    samples = []
    for line in _lines(base / f"images_variant_{'trainval' if split == 'train' else 'test'}.txt"):
        image_id, variant = line.split(" ", 1)
        samples.append((base / "images" / f"{image_id}.jpg", index[variant.strip()]))
    return samples, classes


_READERS = {"flowers102": _flowers102, "dtd": _dtd, "pets": _pets, "aircraft": _aircraft}
