"""Readers for the on-disk formats: CIFAR python pickles, STL-10 binaries, ImageFolder trees.

Every reader checks the files first and raises ONE ValueError line saying what it expected where,
never a torchvision traceback. The datasets they return all behave alike: `ds[i] -> (PIL RGB image,
int label)`, `ds.classes` (class names) and `ds.targets` (one int label per item).
"""

from __future__ import annotations

import codecs
import functools
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets import STL10, ImageFolder, VisionDataset
from torchvision.datasets.folder import IMG_EXTENSIONS, is_image_file

try:
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct, scalar
    from numpy.core.numeric import _frombuffer


def data_error(name: str, layout: str, root: Path, problem: str) -> ValueError:
    return ValueError(f"{name}: expected {layout} under {root}; {problem}")


# ---------------------------------------------------------------------------------------- CIFAR


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a CIFAR batch file cannot run code.

    The CIFAR python batches are pickles (Python 2, protocol 2); the globals they need are numpy's
    array reconstructor, ndarray, dtype, and _codecs.encode (bytes pickled by Python 3 at protocol 2).
    A batch re-saved by Python 3 at protocol 5 (pickle's default since 3.8 for `protocol=-1`) rebuilds
    its arrays with numpy's _frombuffer instead; numpy scalars (labels written as list(array)) are a dtype and
    its bytes.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        # numpy scalars (a label list written as list(label_array)): a dtype and its raw bytes
        ("numpy.core.multiarray", "scalar"): scalar,
        ("numpy._core.multiarray", "scalar"): scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def load_cifar_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        obj = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"expected a dict, found {type(obj).__name__}")
    # a batch loaded the way the CIFAR page shows (encoding="bytes") and saved again has bytes keys
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _integer_labels(value: object) -> np.ndarray | None:
    """A batch's labels as int64 (N,), or None unless they are a flat sequence of integers (integral floats,
    as numpy float arrays hold them, count as integers; 2.5, True, None, strings and nested lists do not)."""
    if value is None or isinstance(value, (str, bytes, dict)):
        return None
    try:
        labels = np.asarray(value)
    except Exception:  # ragged nesting
        return None
    if labels.ndim != 1:
        return None
    if labels.dtype.kind in "iu":
        return labels.astype(np.int64)
    if labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels == np.round(labels)).all():
        return labels.astype(np.int64)
    return None


def _class_names(value: object) -> list | None:
    """The class names of a meta file (a list, tuple or 1-D array of str or bytes), or None when they are not."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, (str, bytes)) for c in value):
        return None
    return list(value)


class CifarPickleDataset(VisionDataset):
    """CIFAR-10/100 from torchvision's python-pickle folder (the files the official archive holds).

    Read with an unpickler that admits numpy arrays only (torchvision's reader unpickles anything,
    guarded by MD5 sums of the official files, which would also reject any re-packed copy).
    """

    def __init__(self, name: str, layout: str, root: Path, folder: str, files: list[str], meta_file: str,
                 label_key: str, names_key: str, n_classes: int, transform=None) -> None:
        super().__init__(str(root), transform=transform)

        def fail(problem: str) -> ValueError:
            return data_error(name, layout, root, problem)

        base = root / folder
        if not base.is_dir() and root.name == folder:  # the user pointed at the folder itself
            base = root
        if not base.is_dir():
            raise fail("not found")
        missing = [f for f in [*files, meta_file] if not (base / f).is_file()]
        if missing:
            raise fail(f"missing {', '.join(missing)} in {base}")
        images, labels = [], []
        for file in files:
            entry = self._read(fail, base / file)
            data, targets = entry.get("data"), entry.get(label_key)
            if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                    or data.shape[1] != 3 * 32 * 32:
                raise fail(f"{base / file}: 'data' is not a uint8 array (N, 3072)")
            if targets is None:
                raise fail(f"{base / file}: '{label_key}' missing or not one per image")
            targets = _integer_labels(targets)
            if targets is None:  # a float would be truncated to another class, silently
                raise fail(f"{base / file}: '{label_key}' is not a list of integer class indices")
            if len(targets) != len(data):
                raise fail(f"{base / file}: '{label_key}' missing or not one per image")
            if targets.size and (targets.min() < 0 or targets.max() >= n_classes):
                raise fail(f"{base / file}: labels outside 0..{n_classes - 1}")
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # rows are channel-planar
            labels.append(targets)
        self.data = np.ascontiguousarray(np.concatenate(images))
        self.targets = np.concatenate(labels).tolist()
        names = _class_names(self._read(fail, base / meta_file).get(names_key))
        self.classes = [c.decode("latin1") if isinstance(c, bytes) else c for c in names or []]
        if names is None or len(self.classes) != n_classes:
            raise fail(f"{base / meta_file}: '{names_key}' does not list {n_classes} class names")

    @staticmethod
    def _read(fail: Callable[[str], ValueError], path: Path) -> dict:
        try:
            return load_cifar_pickle(path)
        except Exception as e:  # garbage bytes raise many types; the allow-list keeps it from running code
            raise fail(f"{path}: not a CIFAR batch file ({type(e).__name__}: {e})") from None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.data[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


# --------------------------------------------------------------------------------------- STL-10

STL10_IMAGE_BYTES = 3 * 96 * 96


class STL10Binary(STL10):
    """torchvision's STL10 reader, with our own file checks instead of its MD5 pass.

    torchvision hashes all files on every construction, including the 2.6 GB unlabeled_X.bin that
    the labelled splits never read; we check that the split's two files exist and agree in size.
    """

    def __init__(self, name: str, layout: str, root: Path, split: str, transform=None) -> None:
        self._name, self._layout, self._split = name, layout, split
        if root.name == self.base_folder and not (root / self.base_folder).is_dir():
            root = root.parent  # the user pointed at the folder itself
        super().__init__(str(root), split=split, transform=transform)
        self.targets = self.labels.astype(np.int64).tolist()
        if not getattr(self, "classes", None):
            self.classes = [str(i) for i in range(10)]
        elif len(self.classes) != 10:  # the labels run 1..10: another count names the classes wrongly
            raise data_error(name, layout, root, f"{Path(self.root) / self.base_folder / 'class_names.txt'}: "
                             f"{len(self.classes)} class names, STL-10 has 10")

    def _check_integrity(self) -> bool:
        root = Path(self.root)

        def fail(problem: str) -> ValueError:
            return data_error(self._name, self._layout, root, problem)

        base = root / self.base_folder
        if not base.is_dir():
            raise fail("not found")
        x_path, y_path = base / f"{self._split}_X.bin", base / f"{self._split}_y.bin"
        missing = [p.name for p in (x_path, y_path) if not p.is_file()]
        if missing:
            raise fail(f"missing {', '.join(missing)} in {base}")
        n_images, rest = divmod(x_path.stat().st_size, STL10_IMAGE_BYTES)
        if rest or n_images == 0:
            raise fail(f"{x_path}: size is not a positive multiple of {STL10_IMAGE_BYTES} bytes (3x96x96)")
        labels = np.fromfile(y_path, dtype=np.uint8)
        if len(labels) != n_images:
            raise fail(f"{y_path}: {len(labels)} labels for {n_images} images in {x_path.name}")
        if labels.min() < 1 or labels.max() > 10:
            raise fail(f"{y_path}: labels outside 1..10")
        return True


# ---------------------------------------------------------------------------------- ImageFolder


def _visible(name: str) -> bool:
    return not name.startswith(".")


def visible_classes(directory: str | Path) -> list[str]:
    """The sorted class folders of an ImageFolder split, hidden ones (.ipynb_checkpoints, .git, ...)
    left out; FileNotFoundError when there are none (as torchvision's find_classes)."""
    with os.scandir(directory) as entries:
        classes = sorted(e.name for e in entries if e.is_dir() and _visible(e.name))
    if not classes:
        raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
    return classes


def _pil_image_type(name: str) -> bool:
    """Whether a file name's extension is one PIL opens (.gif, .jfif, .tga, ... beside the accepted ones)."""
    return os.path.splitext(name)[1].lower() in _pil_extensions()


@functools.lru_cache(maxsize=1)
def _pil_extensions() -> frozenset[str]:
    return frozenset(ext for ext, kind in Image.registered_extensions().items() if kind in Image.OPEN)


class _ImageFolder(ImageFolder):
    """torchvision's ImageFolder without hidden class folders or hidden files: a notebook's
    .ipynb_checkpoints/ would otherwise be a class, and macOS's ._NAME.jpg resource forks images.

    It reads torchvision's extensions (IMG_EXTENSIONS) only. Files of other types PIL opens (.gif, .jfif, ...) are
    left out with one warning naming how many and one of them (the same text each time, so shown once per process)
    rather than read: reading them would change the images, and so the validation hold-out, of runs already made
    on such a folder. A class folder holding only such files is an error that says so."""

    def __init__(self, root: str, transform=None, loader=None) -> None:
        skipped: list[str] = []

        def valid(path: str) -> bool:
            name = os.path.basename(path)
            if not _visible(name):
                return False
            if is_image_file(name):
                return True
            if _pil_image_type(name):
                skipped.append(path)
            return False

        try:
            super().__init__(root, transform=transform, loader=loader, is_valid_file=valid)
        except FileNotFoundError as e:  # passing is_valid_file drops torchvision's list of extensions from it
            text = _shorten(str(e))
            if text.startswith("Found no valid file"):
                text += f" ({_extensions_note(root, skipped)})"
            raise FileNotFoundError(text) from None
        if skipped:
            import warnings

            warnings.warn(f"{root}: {_extensions_note(root, skipped)}", stacklevel=2)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        classes = visible_classes(directory)
        return classes, {c: i for i, c in enumerate(classes)}


def _extensions_note(root: str, skipped: list[str]) -> str:
    """'accepted extensions: .jpg, ...', after 'N files of other image types left out (e.g. CLASS/NAME); ' when
    `skipped` names any, and then what to do."""
    note = f"accepted extensions: {', '.join(IMG_EXTENSIONS)} (any case)"
    if not skipped:
        return note
    n = len(skipped)
    files, them = (f"{n} files of other image types", "them") if n != 1 else ("1 file of another image type", "it")
    return (f"{files} left out (e.g. {os.path.relpath(min(skipped), root)}); {note}: convert {them} to one of these "
            f"to use {them}")


def image_folder(name: str, layout: str, root: Path, subdirs: list[str], n_classes: int | None,
                 transform=None, train_subdir: str | None = "train") -> ImageFolder:
    """One ImageFolder over root/subdirs[0], with the samples of any further subdirs appended.

    Every subdir must hold the same class folders (the label is the class folder's sorted index),
    and, when n_classes is given, exactly that many. `train_subdir` (every layout here names it train/):
    when it exists and is not among `subdirs` (a test split), the class folders must match its, or the
    labels would mean other classes.
    """
    first: ImageFolder | None = None
    for sub in subdirs:
        path = root / sub
        if not path.is_dir():
            raise data_error(name, layout, root, f"{path} not found")
        try:
            ds = _ImageFolder(str(path), transform=transform, loader=read_rgb_image)
        except FileNotFoundError as e:  # no class folders, or a class folder with no images
            hint = ""
            if any(is_image_file(entry.name) for entry in path.iterdir()):  # e.g. ILSVRC2012's flat val/
                hint = " (it holds images directly: sort them into one folder per class)"
            raise data_error(name, layout, root, f"{path}: {e}{hint}") from None
        if n_classes is not None and len(ds.classes) != n_classes:
            hint = "; for another class set use dataset 'folder'" if name != "folder" else ""
            raise data_error(name, layout, root, f"{path} has {len(ds.classes)} class folders{hint}")
        if len(ds.classes) < 2:  # every label 0: nothing to classify, and 100% for any network
            raise data_error(name, layout, root, f"{path} has {len(ds.classes)} class folder ({ds.classes[0]}); "
                             f"classification needs at least 2")
        if first is None:
            first = ds
            continue
        if ds.classes != first.classes:
            raise data_error(name, layout, root, f"{path} and {first.root} hold different class folders")
        first.samples += ds.samples
        first.targets += ds.targets
    assert first is not None
    train = root / train_subdir if train_subdir else None
    if train is not None and train.is_dir() and train_subdir not in subdirs:
        train_classes = visible_classes(train)
        if train_classes != first.classes:
            only_train = sorted(set(train_classes) - set(first.classes))[:3]
            only_here = sorted(set(first.classes) - set(train_classes))[:3]
            raise data_error(name, layout, root, f"{first.root} and {train} hold different class folders (only in "
                             f"{train.name}: {only_train or 'none'}; only in {Path(first.root).name}: "
                             f"{only_here or 'none'}), so the labels would not match")
    first.imgs = first.samples
    return first


def read_rgb_image(path: str) -> Image.Image:
    """An image file as a PIL RGB image; one that PIL cannot read is a ValueError naming the file.

    Grey, palette and alpha images become RGB (alpha dropped; palette and transparent ones through RGBA); 16-bit
    grey images are scaled to 8 bits (v / 257); floating-point ones and 32-bit integer ones with values outside
    0..65535 (no fixed range) are refused.
    """
    from PIL import UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            if image.mode == "F":  # no fixed range to map to 0..255; convert("RGB") would clip it
                raise ValueError(f"{path}: a floating-point image (PIL mode F) has no fixed grey range; "
                                 f"save it with 8 or 16 bits per channel")
            if image.mode in _SIXTEEN_BIT_MODES:
                # convert("RGB") clips 0..65535 to 0..255 (a 16-bit grey PNG turns almost white): rescale
                values = np.asarray(image, dtype=np.float64)
                if image.mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
                    # 32-bit integers beyond 16 bits (a TIFF of int32 data): v / 257 clipped them to white silently
                    raise ValueError(f"{path}: a 32-bit integer image (PIL mode I) with values {values.min():.0f}.."
                                     f"{values.max():.0f}, outside the 16-bit range 0..65535, has no fixed grey "
                                     f"range; save it with 8 or 16 bits per channel")
                image = Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), "L")
            if image.mode in ("P", "PA") or "transparency" in image.info:
                # through RGBA, as PIL asks: a palette PNG with an alpha table (pngquant, TinyPNG) converted straight
                # to RGB printed "Palette images with Transparency expressed in bytes ..." naming no file
                image = image.convert("RGBA")
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: not a readable image ({type(e).__name__})") from None
    except Image.DecompressionBombError as e:  # not an OSError: it was a traceback naming no file
        raise ValueError(f"{path}: over PIL's limit against decompression bombs ({' '.join(str(e).split())}); "
                         f"downscale it") from None


#: PIL modes of 16-bit grey images (PNG/TIFF; older Pillow opens 16-bit PNGs as 32-bit "I", whose values are then
#: checked to lie in 0..65535)
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " ..."
