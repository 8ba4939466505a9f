"""The zoo. Importing this package registers every family."""

from cnnzoo.models import (  # noqa: F401  (imports register the models)
    alexnet,
    densenet,
    fractalnet,
    googlenet,
    inception_v3,
    inception_v4,
    lenet,
    nin,
    resnet,
    squeezenet,
    vgg,
)
from cnnzoo.models.backbone import Backbone, FeatureExtractor, UnknownLayerError, features
from cnnzoo.models.layers import AuxOutput, main_logits
from cnnzoo.models.pretrained import load_torchvision_weights
from cnnzoo.models.registry import (
    ModelInfo,
    UnknownModelError,
    create_model,
    list_models,
    model_info,
)

__all__ = [
    "AuxOutput",
    "Backbone",
    "FeatureExtractor",
    "ModelInfo",
    "UnknownLayerError",
    "UnknownModelError",
    "create_model",
    "features",
    "list_models",
    "load_torchvision_weights",
    "main_logits",
    "model_info",
]
