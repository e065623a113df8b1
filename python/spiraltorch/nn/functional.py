"""Functional forms of the neural-network ops, with torch.nn.functional's names and argument
order."""

from .. import _C

__all__ = [
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "layer_norm",
    "linear",
    "log_softmax",
    "relu",
    "scaled_dot_product_attention",
    "sigmoid",
    "softmax",
    "tanh",
]

softmax = _C.softmax
log_softmax = _C.log_softmax
layer_norm = _C.layer_norm
embedding = _C.embedding
cross_entropy = _C.cross_entropy
gelu = _C.gelu
relu = _C.relu
sigmoid = _C.sigmoid
tanh = _C.tanh
scaled_dot_product_attention = _C.scaled_dot_product_attention
linear = _C.linear


def dropout(input, p=0.5, training=True):
    """Zeroes elements with probability `p` and scales the rest by 1/(1-p) while `training`."""
    return _C.dropout(input, p, training)
