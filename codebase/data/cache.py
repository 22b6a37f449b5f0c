"""Decode evaluation images once into uint8 memory; resize and normalise them on the device.

The search evaluates hundreds of sub-networks at several resolutions on the same few thousand
images (BN calibration + validation). Decoding JPEGs for each would dominate; instead:

    images, labels = decode_uint8_subset(name, root, "train", vld_idx, max_resolution=256)
    x = uint8_to_input(images[i:j].to(device), name, resolution=r)   # float, normalised

Memory: N * 3 * S * S bytes, S = storage_size(name, max_resolution); e.g. ImageNet vld_size 10,000
at 256 px: 10,000 * 3 * 256 * 256 = 1.97 GB; CIFAR-10 5,000 at the native 32 px: 15.4 MB.

Fixed-size sets (CIFAR, CINIC-10, STL-10, digits; eval crop ratio 1) are stored at their native size,
so uint8_to_input does the same single bicubic resize as eval_transform. Photo sets are stored as the
eval crop at max_resolution and resized down from there, which differs from eval_transform at a
smaller resolution by a second resampling only (see tests/test_data_cache.py for the tolerance).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import transforms as T

from codebase.data.datasets import get_dataset
from codebase.data.info import dataset_info
from codebase.data.transforms import eval_crop


def storage_size(name: str, max_resolution: int) -> int:
    """Side in pixels of the cached images for the largest resolution the caller will ask for."""
    info = dataset_info(name)
    if info.native_size is not None and info.crop_ratio == 1.0:
        return info.native_size
    return max_resolution


def uint8_cache_bytes(n_images: int, size: int) -> int:
    return n_images * 3 * size * size


def storage_transform(name: str, max_resolution: int) -> T.Compose:
    """PIL image -> uint8 tensor (3, S, S): the eval geometry at the storage size, no normalisation."""
    return T.Compose([eval_crop(name, storage_size(name, max_resolution)), T.PILToTensor()])


def decode_uint8_subset(name: str, root: str | Path | None, split: str, indices: Sequence[int] | None = None,
                        max_resolution: int = 224, num_workers: int = 0,
                        batch_size: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 3, S, S), labels int64 (N,)) for `indices` of the split (all when None).

    Each image is decoded once with storage_transform; num_workers > 0 decodes in parallel.
    """
    dataset = get_dataset(name, root, split, transform=storage_transform(name, max_resolution))
    if indices is not None:
        dataset = Subset(dataset, [int(i) for i in indices])
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    images, labels = [], []
    for x, y in loader:
        images.append(x)
        labels.append(y)
    if not images:
        raise ValueError(f"{name}: no images to decode (empty index list)")
    return torch.cat(images), torch.cat(labels).to(torch.int64)


def _resize_like_pil(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """PIL's bicubic resize of a uint8 image, on float (N, 3, H, W) 0..255 data on any device.

    PIL resamples the width, then the height, rounding and clipping to uint8 after each pass; doing
    the same keeps every pixel within one grey level of PIL (one pass would differ by up to ~20 levels
    where bicubic overshoots on sharp edges). torch's antialiased bicubic uses PIL's kernel (a = -0.5).
    """
    height, width = x.shape[-2:]
    if width != resolution:
        x = F.interpolate(x, size=(height, resolution), mode="bicubic", antialias=True, align_corners=False)
        x = x.clamp_(0.0, 255.0).round_()
    if height != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", antialias=True, align_corners=False)
        x = x.clamp_(0.0, 255.0).round_()
    return x


def uint8_to_input(images: torch.Tensor, name: str, resolution: int) -> torch.Tensor:
    """uint8 (N, 3, S, S) on any device -> float32 (N, 3, resolution, resolution), normalised.

    Resized as PIL resizes (see _resize_like_pil), then normalised with the data set's mean/std:
    the same numbers as eval_transform(name, resolution) to within the tolerance stated in the
    module docstring.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a uint8 batch (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    info = dataset_info(name)
    if info.native_size is None and resolution > min(images.shape[-2:]):
        raise ValueError(f"{name}: images cached at {images.shape[-1]} px cannot serve resolution {resolution}; "
                         f"decode them at the largest resolution the search uses")
    x = _resize_like_pil(images.float(), resolution)
    mean = torch.tensor(info.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(info.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) * 255.0
    return (x - mean) / std
