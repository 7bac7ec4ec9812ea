"""Datasets, label noise, image cache and batched transforms."""
from .base import FERDataset
from .errors import DatasetError
from .registry import DATASETS, build_dataset, find_data_root

__all__ = ["FERDataset", "DatasetError", "DATASETS", "build_dataset", "find_data_root"]
