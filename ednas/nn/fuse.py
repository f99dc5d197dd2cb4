"""The one walker that turns a trained network into its deploy form (eq. 1-2).

Every fusable module has a ``fuse()`` that returns its deploy replacement:
:class:`~ednas.nn.layers.ConvBNAct` folds its BN (eq. 2),
:class:`~ednas.nn.repconv.RepDWConvBN` folds its branches into one k x k
kernel plus bias (eq. 1-2).  :func:`fuse` copies the network, puts it in eval
mode and replaces, top-down, every module that has a ``fuse()`` (a supernet
block's ``fuse()`` returns its argmax block, unfused, which the walk then
fuses in turn).  The result
computes the same function up to float error (the tests prove it) with only
convolutions (with bias), ReLUs, adds, a pool and a linear layer.

A supernet layer is fused by first deriving: build the derived network,
:func:`~ednas.nn.build.inherit_weights` from the supernet (the meta-kernel
becomes a plain conv of the chosen size, not a zero-padded K_max one), then
fuse that.  :func:`fuse_supernet` does the three steps.

:func:`deploy_model` is :func:`fuse` for a network that may already be in
deploy form (latency measuring and ``ednas profile`` take either).
"""

from __future__ import annotations

import copy

import torch.nn as nn

from ednas.nn.build import build_model, inherit_weights

__all__ = ["deploy_model", "fuse", "fuse_supernet"]


def _fuse(module: nn.Module) -> nn.Module:
    if callable(getattr(module, "fuse", None)):
        module = module.fuse()
    for name, child in list(module.named_children()):
        setattr(module, name, _fuse(child))
    return module


def fuse(model: nn.Module) -> nn.Module:
    """The deploy form of ``model`` (a fused copy, in eval mode)."""
    return _fuse(copy.deepcopy(model).eval()).eval()


def _is_deploy(model: nn.Module) -> bool:
    return not any(isinstance(m, nn.BatchNorm2d) or callable(getattr(m, "fuse", None)) for m in model.modules())


def deploy_model(model: nn.Module) -> nn.Module:
    """``model`` in deploy form (BN and branches folded), fusing only if needed (else ``model`` itself, in eval mode)."""
    if _is_deploy(model):
        return model.eval()
    return fuse(model)


def fuse_supernet(supernet, picks: list[dict] | None = None) -> nn.Module:
    """Derive (argmax, or ``picks``), inherit the supernet's weights, fuse."""

    picks = picks if picks is not None else supernet.picks()
    arch = supernet.space.with_picks(picks, branches=False)
    model = build_model(arch, supernet.num_classes)
    inherit_weights(model, supernet, picks)
    return fuse(model)
