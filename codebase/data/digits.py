"""scikit-learn's built-in handwritten digits (load_digits): real data that needs no download.

1,797 grey 8x8 images, 10 classes, pixel values 0..16 (scaled here to 0..255 and served as RGB).
Fixed split: scikit-learn's train_test_split(test_size=360, stratify=labels, random_state=0),
i.e. 1,437 training and 360 test images with the class proportions kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0


def digits_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 8, 8), labels int64 (N,)) of the fixed train/test split (read-only arrays)."""
    return _digits_splits()[split]


@functools.cache
def _digits_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=DIGITS_TEST_SIZE,
                                           stratify=labels, random_state=DIGITS_SPLIT_SEED)
    splits = {}
    for split, idx in (("train", np.sort(train_idx)), ("test", np.sort(test_idx))):
        arrays = images[idx], labels[idx]
        for a in arrays:
            a.setflags(write=False)  # shared by every DigitsDataset
        splits[split] = arrays
    return splits


class DigitsDataset(Dataset):
    """ds[i] -> (8x8 RGB PIL image, label); .classes '0'..'9', .targets."""

    def __init__(self, split: str, transform: Callable | None = None) -> None:
        self.images, labels = digits_arrays(split)
        self.targets = labels.tolist()
        self.classes = [str(d) for d in range(10)]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index]).convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]
