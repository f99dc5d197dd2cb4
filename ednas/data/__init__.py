"""Data: digits, CIFAR batches, image folders, Pascal VOC (multi-label), synthetic; splits and augmentation.

Knows nothing of networks.
"""

from ednas.data.datasets import DATA_KINDS, DataConfig, DataSet, DataSpec, arch_split, check_input_shape, folder_dataset, image_shape, load_data, parse_spec
from ednas.data.loaders import FolderLoader, TensorLoader, make_loader
from ednas.data.voc import VOC_CLASSES, read_voc

__all__ = [
    "DATA_KINDS", "DataConfig", "DataSet", "DataSpec", "parse_spec", "check_input_shape", "folder_dataset", "image_shape",
    "FolderLoader", "TensorLoader", "arch_split", "load_data", "make_loader", "read_voc", "VOC_CLASSES",
]
