"""Train and eval transforms for every data set.

`eval_transform` is the ONE eval pipeline: the search's evaluator, validation.py and the fine-tuning
scripts all call it (or its uint8 twin in codebase/data/cache.py, which shares `eval_geometry`), so
their preprocessing cannot drift apart. All resizing is bicubic (PIL's, antialiased when shrinking).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torchvision import transforms as T

from codebase.data.info import dataset_info

BICUBIC = T.InterpolationMode.BICUBIC


def eval_geometry(name: str, image_size: int) -> tuple[int, int]:
    """(resize, crop): resize the short side to `resize`, then center-crop `crop` = image_size."""
    if image_size < 1:
        raise ValueError(f"image size must be a positive number of pixels, got {image_size}")
    crop_ratio = dataset_info(name).crop_ratio
    # round() first so that 224 / 1.0 or 196 / 0.875 do not become one pixel larger through float error
    return math.ceil(round(image_size / crop_ratio, 6)), image_size


def eval_crop(name: str, image_size: int) -> Callable:
    """The eval geometry alone, on PIL images (no tensor conversion)."""
    resize, crop = eval_geometry(name, image_size)
    return T.Compose([T.Resize(resize, interpolation=BICUBIC), T.CenterCrop(crop)])


def normalize(name: str) -> T.Normalize:
    info = dataset_info(name)
    return T.Normalize(info.mean, info.std)


def eval_transform(name: str, image_size: int) -> Callable:
    """PIL image -> normalised float tensor (3, image_size, image_size) for testing/validation."""
    return T.Compose([eval_crop(name, image_size), T.ToTensor(), normalize(name)])


def train_transform(name: str, image_size: int) -> Callable:
    """PIL image -> augmented, normalised float tensor (3, image_size, image_size).

    Fixed-size sets (CIFAR, CINIC-10, STL-10, digits): random crop after zero-padding by 1/8 of the
    side at the native size (4 px on CIFAR), then a bicubic resize to image_size.
    Photo sets (ImageNet, fine-grained, folder): RandomResizedCrop(scale 0.08..1).
    Horizontal flips everywhere except digits.
    """
    info = dataset_info(name)
    if image_size < 1:
        raise ValueError(f"image size must be a positive number of pixels, got {image_size}")
    if info.native_size is not None:
        native = info.native_size
        steps = [T.RandomCrop(native, padding=max(1, native // 8))]
        if image_size != native:
            steps.append(T.Resize(image_size, interpolation=BICUBIC))
    else:
        steps = [T.RandomResizedCrop(image_size, scale=(0.08, 1.0), interpolation=BICUBIC)]
    if info.hflip:
        steps.append(T.RandomHorizontalFlip())
    return T.Compose([*steps, T.ToTensor(), normalize(name)])
