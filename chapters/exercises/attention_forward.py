"""Exercise: the forward pass of multi-head self-attention, with an optional mask.

Write `attention_forward` below, then grade it:

    python -m pytest --exercises -k attention_forward

Chapter 3 (03_attention: one head, several heads, the fused QKV projection) teaches this.
A forward on NumPy arrays, graded against minivit's fused attention op (and, with a mask,
against the same formula written out). See README.md in this folder.
The answer is in solutions/ and in minivit/ops/attention.py: try first.
"""
import einops
import numpy as np


def attention_forward(qkv, heads, mask=None):
    """Multi-head scaled-dot-product self-attention on the output of one fused QKV projection:
        qkv: (B N 3D), its last axis laid out (3 H Dh): q, k, v, each H heads of Dh features
        -> out: (B N D), D = H Dh, the heads merged back in the order (h dh).
    Per head, with q, k, v: (B H N Dh) and s = Dh^-1/2:
        S = s q k^T (B H N N),  P = softmax(S) over the keys (the last axis),  O = P v (B H N Dh).
    mask: None, or a boolean array (N N) or (B N N): mask[b, i, j] is True when query i may
    attend to key j. A masked-out key (False) gets S = -inf before the softmax, so its weight is
    exactly 0. One mask holds for every head. (The grader leaves every query at least one key.)

    Hint:
      1. Split qkv: einops.rearrange(qkv, "b n (three h dh) -> three b h n dh", three=3, h=heads)
         has q, k, v along its first axis.
      2. S: q @ k with its last two axes swapped (.swapaxes(-1, -2)), times s.
      3. The mask: np.where(mask, S, -np.inf). S has a heads axis that the mask lacks: a (B N N)
         mask becomes (B 1 N N) with mask[:, None]; an (N N) one broadcasts as it is.
      4. A stable softmax along the last axis: subtract each row's max before np.exp (the max
         is finite, since a row keeps one key; exp(-inf) = 0).
      5. O = P @ v, then merge the heads: "b h n dh -> b n (h dh)".
    """
    raise NotImplementedError("exercise not done yet: write attention_forward "
                              "(its docstring has the shapes and a hint)")
