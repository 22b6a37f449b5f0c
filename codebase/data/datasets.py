"""get_dataset(name, root, split): one loader per data set, each documenting its on-disk layout.

Splits are "train" and "test". The search never touches "test" unless the user asks (`--test`):
it validates on a held-out part of "train" (see codebase/data/split.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from codebase.data.digits import DigitsDataset
from codebase.data.fine_grained import find_release, load_release
from codebase.data.formats import CifarPickleDataset, STL10Binary, data_error, image_folder
from codebase.data.info import dataset_info

SPLITS = ("train", "test")


def load_imagenet(root: Path, split: str, transform: Callable | None = None) -> Dataset:
    """ImageNet-1k (ILSVRC-2012) as an ImageFolder tree, 1000 class folders (synset ids) each:
    root/train/n01440764/*.JPEG ... (1,281,167 images) and root/val/n01440764/*.JPEG ... (50,000);
    "test" reads val/ (the usual ImageNet protocol)."""
    info = dataset_info("imagenet")
    sub = "train" if split == "train" else "val"
    return image_folder(info.name, info.layout, root, [sub], info.n_classes, transform)


def load_cifar10(root: Path, split: str, transform: Callable | None = None) -> Dataset:
    """CIFAR-10 in torchvision's python format: root/cifar-10-batches-py/{data_batch_1..5, test_batch,
    batches.meta} (the official cifar-10-python.tar.gz unpacked; 50,000 train, 10,000 test)."""
    info = dataset_info("cifar10")
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    return CifarPickleDataset(info.name, info.layout, root, "cifar-10-batches-py", files, "batches.meta",
                              "labels", "label_names", 10, transform)


def load_cifar100(root: Path, split: str, transform: Callable | None = None) -> Dataset:
    """CIFAR-100 (fine labels) in torchvision's python format: root/cifar-100-python/{train, test, meta}
    (the official cifar-100-python.tar.gz unpacked; 50,000 train, 10,000 test)."""
    info = dataset_info("cifar100")
    return CifarPickleDataset(info.name, info.layout, root, "cifar-100-python", [split], "meta",
                              "fine_labels", "fine_label_names", 100, transform)


def load_cinic10(root: Path, split: str, transform: Callable | None = None) -> Dataset:
    """CINIC-10 as released: root/{train, valid, test}/<class>/*.png, 10 class folders each, 90,000
    images per folder. "train" is train/ + valid/ (180,000 images, as NSGANetV2 used it; the search
    holds its own validation images out of these), "test" is test/."""
    info = dataset_info("cinic10")
    subs = ["train", "valid"] if split == "train" else ["test"]
    return image_folder(info.name, info.layout, root, subs, info.n_classes, transform)


def load_stl10(root: Path, split: str, transform: Callable | None = None) -> Dataset:
    """STL-10 in torchvision's binary format: root/stl10_binary/{train_X.bin, train_y.bin, test_X.bin,
    test_y.bin, class_names.txt} (the official stl10_binary.tar.gz unpacked; 5,000 train, 8,000 test,
    96x96; unlabeled_X.bin is not needed)."""
    info = dataset_info("stl10")
    return STL10Binary(info.name, info.layout, root, split, transform)


def _fine_grained_loader(name: str, sizes: str) -> Callable[..., Dataset]:
    def load(root: Path, split: str, transform: Callable | None = None) -> Dataset:
        info = dataset_info(name)
        release = None if (root / "train").is_dir() else find_release(name, root)
        if release is not None:
            assert info.n_classes is not None
            return load_release(info.name, info.layout, root, release, split, info.n_classes, transform)
        return image_folder(info.name, info.layout, root, [split], info.n_classes, transform)

    info = dataset_info(name)
    load.__name__ = f"load_{name}"
    load.__doc__ = (f"{name} as the original NSGANetV2 read it, prepared offline by the user: "
                    f"root/train/<class>/*.jpg and root/test/<class>/*.jpg with {info.n_classes} class "
                    f"folders each ({sizes}); without root/train, the official release with its own split "
                    f"files (train = train + val; see codebase/data/fine_grained.py).")
    return load


load_flowers102 = _fine_grained_loader("flowers102", "Oxford Flowers-102: train+val 2,040, test 6,149")
load_dtd = _fine_grained_loader("dtd", "Describable Textures, split 1: train+val 3,760, test 1,880")
load_pets = _fine_grained_loader("pets", "Oxford-IIIT Pets: trainval 3,680, test 3,669")
load_aircraft = _fine_grained_loader("aircraft", "FGVC-Aircraft variants: trainval 6,667, test 3,333")


def load_folder(root: Path, split: str, transform: Callable | None = None) -> Dataset:
    """Any ImageFolder tree: root/train/<class>/<images> and root/test/<class>/<images>, or root/val/...
    when there is no test/. Both must hold the same class folders; the class count is read from them."""
    info = dataset_info("folder")
    sub = split
    if split == "test" and not (root / "test").is_dir() and (root / "val").is_dir():
        sub = "val"
    return image_folder(info.name, info.layout, root, [sub], None, transform)


def load_digits_dataset(root: Path | None, split: str, transform: Callable | None = None) -> Dataset:
    """scikit-learn's load_digits, built in (root is ignored): 1,437 train / 360 test, 8x8, 10 classes."""
    return DigitsDataset(split, transform)


LOADERS: dict[str, Callable[..., Dataset]] = {
    "imagenet": load_imagenet,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "cinic10": load_cinic10,
    "stl10": load_stl10,
    "flowers102": load_flowers102,
    "dtd": load_dtd,
    "pets": load_pets,
    "aircraft": load_aircraft,
    "folder": load_folder,
    "digits": load_digits_dataset,
}


def get_dataset(name: str, root: str | Path | None, split: str, transform: Callable | None = None) -> Dataset:
    """The `split` ("train" or "test") of data set `name` stored under `root`.

    Items are (image, int label): a PIL RGB image when transform is None, else transform(image).
    Every dataset returned has .classes (names) and .targets (one int label per item).
    A missing or malformed folder raises one ValueError line saying what was expected where.
    """
    info = dataset_info(name)  # unknown name -> ValueError listing the choices
    if split not in SPLITS:
        raise ValueError(f"{name}: unknown split {split!r}; choose 'train' or 'test'")
    if name == "digits":
        if root is not None and str(root) != "":  # a forgotten --dataset would otherwise search digits silently
            # not "digits is --dataset's default": true of msunas.py, false of train_cifar.py (cifar10), ...
            raise ValueError(f"--data {root}: the data set is digits, scikit-learn's built-in one, which reads no "
                             f"folder; for the data set in {root}, name it with --dataset (a script whose --dataset "
                             f"defaults to digits reads digits when --dataset is left out)")
        return load_digits_dataset(None, split, transform)
    if root is None or str(root) == "":
        raise ValueError(f"{name}: no data folder given; expected {info.layout}")
    root = Path(root).expanduser()
    if root.is_file():
        raise data_error(name, info.layout, root, "it is a file, not a folder (unpack an archive first)")
    if not root.is_dir():
        raise data_error(name, info.layout, root, "the folder does not exist")
    return LOADERS[name](root, split, transform)
