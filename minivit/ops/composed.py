"""The same layers built only from primitive ops (+, *, exp, sum, ...), so that autograd derives
their backward by itself. Slower and hungrier than the fused ops, but a second, independent
derivation: the tests check that both give the same values and the same gradients."""
import math

from minivit.engine import Tensor
from minivit.ops import functional as F

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def gelu(x, approximate="erf"):
    """x * Phi(x), from erf (exact) or tanh (the approximation)."""
    if approximate == "tanh":
        return 0.5 * x * (1 + F.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1 + F.erf(x / math.sqrt(2)))


def layernorm(x, gamma, beta, eps=1e-6):
    """gamma * (x - mean) / sqrt(var + eps) + beta over the last axis."""
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / (variance + eps) ** 0.5 * gamma + beta


def softmax(x, axis=-1):
    """exp(x - max) / sum exp(x - max). The max is a constant: softmax does not change when
    every entry moves by the same amount, so it needs no gradient."""
    e = (x - Tensor(x.data.max(axis=axis, keepdims=True))).exp()
    return e / e.sum(axis=axis, keepdims=True)


def attention(qkv, heads):
    """Multi-head attention, (B N 3D) -> (B N D), from rearrange, matmul and softmax."""
    q, k, v = (F.rearrange(qkv, "b n (three h dh) -> three b h n dh", three=3, h=heads)[i]
               for i in range(3))
    scores = (q @ k.transpose(0, 1, 3, 2)) * (q.shape[-1] ** -0.5)
    return F.rearrange(softmax(scores) @ v, "b h n dh -> b n (h dh)")


def cross_entropy(logits, labels, label_smoothing=0.0):
    """-(1/B) sum of targets * log_softmax(logits), the targets smoothed."""
    B, K = logits.shape
    shifted = logits - Tensor(logits.data.max(axis=1, keepdims=True))
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    targets = F.one_hot(labels, K, like=logits.data) * (1 - label_smoothing) + label_smoothing / K
    return -(log_probs * targets).sum() / B
