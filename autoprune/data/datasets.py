"""Datasets by name, each with a deterministic held-out split of its training set.

Search scores candidates on `heldout` (carved from the training set); `test` is for final reports only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from autoprune.data.idx import read_idx
from autoprune.errors import FileProblemError, InputError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SPLIT_SEED = 20240601


@dataclass
class DataBundle:
    """Train / held-out / test sets of one dataset plus the shape facts models need."""

    name: str
    train: Dataset
    heldout: Dataset
    test: Dataset
    in_channels: int
    num_classes: int
    image_size: int
    augment: bool  # random crop + horizontal flip suit this data during training

    def loader(self, split: str, batch_size: int = 256, shuffle: bool = False, limit: int | None = None,
               seed: int = 0) -> DataLoader:
        """A loader over `split` ('train', 'heldout' or 'test'), optionally over its first `limit` items."""
        dataset = {"train": self.train, "heldout": self.heldout, "test": self.test}[split]
        if limit is not None and limit < len(dataset):
            dataset = Subset(dataset, range(limit))
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def split_heldout(dataset: Dataset, size: int) -> tuple[Dataset, Dataset]:
    """Deterministically split off `size` items of a training set as the held-out split."""
    n = len(dataset)  # type: ignore[arg-type]
    if not 0 < size < n:
        raise InputError(f"held-out size {size} must be between 1 and {n - 1}")
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return Subset(dataset, order[size:].tolist()), Subset(dataset, order[:size].tolist())


def _normalised(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return ((x - mean) / std).unsqueeze(1)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem, directory / "FashionMNIST" / "raw" / stem):
        if candidate.is_file():
            return candidate
    return None


def fashion_mnist(data_dir: str | Path | None = None, heldout: int = 5000, download: bool = False) -> DataBundle:
    """Fashion-MNIST from `data_dir`, $AUTOPRUNE_DATA_DIR, Debian's package path, or torchvision's downloader."""
    directory = Path(data_dir or os.environ.get("AUTOPRUNE_DATA_DIR") or DEBIAN_FASHION_MNIST)
    stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    paths = [_find_idx(directory, s) for s in stems]
    if any(p is None for p in paths):
        if not download:
            raise FileProblemError(
                f"Fashion-MNIST not found in {str(directory)!r}; run `apt-get install dataset-fashion-mnist`, "
                "pass $data_dir with the IDX files, or add $download where the internet is reachable"
            )
        import torchvision

        torchvision.datasets.FashionMNIST(str(directory), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(directory), train=False, download=True)
        paths = [_find_idx(directory, s) for s in stems]
    try:
        train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)  # type: ignore[arg-type]
    except (OSError, ValueError, EOFError) as exc:
        raise FileProblemError(f"Fashion-MNIST files in {str(directory)!r} are unreadable ({exc}); reinstall "
                               "them") from None
    mean, std = 0.2860, 0.3530
    full_train = TensorDataset(_normalised(train_x, mean, std), torch.from_numpy(train_y.astype(np.int64)))
    test = TensorDataset(_normalised(test_x, mean, std), torch.from_numpy(test_y.astype(np.int64)))
    train, held = split_heldout(full_train, heldout)
    return DataBundle("fashion-mnist", train, held, test, 1, 10, 28, augment=True)


def digits(heldout: int = 300) -> DataBundle:
    """scikit-learn's 8x8 digits (1,797 images, shipped inside scikit-learn): tiny, for tests and demos."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy((bunch.images / 16.0 - 0.5) / 0.5).float().unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    test_idx, train_idx = order[:360], order[360:]
    full_train = TensorDataset(x[train_idx], y[train_idx])
    test = TensorDataset(x[test_idx], y[test_idx])
    train, held = split_heldout(full_train, heldout)
    return DataBundle("digits", train, held, test, 1, 10, 8, augment=False)


def cifar10(data_dir: str | Path | None = None, heldout: int = 5000, download: bool = False) -> DataBundle:
    """CIFAR-10 through torchvision (the standard python-pickled batches, read by torchvision)."""
    import torchvision
    from torchvision import transforms

    root = str(data_dir or os.environ.get("AUTOPRUNE_DATA_DIR") or "data")
    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    try:
        full_train = torchvision.datasets.CIFAR10(root, train=True, transform=tf, download=download)
        test = torchvision.datasets.CIFAR10(root, train=False, transform=tf, download=download)
    except RuntimeError:
        raise FileProblemError(f"CIFAR-10 not found under {root!r}; pass $data_dir or add $download") from None
    train, held = split_heldout(full_train, heldout)
    return DataBundle("cifar10", train, held, test, 3, 10, 32, augment=True)


def image_folder(data_dir: str | Path | None, heldout: int = 5000, image_size: int = 224) -> DataBundle:
    """An ImageFolder tree with `train/` and `val/` (or `test/`) class subfolders."""
    import torchvision
    from torchvision import transforms

    if data_dir is None:
        raise InputError("ImageFolder data needs $data_dir pointing at a folder with train/ and val/")
    root = Path(data_dir)
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise FileProblemError(f"{str(root)!r} must hold train/ and val/ (or test/) folders of class subfolders")
    tf = transforms.Compose([transforms.Resize(int(image_size * 1.14)), transforms.CenterCrop(image_size),
                             transforms.ToTensor(),
                             transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    full_train = torchvision.datasets.ImageFolder(str(root / "train"), transform=tf)
    test = torchvision.datasets.ImageFolder(str(test_dir), transform=tf)
    train, held = split_heldout(full_train, min(heldout, len(full_train) // 5))
    return DataBundle("imagefolder", train, held, test, 3, len(full_train.classes), image_size, augment=True)


# (in_channels, image_size, num_classes) of each dataset, known without loading it.
DATA_SHAPES = {
    "fashion-mnist": (1, 28, 10),
    "digits": (1, 8, 10),
    "cifar10": (3, 32, 10),
    "imagefolder": (3, 224, 1000),
}

DATASETS = {"fashion-mnist": fashion_mnist, "digits": digits, "cifar10": cifar10, "imagefolder": image_folder}


def load_data(name: str, data_dir: str | Path | None = None, download: bool = False) -> DataBundle:
    """A DataBundle by dataset name."""
    if name == "digits":
        return digits()
    if name == "fashion-mnist":
        return fashion_mnist(data_dir, download=download)
    if name == "cifar10":
        return cifar10(data_dir, download=download)
    if name == "imagefolder":
        return image_folder(data_dir)
    raise InputError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")


def data_shape(name: str) -> tuple[int, int, int]:
    """(in_channels, image_size, num_classes) of a dataset by name, without loading it."""
    if name not in DATA_SHAPES:
        raise InputError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    return DATA_SHAPES[name]
