"""uint8 image cache: decode once, resize + normalise on the device, same numbers as eval_transform.

Tolerances (normalised units; one grey level is 1 / (255 * std) ~ 0.016 for std ~ 0.25):
- cached at the requested resolution: exact (1e-5, float rounding only);
- fixed-size sets (stored native, one bicubic resize like PIL's): every pixel within 2 grey levels;
- photo sets resized down from the largest resolution: a second resampling, mean |diff| under
  4 grey levels on these noisy test images (measured ~2.3).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from codebase.data import (
    dataset_info,
    decode_uint8_subset,
    eval_transform,
    get_dataset,
    storage_size,
    storage_transform,
    uint8_cache_bytes,
    uint8_to_input,
)
from codebase.data.cache import _resize_like_pil
from tests.data_fixtures import smooth_images, write_cifar10, write_image_folder


def grey_level(name: str) -> float:
    return 1.0 / (255.0 * min(dataset_info(name).std))


def reference(name, root, split, indices, resolution) -> torch.Tensor:
    ds = get_dataset(name, root, split, transform=eval_transform(name, resolution))
    return torch.stack([ds[int(i)][0] for i in indices])


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_image_folder(root, ["train", "test"], ["a", "b", "c"], per_class=2, size=(150, 180), ext="jpg")
    return root


def test_decode_returns_uint8_images_and_labels_of_the_chosen_indices(photo_root):
    indices = [5, 0, 3]
    images, labels = decode_uint8_subset("folder", photo_root, "train", indices, max_resolution=96)
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 96, 96)
    assert images.numel() == uint8_cache_bytes(3, storage_size("folder", 96))
    targets = get_dataset("folder", photo_root, "train").targets
    assert labels.dtype == torch.int64 and labels.tolist() == [targets[i] for i in indices]
    # the images are those of the chosen indices, in their order: each one as PIL's storage geometry makes it
    ds = get_dataset("folder", photo_root, "train", transform=storage_transform("folder", 96))
    assert torch.equal(images, torch.stack([ds[i][0] for i in indices]))
    assert not torch.equal(images[0], images[1])  # the photos differ, so the order is checked


def test_memory_formula():
    assert uint8_cache_bytes(10_000, 256) == 1_966_080_000  # ImageNet --vld_size 10000 at 256 px
    assert storage_size("imagenet", 256) == 256
    assert storage_size("cifar10", 256) == 32  # fixed-size sets are kept at their native size


def test_cached_at_the_requested_resolution_is_exactly_eval_transform(photo_root):
    images, _ = decode_uint8_subset("folder", photo_root, "test", None, max_resolution=96)
    expected = reference("folder", photo_root, "test", range(6), 96)
    torch.testing.assert_close(uint8_to_input(images, "folder", 96), expected, atol=1e-5, rtol=0)


def test_photo_sets_resized_down_stay_close_to_eval_transform(photo_root):
    images, _ = decode_uint8_subset("folder", photo_root, "test", None, max_resolution=96)
    for resolution in (64, 80):
        diff = (uint8_to_input(images, "folder", resolution) - reference("folder", photo_root, "test",
                                                                         range(6), resolution)).abs()
        assert diff.shape == (6, 3, resolution, resolution)
        assert diff.mean() < 4 * grey_level("folder")
    with pytest.raises(ValueError, match="cached at 96 px cannot serve resolution 128"):
        uint8_to_input(images, "folder", 128)


def test_fixed_size_sets_match_eval_transform_within_two_grey_levels(tmp_path):
    write_cifar10(tmp_path)
    images, labels = decode_uint8_subset("cifar10", tmp_path, "test", None, max_resolution=224)
    assert images.shape == (4, 3, 32, 32)
    for resolution in (32, 72, 160):
        expected = reference("cifar10", tmp_path, "test", range(4), resolution)
        got = uint8_to_input(images, "cifar10", resolution)
        assert (got - expected).abs().max() <= 2 * grey_level("cifar10") + 1e-5


def test_resize_like_pil_is_within_one_grey_level_of_pil_bicubic():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)  # worst case: bicubic overshoot everywhere
    for image in (noise, smooth_images(1, 40, 56)[0]):
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        for side in (17, 40, 101):
            pil = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC))
            ours = _resize_like_pil(x.clone(), side)[0].permute(1, 2, 0).numpy()
            assert np.abs(ours - pil.astype(np.float32)).max() <= 1.0


def test_storage_transform_is_the_eval_geometry_without_normalisation(photo_root):
    image = get_dataset("folder", photo_root, "train")[0][0]
    stored = storage_transform("folder", 64)(image)
    info = dataset_info("folder")
    normalised = (stored.float() / 255 - torch.tensor(info.mean).view(3, 1, 1)) / torch.tensor(info.std).view(3, 1, 1)
    torch.testing.assert_close(normalised, eval_transform("folder", 64)(image), atol=1e-5, rtol=0)


def test_uint8_to_input_rejects_float_batches():
    with pytest.raises(ValueError, match="expected a uint8 batch"):
        uint8_to_input(torch.zeros(1, 3, 8, 8), "cifar10", 8)
