"""Datasets with deterministic held-out splits of their training sets."""

from autoprune.data.datasets import DATA_SHAPES, DATASETS, DataBundle, data_shape, load_data, split_heldout

__all__ = ["DATA_SHAPES", "DATASETS", "data_shape", "DataBundle", "load_data", "split_heldout"]
