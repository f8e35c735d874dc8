"""The ops as plain functions on Tensors: what layers and users call."""
from minivit.backend import get_array_module
from minivit.engine import Tensor
from minivit.ops.arithmetic import Add, Div, Erf, Exp, Log, Mul, Neg, Power, Sub, Tanh
from minivit.ops.attention import Attention
from minivit.ops.conv import Conv2d
from minivit.ops.cross_entropy import CrossEntropy
from minivit.ops.dropout import Dropout
from minivit.ops.gelu import GELU
from minivit.ops.groupnorm import GroupNorm
from minivit.ops.layernorm import LayerNorm
from minivit.ops.matmul import Linear, MatMul
from minivit.ops.pool import MaxPool2d
from minivit.ops.reduce import Mean, Sum
from minivit.ops.relu import ReLU
from minivit.ops.shape import BroadcastTo, Concat, GetItem, Rearrange, Reshape, Transpose
from minivit.ops.softmax import Softmax

__all__ = [
    "add", "sub", "mul", "div", "neg", "power", "exp", "log", "tanh", "erf", "matmul", "sum",
    "mean", "reshape", "transpose", "rearrange", "broadcast_to", "concat", "getitem",
    "softmax", "attention", "linear", "gelu", "layernorm", "dropout", "cross_entropy",
    "one_hot",
    "conv2d", "max_pool2d", "group_norm", "relu",
]


def add(x, w): return Add()(x, w)
def sub(x, w): return Sub()(x, w)
def mul(x, w): return Mul()(x, w)
def div(x, w): return Div()(x, w)
def neg(x): return Neg()(x)
def power(x, exponent): return Power(exponent=exponent)(x)
def exp(x): return Exp()(x)
def log(x): return Log()(x)
def tanh(x): return Tanh()(x)
def erf(x): return Erf()(x)
def matmul(a, b): return MatMul()(a, b)
def sum(x, axis=None, keepdims=False): return Sum(axis=axis, keepdims=keepdims)(x)
def mean(x, axis=None, keepdims=False): return Mean(axis=axis, keepdims=keepdims)(x)
def reshape(x, shape): return Reshape(shape=tuple(shape))(x)
def transpose(x, axes=None): return Transpose(axes=axes)(x)
def rearrange(x, pattern, **lengths): return Rearrange(pattern=pattern, lengths=lengths)(x)
def broadcast_to(x, shape): return BroadcastTo(shape=tuple(shape))(x)
def concat(xs, axis=0): return Concat(axis=axis)(*xs)
def getitem(x, index): return GetItem(index=index)(x)
def softmax(x, axis=-1): return Softmax(axis=axis)(x)
def attention(qkv, heads): return Attention(heads=heads)(qkv)


def linear(x, weight, bias=None):
    """x W + b.  x: (... Din), W: (Din Dout), b: (Dout) -> (... Dout)."""
    return Linear()(x, weight) if bias is None else Linear()(x, weight, bias)


def gelu(x, approximate="erf"):
    """GELU, exact ('erf') or the tanh approximation ('tanh')."""
    return GELU(approximate=approximate)(x)


def layernorm(x, gamma, beta, eps=1e-6):
    """Normalise the last axis to mean 0 and variance 1, then scale by gamma and shift by beta."""
    return LayerNorm(eps=eps)(x, gamma, beta)


def dropout(x, p, training=True):
    """Zero entries with probability p while training; the identity otherwise (or when p = 0)."""
    if not training or p == 0:
        return x
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    return Dropout(p=p)(x)


def cross_entropy(logits, labels, label_smoothing=0.0):
    """Mean cross-entropy of integer `labels` (B) under `logits` (B K), targets smoothed by eps."""
    return CrossEntropy(labels=labels, label_smoothing=label_smoothing)(logits)


def one_hot(labels, num_classes, like=None):
    """A constant (B K) Tensor with a 1 in each row at the label."""
    xp = get_array_module(like if like is not None else labels)
    labels = xp.asarray(labels)
    return Tensor(xp.eye(num_classes, dtype=like.dtype if like is not None else "float32")[labels])


def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D convolution (im2col + one GEMM).  x: (B C H W), w: (O C k k), b: (O) -> (B O H' W'),
    H' = (H + 2 padding - k) // stride + 1."""
    op = Conv2d(stride=stride, padding=padding)
    return op(x, w) if b is None else op(x, w, b)


def max_pool2d(x, size=2):
    """The maximum of each non-overlapping size x size window: (B C H W) -> (B C H/size W/size).
    (Global average pooling is just x.mean(axis=(2, 3)).)"""
    return MaxPool2d(size=size)(x)


def group_norm(x, groups, gamma, beta, eps=1e-5):
    """Normalise each image's groups of C/groups channels (over channels and positions), then
    scale and shift every channel by gamma and beta (C).  x: (B C ...) -> same shape."""
    return GroupNorm(groups=groups, eps=eps)(x, gamma, beta)


def relu(x): return ReLU()(x)
