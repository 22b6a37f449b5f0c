"""Data sets: loaders for each on-disk format, transforms, the validation split, the uint8 image cache.

    ds = get_dataset("cifar10", "/data/cifar", "train", transform=eval_transform("cifar10", 224))
    train_idx, vld_idx = train_validation_split(len(ds), vld_size=5000, seed=0)
"""

from codebase.data.cache import (
    decode_uint8_subset,
    storage_size,
    storage_transform,
    uint8_cache_bytes,
    uint8_to_input,
)
from codebase.data.datasets import SPLITS, get_dataset
from codebase.data.info import DatasetInfo, dataset_info, dataset_names
from codebase.data.split import VALID_SEED, train_validation_split
from codebase.data.transforms import eval_geometry, eval_transform, normalize, train_transform

__all__ = [
    "SPLITS",
    "DatasetInfo",
    "dataset_info",
    "dataset_names",
    "decode_uint8_subset",
    "eval_geometry",
    "eval_transform",
    "get_dataset",
    "normalize",
    "storage_size",
    "storage_transform",
    "train_transform",
    "train_validation_split",
    "VALID_SEED",
    "uint8_cache_bytes",
    "uint8_to_input",
]
