"""Modules: objects that hold parameters and compute with the ops.

A Module finds its parameters by looking at its own attributes: Tensors that require grad,
sub-Modules, and lists of Modules. Names follow the attribute path, e.g. `blocks.0.attn.qkv.weight`.
"""
import math

import numpy as np

from minivit import backend, ops
from minivit.engine import Tensor
from minivit.errors import CheckpointError
from minivit.ops.attention import Attention

def Parameter(array):
    """A leaf Tensor that the optimizer updates."""
    return Tensor(array, requires_grad=True)


class Module:
    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def children(self):
        """(name, Module) for each sub-module, in the order they were assigned."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                yield from ((f"{name}.{i}", m) for i, m in enumerate(value) if isinstance(m, Module))

    def named_parameters(self, prefix=""):
        for name, value in vars(self).items():
            if isinstance(value, Tensor) and value.requires_grad:
                yield prefix + name, value
        for name, child in self.children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    def train(self, mode=True):
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to(self, device=None, dtype=None):
        """Move every parameter to 'cpu'/'gpu' and/or cast it (e.g. to float64); returns self."""
        for p in self.parameters():
            p.to(device, dtype)
        return self

    @property
    def device(self):
        return self.parameters()[0].device

    def state_dict(self):
        """{name: array} of every parameter."""
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state):
        """Copy arrays into the parameters (keeping each parameter's device and dtype).
        Raises CheckpointError naming the tensor when a name or a shape does not fit."""
        params = dict(self.named_parameters())
        missing = [n for n in params if n not in state]
        unexpected = [n for n in state if n not in params]
        if missing:
            raise CheckpointError(f"the checkpoint has no tensor {missing[0]!r}, which the model "
                                  f"needs ({len(missing)} missing in all)")
        if unexpected:
            raise CheckpointError(f"the checkpoint has a tensor {unexpected[0]!r} that the model "
                                  f"does not have ({len(unexpected)} unexpected in all)")
        for name, p in params.items():
            if tuple(state[name].shape) != p.shape:
                raise CheckpointError(f"tensor {name!r} has shape {tuple(state[name].shape)} in the "
                                      f"checkpoint but {p.shape} in the model")
        for name, p in params.items():
            xp = backend.get_array_module(p.data)
            p.data = xp.asarray(backend.to_device(state[name], p.device), dtype=p.dtype).copy()
        return self


# --- initialisers (on the CPU, with minivit's seeded generator; move the model afterwards) ---

def xavier_uniform(fan_in, fan_out):
    limit = math.sqrt(6 / (fan_in + fan_out))
    return backend.rng().uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)


def lecun_normal(fan_in, fan_out):
    """Truncated normal (at 2 std) with std sqrt(1/fan_in), as flax's lecun_normal."""
    std = math.sqrt(1 / fan_in) / 0.87962566103423978  # undo the truncation's shrinking
    values = backend.rng().standard_normal((fan_in, fan_out))
    while (bad := np.abs(values) > 2).any():
        values[bad] = backend.rng().standard_normal(bad.sum())
    return (values * std).astype(np.float32)


def normal(shape, std):
    return (backend.rng().standard_normal(shape) * std).astype(np.float32)


def zeros(fan_in, fan_out):
    return np.zeros((fan_in, fan_out), np.float32)


def xavier_per_projection(fan_in, fan_out):
    """q, k and v side by side (D 3D), each its own Xavier (D D), as the official code's three
    Dense layers: the bound uses fan_out D, not 3D."""
    return np.concatenate([xavier_uniform(fan_in, fan_out // 3) for _ in range(3)], axis=1)


# --- layers --------------------------------------------------------------------------------

class Linear(Module):
    """y = x W + b.  x: (... Din) -> y: (... Dout).  W is stored (Din Dout), as in the JAX
    checkpoints. init: 'xavier' (uniform), 'lecun' (truncated normal), 'zeros', or 'qkv' (see
    xavier_per_projection). The bias starts at zero, or normal with std `bias_std` (> 0)."""

    def __init__(self, in_features, out_features, bias=True, init="xavier", bias_std=0.0):
        initialisers = {"xavier": xavier_uniform, "lecun": lecun_normal, "zeros": zeros,
                        "qkv": xavier_per_projection}
        self.weight = Parameter(initialisers[init](in_features, out_features))
        self.bias = None if not bias else Parameter(
            normal(out_features, bias_std) if bias_std else np.zeros(out_features, np.float32))

    def forward(self, x):
        return ops.linear(x, self.weight, self.bias)


class LayerNorm(Module):
    """Normalise each token's D features; a learned scale (ones) and shift (zeros)."""

    def __init__(self, dim, eps=1e-6):
        self.eps = eps
        self.weight = Parameter(np.ones(dim, np.float32))
        self.bias = Parameter(np.zeros(dim, np.float32))

    def forward(self, x):
        return ops.layernorm(x, self.weight, self.bias, self.eps)


class Dropout(Module):
    def __init__(self, p=0.0):
        self.p = p

    def forward(self, x):
        return ops.dropout(x, self.p, self.training)


class MLP(Module):
    """Dense(D -> M), GELU, dropout, Dense(M -> D), dropout.  (B N D) -> (B N D)."""

    def __init__(self, dim, hidden_dim, dropout=0.0, gelu="erf"):
        self.gelu = gelu
        self.fc1 = Linear(dim, hidden_dim, bias_std=1e-6)  # the official init
        self.fc2 = Linear(hidden_dim, dim, bias_std=1e-6)
        self.drop = Dropout(dropout)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(ops.gelu(self.fc1(x), self.gelu))))


class MultiHeadAttention(Module):
    """Self-attention with H heads: one fused projection to q, k, v (B N 3D), the fused attention
    op, then an output projection.  (B N D) -> (B N D).  With `keep_attention = True` the
    attention weights of the last call stay in `self.attention` (B H N N)."""

    def __init__(self, dim, heads):
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = Linear(dim, 3 * dim, init="qkv")
        self.proj = Linear(dim, dim)
        self.keep_attention = False
        self.attention = None

    def forward(self, x):
        op = Attention(heads=self.heads)
        out = op(self.qkv(x))
        if self.keep_attention:
            self.attention = op.probs
        return self.proj(out)
