"""Fused multi-head scaled-dot-product attention on the output of one fused QKV projection.

qkv: (B N 3D), laid out as (3 H Dh) on the last axis (q, k, v, then heads) -> out: (B N D).
"""
import einops

from minivit.backend import get_array_module
from minivit.engine import Function
from minivit.ops.softmax import softmax_array, softmax_backward_array


class Attention(Function):
    """With q, k, v: (B H N Dh) and s = Dh^-1/2:
        S = s q k^T,  P = softmax(S) over keys,  O = P v,  out = O with heads merged (B N H*Dh).
    Backward, from dO:  dv = P^T dO;  dP = dO v^T;  dS = P * (dP - rowsum(dP * P));
        dq = s dS k;  dk = s dS^T q.  The three are stacked back into the (3 H Dh) layout.
    `self.probs` keeps P (B H N N) for anyone who wants to look at the attention.
    """

    def forward(self, qkv):
        B, N, three_d = qkv.shape
        if three_d % (3 * self.heads):
            raise ValueError(f"attention: last axis {three_d} is not 3 * heads ({self.heads}) * Dh")
        q, k, v = einops.rearrange(qkv, "b n (three h dh) -> three b h n dh", three=3, h=self.heads)
        self.scale = q.shape[-1] ** -0.5
        self.q, self.k, self.v = q, k, v
        scores = q @ k.swapaxes(-1, -2)                                  # B H N N
        scores *= self.scale
        self.probs = softmax_array(scores)
        return einops.rearrange(self.probs @ v, "b h n dh -> b n (h dh)")

    def backward(self, grad):
        d_out = einops.rearrange(grad, "b n (h dh) -> b h n dh", h=self.heads)
        dv = self.probs.swapaxes(-1, -2) @ d_out
        d_scores = softmax_backward_array(self.probs, d_out @ self.v.swapaxes(-1, -2))
        d_scores *= self.scale
        dq = d_scores @ self.k
        dk = d_scores.swapaxes(-1, -2) @ self.q
        xp = get_array_module(grad)
        return (einops.rearrange(xp.stack([dq, dk, dv]), "three b h n dh -> b n (three h dh)"),)
