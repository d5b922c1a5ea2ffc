"""Datasets: real Fashion-MNIST from Debian's files, digits, and a deterministic held-out split."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from autoprune.data import load_data
from autoprune.data.datasets import DEBIAN_FASHION_MNIST
from autoprune.errors import UserError

needs_fmnist = pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")


@needs_fmnist
def test_fashion_mnist_splits_are_deterministic_and_disjoint() -> None:
    a, b = load_data("fashion-mnist"), load_data("fashion-mnist")
    assert (len(a.train), len(a.heldout), len(a.test)) == (55000, 5000, 10000)
    assert a.heldout.indices == b.heldout.indices
    assert not set(a.heldout.indices) & set(a.train.indices)
    x, y = next(iter(a.loader("heldout", batch_size=64)))
    assert x.shape == (64, 1, 28, 28) and y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) <= 9
    assert abs(float(a.test.tensors[0].mean())) < 0.1  # normalised


@needs_fmnist
def test_fashion_mnist_from_a_data_dir_and_bad_dirs(tmp_path: Path) -> None:
    for f in DEBIAN_FASHION_MNIST.glob("*.gz"):
        shutil.copy(f, tmp_path / f.name)
    assert len(load_data("fashion-mnist", tmp_path).test) == 10000
    with pytest.raises(UserError, match="not found"):
        load_data("fashion-mnist", tmp_path / "missing")
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x27\x10" + b"\x01" * 10)  # claims 10,000 labels, holds 10
    with pytest.raises(UserError, match="unreadable"):
        load_data("fashion-mnist", tmp_path)


def test_digits_and_unknown_dataset(digits) -> None:
    assert (digits.in_channels, digits.image_size, digits.num_classes) == (1, 8, 10)
    assert len(digits.train) + len(digits.heldout) + len(digits.test) == 1797
    assert len(next(iter(digits.loader("train", batch_size=16, limit=20)))[0]) == 16
    with pytest.raises(UserError, match="unknown dataset"):
        load_data("imagenet-22k")


def test_image_folder_tree(tmp_path: Path) -> None:
    from PIL import Image

    from autoprune.data.datasets import image_folder

    rng = torch.Generator().manual_seed(0)
    for split, count in (("train", 12), ("val", 4)):
        for label in ("cat", "dog"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = torch.randint(0, 255, (20, 20, 3), generator=rng, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(tmp_path / split / label / f"{i}.png")
    bundle = image_folder(tmp_path, image_size=16)
    assert (bundle.num_classes, len(bundle.test), len(bundle.train) + len(bundle.heldout)) == (2, 8, 24)
    x, _ = next(iter(bundle.loader("train", batch_size=4)))
    assert x.shape == (4, 3, 16, 16)
    with pytest.raises(UserError, match="train/ and val/"):
        image_folder(tmp_path / "train", image_size=16)
