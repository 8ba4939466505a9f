"""Training: `train(TrainConfig) -> TrainResult`, recipes per family, freezing, DDP.

The run folder a run writes belongs to `cnnzoo.runs` (`load_run` is re-exported here).
"""

from cnnzoo.runs import load_run
from cnnzoo.train.config import TrainConfig, read_config_file
from cnnzoo.train.freeze import freeze, frozen_bn_eval, param_groups
from cnnzoo.train.recipes import RECIPES, recipe_for
from cnnzoo.train.trainer import (
    RunParts,
    Trainer,
    TrainingDiverged,
    TrainResult,
    build_parts,
    train,
)

__all__ = ["RECIPES", "RunParts", "TrainConfig", "TrainResult", "Trainer", "TrainingDiverged",
           "build_parts", "freeze", "frozen_bn_eval", "load_run", "param_groups",
           "read_config_file", "recipe_for", "train"]
