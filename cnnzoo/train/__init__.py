"""Training: `train(TrainConfig) -> TrainResult`, recipes per family, run folders, DDP."""

from cnnzoo.train.checkpoint import load_run
from cnnzoo.train.config import TrainConfig, read_config_file
from cnnzoo.train.recipes import RECIPES, recipe_for
from cnnzoo.train.trainer import TrainingDiverged, TrainResult, train

__all__ = ["RECIPES", "TrainConfig", "TrainResult", "TrainingDiverged", "load_run",
           "read_config_file", "recipe_for", "train"]
