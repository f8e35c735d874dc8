"""Reference solution of chapters/exercises/attention_rollout.py. Try the exercise before reading
this."""
import numpy as np


def attention_rollout(attentions):
    """Each A^_l = rownorm(mean_h A_l + I) is row-stochastic (every row sums to 1), so each
    product R = A^_l R stays row-stochastic: row i of R shares output token i among the input
    tokens. Token 0 is the class token: R[:, 0, 1:] is its share of each patch. Then per image
    (map - min) / (max - min), with 0 for a constant map; as minivit.analysis.attention_rollout
    (cls_tokens=1)."""
    R = None
    for attention in attentions:
        a = np.asarray(attention, dtype=np.float64).mean(axis=1)      # B T T
        a = a + np.eye(a.shape[-1])
        a = a / a.sum(axis=-1, keepdims=True)
        R = a if R is None else a @ R
    g = int(round((R.shape[-1] - 1) ** 0.5))
    maps = R[:, 0, 1:].reshape(-1, g, g)                               # B g g
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)
