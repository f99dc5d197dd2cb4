"""Data: digits, CIFAR batches, image folders, synthetic; splits and augmentation.

Knows nothing of networks.
"""

from ednas.data.datasets import DATA_KINDS, DataConfig, DataSet, arch_split, folder_dataset, load_data
from ednas.data.loaders import FolderLoader, TensorLoader, make_loader

__all__ = ["DATA_KINDS", "DataConfig", "DataSet", "folder_dataset", "FolderLoader", "TensorLoader", "arch_split", "load_data", "make_loader"]
