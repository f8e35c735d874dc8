"""Reference solution of chapters/exercises/attention_forward.py. Try the exercise before reading
this."""
import einops
import numpy as np


def attention_forward(qkv, heads, mask=None):
    """qkv (B N 3D) laid out (3 H Dh) -> out (B N D):
        q, k, v = the three (B H N Dh) slices;  S = q k^T / sqrt(Dh) (B H N N);
        S = -inf where the mask is False (a (B N N) mask gets a heads axis: (B 1 N N));
        P = softmax(S) over the keys, stably: exp(S - rowmax) / its row sum;
        out = P v with the heads merged (h dh), as minivit.ops.attention."""
    q, k, v = einops.rearrange(qkv, "b n (three h dh) -> three b h n dh", three=3, h=heads)
    scores = (q @ k.swapaxes(-1, -2)) * q.shape[-1] ** -0.5                  # B H N N
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        scores = np.where(mask[:, None] if mask.ndim == 3 else mask, scores, -np.inf)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs = e / e.sum(axis=-1, keepdims=True)
    return einops.rearrange(probs @ v, "b h n dh -> b n (h dh)")
