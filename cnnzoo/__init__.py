"""cnnzoo: the landmark convolutional networks of the ImageNet era, to size, train,
compare, transfer, ensemble and look inside."""

import cnnzoo.analysis  # noqa: F401  (plugs the measuring code into the models)
from cnnzoo.infer import optimize_for_inference
from cnnzoo.models import (
    AuxOutput,
    ModelInfo,
    UnknownModelError,
    create_model,
    list_models,
    main_logits,
    model_info,
)

__version__ = "0.1.0"
__all__ = [
    "AuxOutput",
    "ModelInfo",
    "UnknownModelError",
    "__version__",
    "create_model",
    "list_models",
    "main_logits",
    "model_info",
    "optimize_for_inference",
]
