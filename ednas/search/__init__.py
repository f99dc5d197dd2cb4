"""The search: Gumbel-softmax (eq. 14-15), latency loss (eq. 12-13), feedback block (eq. 3-5),
derive and budget fit, Algorithm 1; random search, the baseline at the same compute.  Knows networks and latency, not the CLI."""

from ednas.nn.files import load_supernet, save_supernet
from ednas.search.algorithm import SearchConfig, search
from ednas.search.derive import fit_budget, layer_probs
from ednas.search.feedback import MERGE_KINDS, FeedbackBlock, betas
from ednas.search.gumbel import gumbel_softmax, sample_choices, tau_at
from ednas.search.loss import LOSS_KINDS, LatencyLoss
from ednas.search.random import RandomSearchConfig, random_search, sample_in_band

__all__ = [
    "LOSS_KINDS",
    "MERGE_KINDS",
    "FeedbackBlock",
    "LatencyLoss",
    "RandomSearchConfig",
    "SearchConfig",
    "betas",
    "fit_budget",
    "gumbel_softmax",
    "layer_probs",
    "load_supernet",
    "random_search",
    "sample_choices",
    "sample_in_band",
    "save_supernet",
    "search",
    "tau_at",
]
