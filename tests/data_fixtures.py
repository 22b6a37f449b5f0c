"""Tiny on-disk copies of every data set format, for tests (no download, a few KB each).

Each writer follows the format's published description, independently of codebase/data:
- CIFAR python batches: a pickled dict whose 'data' is uint8 (N, 3072), each row the red, green
  then blue 32x32 planes in row-major order; labels under 'labels' (CIFAR-10) or 'fine_labels'.
- STL-10 binaries: 3x96x96 uint8 per image, each channel plane in column-major order; labels
  one uint8 per image, 1..10.
- ImageFolder: root/<split>/<class>/<file>.png|.jpg|.JPEG.
- The fine-grained sets' official releases (write_*_release): their image lists, .mat and text label
  files with 1-based labels, as each archive unpacks.
Writers return what they wrote (images as HWC uint8, labels 0-based), so tests can compare.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
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


DTD_CLASSES = ("banded blotchy braided bubbly bumpy chequered cobwebbed cracked crosshatched crystalline dotted "
               "fibrous flecked freckled frilly gauzy grid grooved honeycombed interlaced knitted lacelike lined "
               "marbled matted meshed paisley perforated pitted pleated polka-dotted porous potholed scaly smeared "
               "spiralled sprinkled stained stratified striped studded swirly veined waffled woven wrinkled "
               "zigzagged").split()
PETS_BREEDS = ("Abyssinian american_bulldog american_pit_bull_terrier basset_hound beagle Bengal Birman Bombay boxer "
               "British_Shorthair chihuahua Egyptian_Mau english_cocker_spaniel english_setter german_shorthaired "
               "great_pyrenees havanese japanese_chin keeshond leonberger Maine_Coon miniature_pinscher newfoundland "
               "Persian pomeranian pug Ragdoll Russian_Blue saint_bernard samoyed scottish_terrier shiba_inu Siamese "
               "Sphynx staffordshire_bull_terrier wheaten_terrier yorkshire_terrier").split()  # class ids 1..37


def _jpeg(mode: str = "RGB", seed: int = 0) -> bytes:
    image = Image.fromarray(smooth_images(1, 20, 24, seed)[0])
    buf = io.BytesIO()
    (image if mode == "RGB" else image.convert(mode)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_flowers102_release(root: Path, seed: int = 4) -> dict:
    """102flowers.tgz unpacked (jpg/image_00001.jpg ...) beside imagelabels.mat and setid.mat: labels 1..102 in
    1 x N 'labels', 1-based image numbers in 1 x K 'trnid', 'valid', 'tstid'; one image per class and split,
    numbered in a shuffled class order as in the real files. Returns {split: [(path, 0-based label)]}."""
    from scipy.io import savemat

    root = Path(root)
    (root / "jpg").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = np.concatenate([rng.permutation(102) + 1 for _ in range(3)])  # image k has labels[k - 1]
    ids = {key: [k + 1 for k in range(len(labels)) if k // 102 == j] for j, key in enumerate(["trnid", "valid",
                                                                                                 "tstid"])}
    shared = _jpeg()
    for k in range(1, len(labels) + 1):
        (root / "jpg" / f"image_{k:05d}.jpg").write_bytes(shared)
    savemat(root / "imagelabels.mat", {"labels": labels.astype(np.float64)[None]})
    savemat(root / "setid.mat", {key: np.array(v, np.float64)[None] for key, v in ids.items()})
    listed = {key: [(root / "jpg" / f"image_{k:05d}.jpg", int(labels[k - 1]) - 1) for k in v] for key, v in ids.items()}
    return {"train": listed["trnid"] + listed["valid"], "test": listed["tstid"],
            "classes": [str(k) for k in range(1, 103)]}


def write_dtd_release(root: Path) -> dict:
    """dtd-r1.0.1.tar.gz unpacked: root/dtd/images/<class>/<class>_0001.jpg ..., root/dtd/labels/{train,val,test}
    {1,2}.txt, one "class/file.jpg" per line (split 2 differs, so reading it instead of 1 shows)."""
    base = Path(root) / "dtd"
    shared = _jpeg()
    listed: dict[str, list[tuple[Path, int]]] = {"train1": [], "val1": [], "test1": []}
    for c, name in enumerate(DTD_CLASSES):
        (base / "images" / name).mkdir(parents=True, exist_ok=True)
        for i, split in enumerate(listed, 1):
            (base / "images" / name / f"{name}_{i:04d}.jpg").write_bytes(shared)
            listed[split].append((base / "images" / name / f"{name}_{i:04d}.jpg", c))
    (base / "labels").mkdir(parents=True, exist_ok=True)
    for split, samples in listed.items():
        lines = [f"{p.parent.name}/{p.name}" for p, _ in samples]
        (base / "labels" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        (base / "labels" / f"{split[:-1]}2.txt").write_text("\n".join(lines[:5]) + "\n")
    return {"train": listed["train1"] + listed["val1"], "test": listed["test1"], "classes": list(DTD_CLASSES)}


def write_pets_release(root: Path) -> dict:
    """images.tar.gz + annotations.tar.gz unpacked into root/oxford-iiit-pet: images/<Breed>_<n>.jpg (cats
    capitalised, dogs lower case; one CMYK and one grey JPEG, as the real set has), annotations/trainval.txt and
    test.txt ("<id> <class 1..37> <species 1 cat, 2 dog> <breed id>" per line) and list.txt with '#' comments."""
    base = Path(root) / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    modes = {0: "CMYK", 1: "L"}
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    listed: dict[str, list[tuple[Path, int]]] = {"trainval": [], "test": []}
    breed_ids = {1: 0, 2: 0}
    for c, breed in enumerate(PETS_BREEDS):
        species = 1 if breed[0].isupper() else 2
        breed_ids[species] += 1
        for n, split in ((1, "trainval"), (2, "trainval"), (3, "test")):
            image_id = f"{breed}_{n}"
            path = base / "images" / f"{image_id}.jpg"
            path.write_bytes(_jpeg(modes.get(len(listed["trainval"]) + len(listed["test"]), "RGB")))
            lines[split].append(f"{image_id} {c + 1} {species} {breed_ids[species]}")
            listed[split].append((path, c))
    for split, text in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(text) + "\n")
    header = "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n"
    (base / "annotations" / "list.txt").write_text(header + "\n".join(lines["trainval"] + lines["test"]) + "\n")
    return {"train": listed["trainval"], "test": listed["test"], "classes": list(PETS_BREEDS)}


def write_aircraft_release(root: Path) -> dict:
    """fgvc-aircraft-2013b.tar.gz unpacked: root/fgvc-aircraft-2013b/data/images/<7-digit id>.jpg, variants.txt
    (100 names, some with spaces or '/'), images_variant_{trainval,test}.txt ("<id> <variant>" per line)."""
    data = Path(root) / "fgvc-aircraft-2013b" / "data"
    (data / "images").mkdir(parents=True, exist_ok=True)
    variants = ["707-320", "A300B4", "Cessna 172", "F/A-18", "DHC-8-100"] + [f"Model {i}-{i}00" for i in range(95)]
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    shared = _jpeg()
    listed: dict[str, list[tuple[Path, int]]] = {"trainval": [], "test": []}
    for split, first in (("trainval", 34309), ("test", 1025794)):
        text = []
        for c in reversed(range(len(variants))):  # the files list images by id, not by class
            image_id = f"{first + c:07d}"
            (data / "images" / f"{image_id}.jpg").write_bytes(shared)
            text.append(f"{image_id} {variants[c]}")
            listed[split].append((data / "images" / f"{image_id}.jpg", c))
        (data / f"images_variant_{split}.txt").write_text("\n".join(text) + "\n")
    return {"train": listed["trainval"], "test": listed["test"], "classes": variants}


RELEASE_WRITERS = {"flowers102": write_flowers102_release, "dtd": write_dtd_release, "pets": write_pets_release,
                   "aircraft": write_aircraft_release}


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
        # synset folders of JPEGs with the upper-case .JPEG extension of the ILSVRC2012 files
        write_image_folder(root, ["train", "val"], [f"n{i:08d}" for i in range(1000)], ext="JPEG", distinct=False)
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


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder that takes no files: /sys refuses even root (as a read-only mount does); else a chmod'ed one."""
    if os.getuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        return folder
    if Path("/sys").is_dir():
        return Path("/sys")
    pytest.skip("no folder that refuses root's writes here")
