"""Building blocks the seed text defines: activations, attention, recurrent cells, the perceptron rule.

Each module states its conventions in its docstring; this package re-exports their public names.
"""

from aicompute.nn.activations import (
    ACTIVATIONS,
    GELU,
    GELU_SIGMOID_COEF,
    Swish,
    elu,
    gelu,
    get_activation,
    leaky_relu,
    prelu,
    relu,
    sigmoid,
    softplus,
    swish,
    tanh,
)
from aicompute.nn.attention import (
    AdditiveScore,
    BilinearScore,
    MultiHeadSelfAttention,
    causal_mask,
    dot_score,
    key_value_attention,
    scaled_dot_score,
)
from aicompute.nn.perceptron import Perceptron, PerceptronHistory
from aicompute.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

# conv_blocks / light_blocks exports are added by the lead.

__all__ = [
    "ACTIVATIONS",
    "AdditiveScore",
    "BilinearScore",
    "GELU",
    "GELU_SIGMOID_COEF",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "MultiHeadSelfAttention",
    "Perceptron",
    "PerceptronHistory",
    "RNN",
    "RNNCell",
    "Swish",
    "causal_mask",
    "dot_score",
    "elu",
    "gelu",
    "get_activation",
    "key_value_attention",
    "leaky_relu",
    "prelu",
    "relu",
    "scaled_dot_score",
    "sigmoid",
    "softplus",
    "swish",
    "tanh",
]
