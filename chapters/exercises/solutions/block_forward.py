"""Reference solution of chapters/exercises/block_forward.py. Try the exercise before reading this."""
import math

import einops
import numpy as np

from minivit.backend import erf  # scipy.special.erf, elementwise on arrays


def layer_norm(h, gamma, beta, eps):
    """Over the last axis: gamma (h - mean) / sqrt(var + eps) + beta, var the biased variance."""
    centred = h - h.mean(axis=-1, keepdims=True)
    return gamma * centred / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps) + beta


def gelu(z, approximate):
    """z Phi(z): Phi exact through erf, or the tanh approximation."""
    if approximate == "tanh":
        return 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
    return 0.5 * z * (1 + erf(z / math.sqrt(2)))


def attention(qkv, heads):
    """attention_forward without a mask: qkv (B N 3D), laid out (3 H Dh) -> (B N D)."""
    q, k, v = einops.rearrange(qkv, "b n (three h dh) -> three b h n dh", three=3, h=heads)
    scores = (q @ k.swapaxes(-1, -2)) * q.shape[-1] ** -0.5
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return einops.rearrange((e / e.sum(axis=-1, keepdims=True)) @ v, "b h n dh -> b n (h dh)")


def block_forward(x, weights, heads, eps=1e-6, approximate="erf"):
    """Pre-LN: each sublayer reads a normalised copy of the stream and adds its output to it,
        y = x + MSA(LN1(x)),  out = y + MLP(LN2(y)),
    with MSA(h) = attention(h W_qkv + b_qkv) W_proj + b_proj and
    MLP(h) = GELU(h W_1 + b_1) W_2 + b_2; as minivit.model.Block (nn.MultiHeadAttention, nn.MLP)."""
    w = weights
    h = layer_norm(x, w["norm1.weight"], w["norm1.bias"], eps)
    qkv = h @ w["attn.qkv.weight"] + w["attn.qkv.bias"]                     # B N 3D
    y = x + attention(qkv, heads) @ w["attn.proj.weight"] + w["attn.proj.bias"]
    h = layer_norm(y, w["norm2.weight"], w["norm2.bias"], eps)
    hidden = gelu(h @ w["mlp.fc1.weight"] + w["mlp.fc1.bias"], approximate)  # B N M
    return y + hidden @ w["mlp.fc2.weight"] + w["mlp.fc2.bias"]
