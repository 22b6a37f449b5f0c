"""Data sets: every on-disk format read from tiny generated copies, labels, classes, transforms, split."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import CIFAR10, CIFAR100

from codebase.data import (
    dataset_info,
    dataset_names,
    eval_geometry,
    eval_transform,
    get_dataset,
    train_transform,
    train_validation_split,
)
from tests.data_fixtures import (
    FINE_GRAINED_CLASSES,
    RELEASE_WRITERS,
    write_cifar10,
    write_cifar100,
    write_dataset,
    write_image_folder,
    write_stl10,
)

ALL = ["imagenet", "cifar10", "cifar100", "cinic10", "stl10", "flowers102", "dtd", "pets", "aircraft",
       "folder", "digits"]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_registry_lists_every_dataset_and_rejects_unknown_names():
    assert dataset_names() == ALL
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; choose one of imagenet, cifar10"):
        dataset_info("mnist")
    assert [dataset_info(n).n_classes for n in ALL] == [1000, 10, 100, 10, 10, 102, 47, 37, 100, None, 10]


# ------------------------------------------------------------------------------------ CIFAR


@pytest.fixture
def torchvision_cifar(monkeypatch):
    """torchvision's own CIFAR readers as the reference, minus their MD5 check of the official files."""
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)
    return {"cifar10": CIFAR10, "cifar100": CIFAR100}


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_reads_the_python_pickle_folder(tmp_path, split, torchvision_cifar):
    written = write_cifar10(tmp_path)
    ds = get_dataset("cifar10", tmp_path, split)
    images, labels = written[split]
    assert len(ds) == len(images) == (10 if split == "train" else 4)
    assert ds.classes == written["classes"]
    assert ds.targets == labels.tolist()
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.size == (32, 32) and label == labels[i]
        np.testing.assert_array_equal(pixels(image), images[i])
    reference = torchvision_cifar["cifar10"](str(tmp_path), train=split == "train")
    np.testing.assert_array_equal(ds.data, reference.data)
    assert ds.targets == reference.targets and ds.classes == reference.classes


def test_cifar10_accepts_the_batches_folder_itself_as_root(tmp_path):
    write_cifar10(tmp_path)
    assert len(get_dataset("cifar10", tmp_path / "cifar-10-batches-py", "test")) == 4


def test_cifar100_reads_fine_labels(tmp_path, torchvision_cifar):
    written = write_cifar100(tmp_path)
    for split in ("train", "test"):
        ds = get_dataset("cifar100", tmp_path, split)
        images, labels = written[split]
        assert ds.targets == labels.tolist() and len(ds.classes) == 100
        np.testing.assert_array_equal(np.stack([pixels(ds[i][0]) for i in range(len(ds))]), images)
        reference = torchvision_cifar["cifar100"](str(tmp_path), train=split == "train")
        assert ds.targets == reference.targets and ds.classes == reference.classes
        np.testing.assert_array_equal(ds.data, reference.data)


def python2_cifar_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled the way Python 2's cPickle wrote the official files: protocol 2, byte strings
    (opcode U/T) for keys and raw array data, numpy.core.multiarray._reconstruct for the array."""

    def short(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b

    raw = data.tobytes()
    out = b"\x80\x02}q\x00(" + short(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85" + short(b"b")
    out += b"\x87Rq\x03(K\x01M" + struct.pack("<H", data.shape[0]) + b"M" + struct.pack("<H", data.shape[1])
    out += b"\x86cnumpy\ndtype\nq\x04" + short(b"u1") + b"K\x00K\x01\x87Rq\x05(K\x03" + short(b"|")
    out += b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T" + struct.pack("<I", len(raw)) + raw + b"tb"
    out += short(b"labels") + b"]q\x06(" + b"".join(b"K" + bytes([v]) for v in labels) + b"eu."
    return out


def test_cifar_reads_batches_pickled_by_python2(tmp_path):
    write_cifar10(tmp_path)
    images = np.random.default_rng(5).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    rows = images.transpose(0, 3, 1, 2).reshape(3, 3072)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(python2_cifar_batch(rows, [9, 0, 4]))
    ds = get_dataset("cifar10", tmp_path, "test")
    assert ds.targets == [9, 0, 4]
    np.testing.assert_array_equal(np.stack([pixels(ds[i][0]) for i in range(3)]), images)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_cifar_reads_batches_re_saved_by_python3(tmp_path, protocol):
    write_cifar10(tmp_path)
    images = np.random.default_rng(protocol).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    # keys as the CIFAR page's unpickle(encoding="bytes") returns them, and as torchvision's latin1 does
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": [2, 7, 1],
             b"data": images.transpose(0, 3, 1, 2).reshape(3, 3072), b"filenames": [b"a.png", b"b.png", b"c.png"]}
    base = tmp_path / "cifar-10-batches-py"
    (base / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    meta = {b"label_names": [n.encode() for n in names], b"num_vis": 3072}
    (base / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    ds = get_dataset("cifar10", tmp_path, "test")
    assert ds.targets == [2, 7, 1] and ds.classes == names
    np.testing.assert_array_equal(np.stack([pixels(ds[i][0]) for i in range(3)]), images)


# ------------------------------------------------------------------------------------ STL-10


def test_stl10_reads_column_major_binaries_with_one_based_labels(tmp_path):
    written = write_stl10(tmp_path)
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").unlink(missing_ok=True)  # not needed
    for split in ("train", "test"):
        ds = get_dataset("stl10", tmp_path, split)
        images, labels = written[split]
        assert len(ds) == len(images) and ds.targets == labels.tolist()
        assert ds.classes == written["classes"]
        for i in range(len(ds)):
            image, label = ds[i]
            assert label == labels[i] and image.size == (96, 96)
            np.testing.assert_array_equal(pixels(image), images[i])


# ------------------------------------------------------------------------------- ImageFolder


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory) -> Path:
    return write_dataset("imagenet", tmp_path_factory.mktemp("imagenet"))


def test_imagenet_reads_train_and_val_folders(imagenet_root):
    train, test = get_dataset("imagenet", imagenet_root, "train"), get_dataset("imagenet", imagenet_root, "test")
    assert len(train.classes) == len(test.classes) == 1000
    assert train.root.endswith("train") and test.root.endswith("val")
    assert train.targets == list(range(1000))  # one image per class, labels = sorted class index


@pytest.mark.parametrize("name", sorted(FINE_GRAINED_CLASSES))
def test_fine_grained_sets_read_train_and_test_class_folders(tmp_path, name):
    write_dataset(name, tmp_path)
    for split in ("train", "test"):
        ds = get_dataset(name, tmp_path, split)
        assert len(ds.classes) == FINE_GRAINED_CLASSES[name] == dataset_info(name).n_classes
        assert sorted(set(ds.targets)) == list(range(FINE_GRAINED_CLASSES[name]))
        assert ds[0][0].mode == "RGB"


def test_image_folder_labels_follow_sorted_class_names(tmp_path):
    written = write_image_folder(tmp_path, ["train", "test"], ["zebra", "ant", "moth"], per_class=2)
    ds = get_dataset("folder", tmp_path, "train")
    assert ds.classes == ["ant", "moth", "zebra"]
    got = {Path(p).name + Path(p).parent.name: label for p, label in ds.samples}
    assert got == {Path(p).name + Path(p).parent.name: label for p, label in written["train"]}
    assert all(ds[i][1] == ds.targets[i] for i in range(len(ds)))


def test_hidden_folders_and_files_are_not_classes_or_images(tmp_path):
    # a notebook's checkpoints folder and macOS's AppleDouble files (._NAME.jpg, not images) are left out
    written = write_image_folder(tmp_path, ["train", "test"], ["ant", "bee"], per_class=2)
    for split in ("train", "test"):
        (tmp_path / split / ".ipynb_checkpoints").mkdir()
        (tmp_path / split / ".ipynb_checkpoints" / "x.png").write_bytes(b"")
        (tmp_path / split / "ant" / "._0.png").write_bytes(b"\x00\x05\x16\x07")
    for split in ("train", "test"):
        ds = get_dataset("folder", tmp_path, split)
        assert ds.classes == ["ant", "bee"]
        assert sorted(p for p, _ in ds.samples) == sorted(str(p) for p, _ in written[split])
        ds[0]


def test_folder_prefers_test_and_falls_back_to_val(tmp_path):
    write_image_folder(tmp_path, ["train", "val"], ["a", "b"], per_class=1)
    assert get_dataset("folder", tmp_path, "test").root.endswith("val")
    write_image_folder(tmp_path, ["test"], ["a", "b"], per_class=3)
    assert len(get_dataset("folder", tmp_path, "test")) == 6


def test_cinic10_train_is_train_plus_valid(tmp_path):
    written = write_image_folder(tmp_path, ["train", "valid", "test"], [f"c{i}" for i in range(10)],
                                 per_class=1, size=(32, 32))
    train = get_dataset("cinic10", tmp_path, "train")
    assert len(train) == 20 and len(get_dataset("cinic10", tmp_path, "test")) == 10
    assert sorted(p for p, _ in train.samples) == sorted(str(p) for s in ("train", "valid") for p, _ in written[s])
    assert train.targets == [label for _, label in train.samples]
    image, label = train[len(train) - 1]  # an item from valid/
    assert image.size == (32, 32) and label == train.targets[-1]


# ------------------------------------------------------------------------------------ digits


def test_digits_is_sklearn_load_digits_with_a_fixed_stratified_split():
    from sklearn.datasets import load_digits

    digits = load_digits()
    train, test = get_dataset("digits", None, "train"), get_dataset("digits", None, "test")
    assert (len(train), len(test)) == (1437, 360)
    # class proportions kept: every class has 35..37 of the 360 test images
    counts = np.bincount(test.targets, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    # every image is one of sklearn's, with its label, scaled 0..16 -> 0..255 and served as grey RGB
    lookup = {np.rint(img * 255 / 16).astype(np.uint8).tobytes(): int(t) for img, t in zip(digits.images,
                                                                                          digits.target)}
    for ds in (train, test):
        for i in range(0, len(ds), 97):
            image, label = ds[i]
            rgb = pixels(image)
            assert rgb.shape == (8, 8, 3) and (rgb[..., 0] == rgb[..., 2]).all()
            assert lookup[rgb[..., 0].tobytes()] == label
    again = get_dataset("digits", None, "test")
    assert again.targets == test.targets and (again.images == test.images).all()


def test_a_folder_for_digits_is_refused_without_calling_digits_the_default(tmp_path):
    # was "(digits is --dataset's default)", untrue of train_cifar.py (cifar10), train_imagenet.py and validation.py
    with pytest.raises(ValueError) as refused:
        get_dataset("digits", tmp_path, "train")
    assert str(refused.value) == (f"--data {tmp_path}: the data set is digits, scikit-learn's built-in one, which "
                                  f"reads no folder; for the data set in {tmp_path}, name it with --dataset (a script "
                                  f"whose --dataset defaults to digits reads digits when --dataset is left out)")


def test_digits_normalisation_is_the_training_split_pixel_statistics():
    train = get_dataset("digits", None, "train")
    values = train.images.astype(np.float64) / 255.0
    info = dataset_info("digits")
    assert info.mean == pytest.approx((values.mean(),) * 3, abs=1e-4)
    assert info.std == pytest.approx((values.std(),) * 3, abs=1e-4)


# --------------------------------------------------------------------------------- transforms


def test_eval_geometry_uses_the_dataset_crop_ratio():
    assert eval_geometry("imagenet", 224) == (256, 224)
    assert eval_geometry("imagenet", 192) == (220, 192)  # ceil(192 / 0.875) = ceil(219.4)
    assert eval_geometry("cifar10", 224) == (224, 224)
    with pytest.raises(ValueError, match="image size"):
        eval_geometry("cifar10", 0)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("size", [32, 64])
def test_transforms_output_shape_and_normalisation(name, size):
    info = dataset_info(name)
    colour = (200, 100, 30)
    image = Image.new("RGB", (info.native_size or 50, info.native_size or 40), colour)
    expected = (torch.tensor(colour) / 255.0 - torch.tensor(info.mean)) / torch.tensor(info.std)
    flat = expected.view(3, 1, 1).expand(3, size, size)
    # a flat colour stays flat through crops and resizes: only the normalisation changes it
    x = eval_transform(name, size)(image)
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    torch.testing.assert_close(x, flat, atol=1e-5, rtol=0)
    # training may zero-pad the borders (pad+crop); the centre is always image
    x = train_transform(name, size)(image)
    centre = slice(3 * size // 8, 5 * size // 8)
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, centre, centre], flat[:, centre, centre], atol=1e-5, rtol=0)


def test_eval_transform_center_crops_photos():
    # left half black, right half white, 400x300; eval at 112 crops the central 112/128 of the short side
    image = np.zeros((300, 400, 3), np.uint8)
    image[:, 200:] = 255
    x = eval_transform("folder", 112)(Image.fromarray(image))
    grey = x[0] * dataset_info("folder").std[0] + dataset_info("folder").mean[0]
    assert x.shape == (3, 112, 112)
    assert grey[:, :50].max() < 0.01 and grey[:, 62:].min() > 0.99  # the edge stays at the centre


def test_train_transform_never_flips_digits_but_does_flip_cifar():
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :3] = 255  # bright left columns
    torch.manual_seed(0)
    transform = train_transform("digits", 8)
    for _ in range(30):  # pad-and-crop shifts by at most 1 px: left stays brighter than right
        x = transform(Image.fromarray(image))
        assert x[0, :, :4].mean() > x[0, :, 4:].mean()
    cifar = np.zeros((32, 32, 3), np.uint8)
    cifar[:, :12] = 255
    transform = train_transform("cifar10", 32)
    flipped = [bool(transform(Image.fromarray(cifar))[0, :, 16:].mean() > 0) for _ in range(30)]
    assert any(flipped) and not all(flipped)


# ------------------------------------------------------------------------------------- split


def test_validation_split_is_seeded_disjoint_and_complete():
    train, vld = train_validation_split(1000, 100, seed=0)
    assert len(vld) == 100 and len(train) == 900
    assert np.array_equal(np.sort(np.concatenate([train, vld])), np.arange(1000))
    again = train_validation_split(1000, 100, seed=0)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], vld)
    other = train_validation_split(1000, 100, seed=1)
    assert not np.array_equal(other[1], vld)
    # independent reference: the first vld_size entries of numpy's seeded permutation
    assert np.array_equal(vld, np.sort(np.random.default_rng(0).permutation(1000)[:100]))


@pytest.mark.parametrize("n, vld", [(10, 0), (10, 10), (10, -1), (1, 1)])
def test_validation_split_rejects_impossible_sizes(n, vld):
    with pytest.raises(ValueError, match="validation split|vld_size"):
        train_validation_split(n, vld)


# ------------------------------------------------------------------------------------ errors


def one_line_error(name: str, root, split: str = "train") -> str:
    with pytest.raises(ValueError) as error:
        get_dataset(name, root, split)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{name}: ")
    return message


def test_missing_folders_give_one_line_saying_what_was_expected(tmp_path):
    message = one_line_error("cifar10", tmp_path)
    assert message == (f"cifar10: expected torchvision's CIFAR-10 python folder 'cifar-10-batches-py' (with "
                       f"data_batch_1..5, test_batch and batches.meta) under {tmp_path}; not found")
    assert "'cifar-100-python'" in one_line_error("cifar100", tmp_path)
    assert "'stl10_binary'" in one_line_error("stl10", tmp_path)
    for name in ["imagenet", "cinic10", "flowers102", "dtd", "pets", "aircraft", "folder"]:
        message = one_line_error(name, tmp_path)
        assert "ImageFolder tree" in message and f"{tmp_path / 'train'} not found" in message
    assert "does not exist" in one_line_error("imagenet", tmp_path / "nowhere")
    assert "no data folder given" in one_line_error("imagenet", None)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        get_dataset("digits", None, "val")


def test_malformed_cifar_folders(tmp_path):
    write_cifar10(tmp_path)
    base = tmp_path / "cifar-10-batches-py"
    (base / "data_batch_3").unlink()
    assert f"missing data_batch_3 in {base}" in one_line_error("cifar10", tmp_path)
    assert len(get_dataset("cifar10", tmp_path, "test")) == 4  # the test split does not need it
    (base / "test_batch").write_bytes(b"not a pickle")
    assert "test_batch: not a CIFAR batch file" in one_line_error("cifar10", tmp_path, "test")
    bad = {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}
    (base / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    assert "'data' is not a uint8 array (N, 3072)" in one_line_error("cifar10", tmp_path, "test")
    bad = {"data": np.zeros((2, 3072), np.uint8), "labels": [0]}
    (base / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    assert "'labels' missing or not one per image" in one_line_error("cifar10", tmp_path, "test")
    bad = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}
    (base / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    assert "labels outside 0..9" in one_line_error("cifar10", tmp_path, "test")


class _RunsCode:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_cifar_reader_never_runs_code_from_a_pickle(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    payload = {"data": _RunsCode(str(marker)), "labels": []}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(payload, protocol=2))
    message = one_line_error("cifar10", tmp_path, "test")
    assert "not a CIFAR batch file (UnpicklingError: refusing to load global" in message
    assert not marker.exists()


def test_malformed_stl10_folders(tmp_path):
    write_stl10(tmp_path)
    base = tmp_path / "stl10_binary"
    (base / "test_y.bin").unlink()
    assert f"missing test_y.bin in {base}" in one_line_error("stl10", tmp_path, "test")
    (base / "train_X.bin").write_bytes(b"\0" * 1000)
    assert "is not a positive multiple of 27648 bytes" in one_line_error("stl10", tmp_path)
    (base / "train_X.bin").write_bytes(b"\0" * 27648 * 2)
    assert "5 labels for 2 images" in one_line_error("stl10", tmp_path)
    (base / "train_y.bin").write_bytes(bytes([0, 3]))
    assert "labels outside 1..10" in one_line_error("stl10", tmp_path)
    (base / "train_y.bin").write_bytes(bytes([1, 3]))
    (base / "class_names.txt").write_text("cat\ndog\n")  # labels 1..10 would index past two names
    assert "class_names.txt: 2 class names, STL-10 has 10" in one_line_error("stl10", tmp_path)


def test_malformed_image_folders(tmp_path):
    write_image_folder(tmp_path, ["train"], ["a", "b", "c"])
    assert f"{tmp_path / 'val'} not found" in one_line_error("imagenet", tmp_path, "test")
    message = one_line_error("imagenet", tmp_path)
    assert "has 3 class folders; for another class set use dataset 'folder'" in message
    (tmp_path / "train" / "d").mkdir()  # a class folder without images
    assert "Found no valid file for the classes d" in one_line_error("folder", tmp_path)
    cinic = tmp_path / "cinic"
    write_image_folder(cinic, ["train", "test"], [f"c{i}" for i in range(10)], size=(32, 32))
    write_image_folder(cinic, ["valid"], [f"x{i}" for i in range(10)], size=(32, 32))
    assert "hold different class folders" in one_line_error("cinic10", cinic)


def test_a_test_split_with_other_class_folders_than_train_is_refused(tmp_path):
    # labels are indices into each split's sorted class folders: bee would be 1 in train and 0 in test
    write_image_folder(tmp_path, ["train"], ["ant", "bee", "cat"])
    write_image_folder(tmp_path, ["test"], ["bee", "cat"])
    message = one_line_error("folder", tmp_path, "test")
    assert "hold different class folders (only in train: ['ant']; only in test: none)" in message
    assert len(get_dataset("folder", tmp_path, "train")) == 3  # train alone is fine


def test_an_unreadable_image_is_one_line_naming_it(tmp_path):
    import subprocess
    import sys

    write_image_folder(tmp_path, ["train", "test"], ["a", "b"], per_class=2)
    broken = tmp_path / "train" / "b" / "broken.png"
    broken.write_bytes(b"not an image")
    ds = get_dataset("folder", tmp_path, "train")
    index = [p for p, _ in ds.samples].index(str(broken))
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        ds[index]
    # through a DataLoader worker and a script: one line, no traceback
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "train_cifar.py"), "--dataset", "folder", "--data", str(tmp_path),
                          "--net_type", "micro", "--layers", "3", "--init_channels", "4", "--epochs", "1", "-b", "2",
                          "-j", "1", "--save", str(tmp_path / "run"), "--quiet"], capture_output=True, text=True,
                         cwd=root, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().count("\n") == 0 and "broken.png: not a readable image" in out.stderr


def test_sixteen_bit_greyscale_pngs_keep_their_grey_levels(tmp_path):
    # A 16-bit PNG (mode I;16) holds 0..65535; its 8-bit grey level is round(v * 255 / 65535) = round(v / 257).
    # PIL's convert("RGB") clips instead, so nearly every pixel of such an image would become 255.
    write_image_folder(tmp_path, ["train"], ["a", "b"])
    values = (np.arange(24 * 20, dtype=np.int64).reshape(20, 24) * 137) % 65536
    path = tmp_path / "train" / "b" / "deep.png"
    Image.fromarray(values.astype(np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    ds = get_dataset("folder", tmp_path, "train")
    image, label = ds[[p for p, _ in ds.samples].index(str(path))]
    expected = np.rint(values / 257.0)
    got = np.asarray(image).astype(np.int64)
    assert label == 1 and image.mode == "RGB" and got.shape == (20, 24, 3)
    for c in range(3):
        assert np.abs(got[..., c] - expected).max() <= 1


def test_palette_and_transparent_images_convert_through_rgba_without_pils_warning(tmp_path):
    # a palette PNG with an alpha table (pngquant, TinyPNG) converted straight to RGB made PIL print "Palette images
    # with Transparency expressed in bytes should be converted to RGBA images" once per process, naming no file
    import warnings

    from codebase.data.formats import read_rgb_image
    from tests.data_fixtures import smooth_images

    rgb = smooth_images(1, 20, 24, seed=5)[0]
    files = {"alpha_table.png": (Image.fromarray(rgb).quantize(16), {"transparency": bytes([0, 128] + [255] * 14)}),
             "one_index.png": (Image.fromarray(rgb).quantize(16), {"transparency": 3}),
             "grey_key.png": (Image.fromarray(rgb).convert("L"), {"transparency": 0}),
             "rgb_key.png": (Image.fromarray(rgb), {"transparency": (0, 0, 0)})}
    for name, (image, options) in files.items():
        image.save(tmp_path / name, **options)
        with Image.open(tmp_path / name) as saved:
            assert "transparency" in saved.info
            expected = np.asarray(saved.convert("RGBA").convert("RGB"))
            if saved.mode == "P":  # alpha dropped: each pixel its palette colour
                palette = np.asarray(saved.getpalette(), dtype=np.uint8).reshape(-1, 3)
                assert np.array_equal(expected, palette[np.asarray(saved)])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            image = read_rgb_image(str(tmp_path / name))
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), expected), name


def test_files_of_image_types_the_folders_do_not_read_are_named_not_skipped_silently(tmp_path):
    # passing is_valid_file turns off torchvision's extension list in its messages: 16 files gave 15 samples without a
    # word, and a class of .gif files only was "Found no valid file for the classes zebra." with no hint
    import warnings

    write_image_folder(tmp_path, ["train", "test"], ["cat", "dog", "zebra"], per_class=2)
    png = Image.open(tmp_path / "train" / "cat" / "0.png")
    png.save(tmp_path / "train" / "cat" / "2.gif")
    png.convert("RGB").save(tmp_path / "train" / "dog" / "2.jfif", format="JPEG")
    png.save(tmp_path / "train" / "dog" / "._3.gif")  # a macOS resource fork: hidden, not counted
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image type")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own: each text once
        for _ in range(2):  # a run builds its data set several times: said once
            assert len(get_dataset("folder", tmp_path, "train")) == 6  # as before: what runs trained on stays
    assert [str(w.message) for w in caught] == [
        f"{tmp_path / 'train'}: 2 files of other image types left out (e.g. cat/2.gif); accepted extensions: .jpg, "
        f".jpeg, .png, .ppm, .bmp, .pgm, .tif, .tiff, .webp (any case): convert them to one of these to use them"]
    for path in (tmp_path / "test" / "zebra").iterdir():
        Image.open(path).save(path.with_suffix(".gif"))
        path.unlink()
    message = one_line_error("folder", tmp_path, "test")
    assert message.endswith(f"{tmp_path / 'test'}: Found no valid file for the classes zebra. (2 files of other image "
                            f"types left out (e.g. zebra/0.gif); accepted extensions: .jpg, .jpeg, .png, .ppm, .bmp, "
                            f".pgm, .tif, .tiff, .webp (any case): convert them to one of these to use them)"), message
    (tmp_path / "test" / "zebra" / "0.gif").unlink()
    (tmp_path / "test" / "zebra" / "1.gif").unlink()
    assert one_line_error("folder", tmp_path, "test").endswith(
        "Found no valid file for the classes zebra. (accepted extensions: .jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, "
        ".tiff, .webp (any case))")


def test_a_floating_point_image_is_one_line_naming_it(tmp_path):
    # PIL's convert("RGB") of a 32-bit float image (mode F) clips it to 0..255: 0..1 data would turn black
    write_image_folder(tmp_path, ["train"], ["a", "b"])
    path = tmp_path / "train" / "a" / "float.tif"
    Image.fromarray(np.linspace(0, 1, 20 * 24, dtype=np.float32).reshape(20, 24)).save(path)
    assert Image.open(path).mode == "F"
    ds = get_dataset("folder", tmp_path, "train")
    with pytest.raises(ValueError, match=r"float.tif: .*floating-point") as error:
        ds[[p for p, _ in ds.samples].index(str(path))]
    assert "\n" not in str(error.value)


def test_a_32_bit_integer_image_beyond_16_bits_is_one_line_naming_it(tmp_path):
    # mode I (32-bit integers) was scaled as 16-bit and clipped: a TIFF of a * 1000 came out near-white (mean 218.8)
    write_image_folder(tmp_path, ["train"], ["a", "b"])
    grey = (np.arange(20 * 24, dtype=np.int32).reshape(20, 24) * 7) % 256
    refused = {"wide.tif": (grey * 1000, "0..255000"), "negative.tif": (grey - 5, "-5..250")}
    for name, (values, _) in refused.items():
        Image.fromarray(values.astype(np.int32)).save(tmp_path / "train" / "a" / name)
        assert Image.open(tmp_path / "train" / "a" / name).mode == "I"
    Image.fromarray((grey * 257).astype(np.int32)).save(tmp_path / "train" / "b" / "fits.tif")  # within 0..65535
    ds = get_dataset("folder", tmp_path, "train")
    paths = [p for p, _ in ds.samples]
    for name, (_, shown) in refused.items():
        with pytest.raises(ValueError, match=rf"{name}: a 32-bit integer image \(PIL mode I\) with values {shown}, "
                                             r"outside the 16-bit range 0..65535, .*save it with 8 or 16") as error:
            ds[paths.index(str(tmp_path / "train" / "a" / name))]
        assert "\n" not in str(error.value)
    image, _ = ds[paths.index(str(tmp_path / "train" / "b" / "fits.tif"))]
    assert np.array_equal(np.asarray(image)[..., 0], grey)  # v / 257, as a 16-bit image


def test_a_folder_with_one_class_folder_is_refused(tmp_path):
    # README: `folder` needs at least 2 class folders; with one, every label is 0 and any network scores 100%
    write_image_folder(tmp_path, ["train", "test"], ["only"], per_class=2)
    for split in ("train", "test"):
        message = one_line_error("folder", tmp_path, split)
        assert "has 1 class folder (only); classification needs at least 2" in message


def test_data_naming_a_file_says_so(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    message = one_line_error("cifar10", archive)
    assert message.endswith("it is a file, not a folder (unpack an archive first)")


def test_stl10_accepts_the_binary_folder_itself_as_root(tmp_path):
    write_stl10(tmp_path)
    assert len(get_dataset("stl10", tmp_path / "stl10_binary", "test")) == 3


def test_a_flat_imagenet_val_folder_gets_a_hint(tmp_path):
    # ILSVRC2012_img_val.tar unpacks to 50,000 images in one folder; ImageFolder needs one folder per class
    write_image_folder(tmp_path, ["train"], [f"n{i:08d}" for i in range(1000)], distinct=False)
    (tmp_path / "val").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    message = one_line_error("imagenet", tmp_path, "test")
    assert "holds images directly: sort them into one folder per class" in message


# ------------------------------------------------------------------- fine-grained official releases

RELEASE_FOLDERS = {"flowers102": "", "dtd": "dtd", "pets": "oxford-iiit-pet", "aircraft": "fgvc-aircraft-2013b"}


@pytest.mark.parametrize("name", sorted(RELEASE_WRITERS))
def test_fine_grained_sets_read_their_official_release(tmp_path, name):
    # as distributed: their own image lists and label files (1-based labels, .mat files, variant names), no
    # train/ and test/ class folders; "train" = official train + val, as NSGANetV2 used them
    written = RELEASE_WRITERS[name](tmp_path)
    for root in (tmp_path, tmp_path / RELEASE_FOLDERS[name]):  # the unpacked folder or the one holding it
        for split in ("train", "test"):
            ds = get_dataset(name, root, split)
            assert ds.classes == written["classes"] and len(ds.classes) == dataset_info(name).n_classes
            assert ds.samples == [(str(path), label) for path, label in written[split]]
            assert ds.targets == [label for _, label in written[split]]
    ds = get_dataset(name, tmp_path, "train")
    image, label = ds[0]
    assert image.mode == "RGB" and image.size == (24, 20) and label == ds.targets[0]
    if name == "pets":  # its CMYK and grey JPEGs come out RGB
        assert get_dataset(name, tmp_path, "train")[1][0].mode == "RGB"


@pytest.mark.parametrize("name", sorted(RELEASE_WRITERS))
def test_broken_official_releases_are_one_line(tmp_path, name):
    written = RELEASE_WRITERS[name](tmp_path)
    Path(written["test"][-1][0]).unlink()
    message = one_line_error(name, tmp_path, "test")
    assert "1 of the" in message and "test images are missing, e.g." in message
    assert "or the official release" in message
    split_file, entry = {"flowers102": ("setid.mat", "setid.mat"),
                         "dtd": ("dtd/labels/val1.txt", "labels/val1.txt"),
                         "pets": ("oxford-iiit-pet/annotations/test.txt", "annotations/test.txt"),
                         "aircraft": ("fgvc-aircraft-2013b/data/images_variant_test.txt",
                                      "images_variant_test.txt")}[name]
    (tmp_path / split_file).unlink()
    assert one_line_error(name, tmp_path, "train").endswith(f"but not {entry}")


def test_garbled_official_split_files_are_one_line(tmp_path):
    RELEASE_WRITERS["flowers102"](tmp_path)
    (tmp_path / "setid.mat").write_bytes(b"not a mat file")
    assert "unreadable split or label file (ValueError: setid.mat: " in one_line_error("flowers102", tmp_path)
    RELEASE_WRITERS["aircraft"](tmp_path / "a")
    with open(tmp_path / "a" / "fgvc-aircraft-2013b" / "data" / "images_variant_test.txt", "a") as f:
        f.write("0000001 Boeing 999\n")
    assert "KeyError: 'Boeing 999'" in one_line_error("aircraft", tmp_path / "a", "test")


def test_prepared_class_folders_take_precedence_over_a_release(tmp_path):
    RELEASE_WRITERS["dtd"](tmp_path)
    write_dataset("dtd", tmp_path)
    assert get_dataset("dtd", tmp_path, "train").root == str(tmp_path / "train")


@pytest.mark.parametrize("labels", [[2.5, 1.0], "ab", {0: 1, 1: 2}, [[1], [2]], [True, False], [None, 1]])
def test_cifar_labels_that_are_not_integers_are_one_line_naming_the_file(tmp_path, labels):
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": labels}, protocol=2))
    # was: 2.5 read silently as class 2, or a TypeError traceback / a numpy message naming no file
    assert f"{batch}: 'labels' is not a list of integer class indices" in one_line_error("cifar10", tmp_path, "test")


@pytest.mark.parametrize("names", [7, [1] * 10, None, "c" * 10, np.zeros(10)])
def test_cifar_class_names_that_are_not_a_list_of_names_are_one_line(tmp_path, names):
    write_cifar10(tmp_path)
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({"label_names": names}, protocol=2))
    # was: a TypeError traceback ('int' object is not iterable), numpy's "truth value of an array is ambiguous",
    # or ten one-letter names
    assert f"{meta}: 'label_names' does not list 10 class names" in one_line_error("cifar10", tmp_path, "test")
    meta.write_bytes(pickle.dumps({"label_names": np.array([f"c{i}" for i in range(10)])}, protocol=2))
    assert get_dataset("cifar10", tmp_path, "test").classes == [f"c{i}" for i in range(10)]


def test_cifar_integer_labels_of_any_integer_type_are_read(tmp_path):
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    for labels in (np.array([3, 9], np.uint8), (3, 9), np.array([3.0, 9.0]), [3.0, 9]):
        batch.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": labels}, protocol=2))
        assert get_dataset("cifar10", tmp_path, "test").targets == [3, 9]


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_labels_held_as_numpy_integers_are_read(tmp_path, protocol):
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    labels = list(np.array([3, 9], np.int64))  # a batch written from a numpy label array: numpy scalars
    batch.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": labels}, protocol=protocol))
    # was: "not a CIFAR batch file (UnpicklingError: refusing to load global numpy._core.multiarray.scalar)"
    assert get_dataset("cifar10", tmp_path, "test").targets == [3, 9]


def test_an_image_over_pils_decompression_bomb_limit_is_one_line_naming_it(tmp_path, monkeypatch):
    write_image_folder(tmp_path, ["train"], ["a", "b"])
    path = tmp_path / "train" / "a" / "0.png"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 20 x 24 = 480 pixels: over twice the limit, as a huge photo
    ds = get_dataset("folder", tmp_path, "train")
    # was: PIL's DecompressionBombError traceback naming no file
    with pytest.raises(ValueError, match=r"0.png: over PIL's limit against decompression bombs \(Image size \(480 "
                                         r"pixels\) exceeds limit of 200 pixels.*\); downscale it") as error:
        ds[[p for p, _ in ds.samples].index(str(path))]
    assert "\n" not in str(error.value)
