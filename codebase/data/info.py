"""What each data set is: class count, normalisation, image sizes, crop ratio, expected on-disk layout.

One table, read by the loaders (layout in error messages), the transforms (mean/std, crop ratio,
flip) and the scripts (class count, default image size).
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one data set.

    n_classes: None for `folder` (read it from the data: len(dataset.classes)).
    image_size: default network input resolution (fine-tuning, validation) when none is given.
    native_size: side of the stored images when every image has the same square size (CIFAR: 32),
        else None. Fixed-size sets are padded+cropped for training and upscaled for the network.
    crop_ratio: eval transform = resize the short side to ceil(image_size / crop_ratio), then
        center-crop image_size. 0.875 for photos of varying size, 1.0 for tightly framed fixed-size sets.
    hflip: whether random horizontal flips are a valid augmentation (not for digits).
    layout: the expected on-disk layout under the data root, quoted in error messages.
    """

    name: str
    n_classes: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    native_size: int | None
    crop_ratio: float
    hflip: bool
    layout: str


def _image_folder_layout(test_dir: str, n_classes: int, extra: str = "") -> str:
    return (
        f"an ImageFolder tree <root>/train/<class>/<images> and <root>/{test_dir}/<class>/<images> "
        f"with {n_classes} class folders each{extra}"
    )


_FINE_GRAINED_NOTE = " (prepared offline, the layout the original NSGANetV2 used)"


def _fine_grained_layout(n_classes: int, release: str) -> str:
    return _image_folder_layout("test", n_classes, _FINE_GRAINED_NOTE) + f", or the official release ({release})"


_INFOS = [
    DatasetInfo("imagenet", 1000, IMAGENET_MEAN, IMAGENET_STD, 224, None, 0.875, True,
                _image_folder_layout("val", 1000)),
    DatasetInfo("cifar10", 10, (0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768),
                224, 32, 1.0, True,
                "torchvision's CIFAR-10 python folder 'cifar-10-batches-py' "
                "(with data_batch_1..5, test_batch and batches.meta)"),
    DatasetInfo("cifar100", 100, (0.50707516, 0.48654887, 0.44091784), (0.26733429, 0.25643846, 0.27615047),
                224, 32, 1.0, True,
                "torchvision's CIFAR-100 python folder 'cifar-100-python' (with train, test and meta)"),
    DatasetInfo("cinic10", 10, (0.47889522, 0.47227842, 0.43047404), (0.24205776, 0.23828046, 0.25874835),
                224, 32, 1.0, True,
                "CINIC-10 ImageFolder trees <root>/train, <root>/valid and <root>/test "
                "with 10 class folders each"),
    DatasetInfo("stl10", 10, (0.44671097, 0.4398105, 0.4066468), (0.2603405, 0.25657743, 0.27126738),
                224, 96, 1.0, True,
                "torchvision's STL-10 binary folder 'stl10_binary' "
                "(with train_X.bin, train_y.bin, test_X.bin and test_y.bin)"),
    DatasetInfo("flowers102", 102, (0.5178361839861569, 0.4106749456881299, 0.32864167836880803),
                (0.2972239085211309, 0.24976049135203868, 0.28533308036347665), 224, None, 0.875, True,
                _fine_grained_layout(102, "jpg/, imagelabels.mat and setid.mat")),
    DatasetInfo("dtd", 47, (0.5329876098715876, 0.474260843249454, 0.42627281899380676),
                (0.26549755708788914, 0.25473554309855373, 0.2631728035662832), 224, None, 0.875, True,
                _fine_grained_layout(47, "dtd/images/<class>/ and dtd/labels/{train,val,test}1.txt")),
    DatasetInfo("pets", 37, (0.4828895122298728, 0.4448394893850807, 0.39566558230789783),
                (0.25925664613996574, 0.2532760018681693, 0.25981017205097917), 224, None, 0.875, True,
                _fine_grained_layout(37, "images/ and annotations/{trainval,test}.txt")),
    DatasetInfo("aircraft", 100, (0.48933587508932375, 0.5183537408957618, 0.5387914411673883),
                (0.22388883112804625, 0.21641635409388751, 0.24615605842636115), 224, None, 0.875, True,
                _fine_grained_layout(100, "fgvc-aircraft-2013b/data/ with images/, variants.txt and "
                                          "images_variant_{trainval,test}.txt")),
    DatasetInfo("folder", None, IMAGENET_MEAN, IMAGENET_STD, 224, None, 0.875, True,
                "an ImageFolder tree <root>/train/<class>/<images> and <root>/test/<class>/<images> "
                "(or <root>/val/<class>/<images>) with the same class folders in both"),
    # Grey 8x8 digits served as RGB; mean/std of the training split's pixels (scaled 0..16 -> 0..1).
    DatasetInfo("digits", 10, (0.30543, 0.30543, 0.30543), (0.37596, 0.37596, 0.37596),
                32, 8, 1.0, False, "nothing: scikit-learn's built-in load_digits"),
]

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in _INFOS}


def dataset_names() -> list[str]:
    return list(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None
