"""Training and evaluation of fixed networks (eq. 16 recipe), checkpoints, metrics."""

from ednas.nn.files import load_model, save_model
from ednas.train.evaluate import EvalConfig, run_eval
from ednas.train.recipe import Recipe
from ednas.train.trainer import TrainConfig, fit, train

__all__ = ["EvalConfig", "Recipe", "TrainConfig", "fit", "load_model", "run_eval", "save_model", "train"]
