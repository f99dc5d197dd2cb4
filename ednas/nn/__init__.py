"""Network modules: stem, meta-kernel conv, blocks, fusion, builders, the MAC counter, BN recalibration.

Knows nothing of search, latency or training.
"""

from ednas.nn.blocks import InvertedResidual, SearchableIR
from ednas.nn.bn import BN_IMAGES, bn_calibration_loader, recalibrated_bn, recompute_bn_stats
from ednas.nn.build import (
    SUPERNET_KINDS,
    Net,
    Supernet,
    build_model,
    build_supernet,
    inherit_weights,
)
from ednas.nn.choice import Choice
from ednas.nn.fuse import deploy_model, fuse, fuse_supernet
from ednas.nn.layers import ConvBNAct, Projection, fold_bn
from ednas.nn.macs import LayerCount, count_macs
from ednas.nn.metakernel import MetaKernelConv, centred_masks
from ednas.nn.multipath import FBNetBlock
from ednas.nn.repconv import RepDWConvBN, default_branches
from ednas.nn.searchable import SearchableBlock
from ednas.nn.stem import ConvStem, DepthAwareStem, Head, build_stem

__all__ = [
    "BN_IMAGES",
    "SUPERNET_KINDS",
    "Choice",
    "ConvBNAct",
    "ConvStem",
    "DepthAwareStem",
    "FBNetBlock",
    "Head",
    "InvertedResidual",
    "LayerCount",
    "MetaKernelConv",
    "Net",
    "Projection",
    "RepDWConvBN",
    "SearchableBlock",
    "SearchableIR",
    "Supernet",
    "build_model",
    "build_stem",
    "bn_calibration_loader",
    "build_supernet",
    "centred_masks",
    "count_macs",
    "default_branches",
    "deploy_model",
    "fold_bn",
    "fuse",
    "fuse_supernet",
    "inherit_weights",
    "recalibrated_bn",
    "recompute_bn_stats",
]
