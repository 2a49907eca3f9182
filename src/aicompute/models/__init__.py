"""The model zoo. Importing this package registers every zoo model."""

from aicompute.models.registry import (
    ModelSpec,
    build_for_dataset,
    count_params,
    example_input,
    get_model,
    list_models,
    model_spec,
    register_model,
    resolve_model,
)

# Zoo modules register themselves on import; this order is the order `aicompute models` lists them.
from aicompute.models import mlp  # noqa: E402,F401  perceptron, mlp (LeNet-300-100)
from aicompute.models import classic  # noqa: E402,F401  lenet5, alexnet, vgg11, vgg16
from aicompute.models import googlenet  # noqa: E402,F401
from aicompute.models import resnet  # noqa: E402,F401  resnet18, resnet50
from aicompute.models import densenet  # noqa: E402,F401  densenet121
from aicompute.models import mobilenet  # noqa: E402,F401  mobilenet_v2
from aicompute.models import ghostnet  # noqa: E402,F401
from aicompute.models import efficientnet  # noqa: E402,F401  efficientnet_b0, efficientnet_b4
from aicompute.models import cnn1d  # noqa: E402,F401  1-D CNN for mnist1d
from aicompute.models import recurrent  # noqa: E402,F401  rnn/lstm/gru classifiers and char LMs
from aicompute.models import transformer  # noqa: E402,F401  GPT-style decoder, gpt2-small, gpt3-175b

__all__ = [
    "ModelSpec",
    "build_for_dataset",
    "count_params",
    "example_input",
    "get_model",
    "list_models",
    "model_spec",
    "register_model",
    "resolve_model",
]

from aicompute.models.zoo import ZooRow, ZooTable, zoo_table  # noqa: E402

__all__ += ["ZooRow", "ZooTable", "zoo_table"]
