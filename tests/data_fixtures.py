"""Tiny on-disk copies of every data set format, for tests (no download, a few KB each).

Each writer follows the format's published description, independently of codebase/data:
- CIFAR python batches: a pickled dict whose 'data' is uint8 (N, 3072), each row the red, green
  then blue 32x32 planes in row-major order; labels under 'labels' (CIFAR-10) or 'fine_labels'.
- STL-10 binaries: 3x96x96 uint8 per image, each channel plane in column-major order; labels
  one uint8 per image, 1..10.
- ImageFolder: root/<split>/<class>/<file>.png|.jpg.
Writers return what they wrote (images as HWC uint8, labels 0-based), so tests can compare.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

FINE_GRAINED_CLASSES = {"flowers102": 102, "dtd": 47, "pets": 37, "aircraft": 100}


def smooth_images(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 (n, height, width, 3) images with photo-like low-frequency content plus mild noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8))
        base = np.asarray(coarse.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float64)
        noise = rng.normal(0.0, 6.0, base.shape)
        out[i] = np.clip(np.rint(base + noise), 0, 255).astype(np.uint8)
    return out


def _dump(path: Path, obj: dict) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))  # the official files are protocol-2 pickles


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3 * 32 * 32)


def write_cifar10(root: Path, per_batch: int = 2, n_test: int = 4, seed: int = 0) -> dict:
    """root/cifar-10-batches-py with data_batch_1..5, test_batch, batches.meta."""
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"class{i}" for i in range(10)]
    written = {"train": ([], []), "test": ([], [])}
    batches = [(f"data_batch_{b}", "train", per_batch) for b in range(1, 6)] + [("test_batch", "test", n_test)]
    for k, (file, split, n) in enumerate(batches):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        _dump(base / file, {"batch_label": f"batch {k}", "labels": labels, "data": _cifar_rows(images),
                            "filenames": [f"img_{k}_{i}.png" for i in range(n)]})
        written[split][0].append(images)
        written[split][1].extend(labels)
    _dump(base / "batches.meta", {"num_cases_per_batch": per_batch, "label_names": names, "num_vis": 3072})
    return {s: (np.concatenate(imgs), np.array(lab)) for s, (imgs, lab) in written.items()} | {"classes": names}


def write_cifar100(root: Path, n_train: int = 6, n_test: int = 4, seed: int = 1) -> dict:
    """root/cifar-100-python with train, test, meta (fine and coarse labels)."""
    base = Path(root) / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        _dump(base / split, {"filenames": [f"{split}_{i}.png" for i in range(n)], "batch_label": split,
                             "fine_labels": fine, "coarse_labels": [f // 5 for f in fine],
                             "data": _cifar_rows(images)})
        written[split] = (images, np.array(fine))
    names = [f"fine{i}" for i in range(100)]
    _dump(base / "meta", {"fine_label_names": names, "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return written | {"classes": names}


def write_stl10(root: Path, n_train: int = 5, n_test: int = 3, seed: int = 2) -> dict:
    """root/stl10_binary with {train,test}_{X,y}.bin and class_names.txt."""
    base = Path(root) / "stl10_binary"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
        # (n, y, x, c) -> (n, c, x, y): each channel plane column-major
        (base / f"{split}_X.bin").write_bytes(np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes())
        (base / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
        written[split] = (images, labels)
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (base / "class_names.txt").write_text("\n".join(names) + "\n")
    return written | {"classes": names}


def _encode(image: np.ndarray, ext: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG" if ext == "png" else "JPEG", quality=95)
    return buf.getvalue()


def write_image_folder(root: Path, split_dirs: list[str], classes: list[str], per_class: int = 1,
                       size: tuple[int, int] = (20, 24), ext: str = "png", seed: int = 3,
                       distinct: bool = True) -> dict[str, list[tuple[Path, int]]]:
    """root/<split>/<class>/<i>.<ext>; returns {split: [(path, label), ...]} with sorted-class labels.

    distinct=False writes one encoded image everywhere (fast for 1000-class trees)."""
    root = Path(root)
    height, width = size
    label_of = {c: i for i, c in enumerate(sorted(classes))}
    shared = _encode(smooth_images(1, height, width, seed)[0], ext)
    out: dict[str, list[tuple[Path, int]]] = {}
    for s, split in enumerate(split_dirs):
        images = smooth_images(len(classes) * per_class, height, width, seed + 1 + s) if distinct else None
        out[split] = []
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                path = folder / f"{i}.{ext}"
                path.write_bytes(_encode(images[c * per_class + i], ext) if distinct else shared)
                out[split].append((path, label_of[name]))
    return out


def write_dataset(name: str, root: Path) -> Path:
    """A tiny valid copy of data set `name` under root (digits needs none); returns root."""
    root = Path(root)
    if name == "cifar10":
        write_cifar10(root)
    elif name == "cifar100":
        write_cifar100(root)
    elif name == "stl10":
        write_stl10(root)
    elif name == "imagenet":
        write_image_folder(root, ["train", "val"], [f"n{i:08d}" for i in range(1000)], distinct=False)
    elif name == "cinic10":
        write_image_folder(root, ["train", "valid", "test"], [f"c{i}" for i in range(10)], size=(32, 32))
    elif name in FINE_GRAINED_CLASSES:
        classes = [f"{name}_{i:03d}" for i in range(FINE_GRAINED_CLASSES[name])]
        write_image_folder(root, ["train", "test"], classes, ext="jpg", distinct=False)
    elif name == "folder":
        write_image_folder(root, ["train", "test"], ["cat", "dog", "emu"], per_class=2)
    elif name != "digits":
        raise ValueError(f"no fixture writer for {name!r}")
    return root
