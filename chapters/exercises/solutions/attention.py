"""Reference solution of chapters/exercises/attention.py. Try the exercise before reading this."""
import einops

from minivit.backend import get_array_module
from minivit.engine import Function


def softmax_last_axis(x):
    e = get_array_module(x).exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Attention(Function):
    """Multi-head scaled-dot-product attention on one fused QKV projection.
    qkv: (B N 3D), the last axis laid out as (3 H Dh) -> out: (B N D), D = H Dh.
    With q, k, v: (B H N Dh) and s = Dh^-1/2:  S = s q k^T,  P = softmax(S),  O = P v."""

    def forward(self, qkv):
        q, k, v = einops.rearrange(qkv, "b n (three h dh) -> three b h n dh", three=3, h=self.heads)
        self.scale = q.shape[-1] ** -0.5
        self.q, self.k, self.v = q, k, v
        self.probs = softmax_last_axis((q @ k.swapaxes(-1, -2)) * self.scale)  # P: (B H N N)
        return einops.rearrange(self.probs @ v, "b h n dh -> b n (h dh)")

    def backward(self, grad):
        """Back through each forward step in reverse (matmul rule: Y = A B gives dA = dY B^T,
        dB = A^T dY; softmax rule: dS = P * (dP - rowsum(dP * P))):
            dO (B H N Dh) = grad with the heads split again
            O = P v:      dP = dO v^T (B H N N),   dv = P^T dO (B H N Dh)
            P = softmax:  dS = P * (dP - rowsum(dP * P))
            S = s q k^T:  dq = s dS k,   dk = s dS^T q
        and dq, dk, dv go back into the (3 H Dh) layout of qkv."""
        d_out = einops.rearrange(grad, "b n (h dh) -> b h n dh", h=self.heads)
        P = self.probs
        dv = P.swapaxes(-1, -2) @ d_out
        dP = d_out @ self.v.swapaxes(-1, -2)
        dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True)) * self.scale
        dq = dS @ self.k
        dk = dS.swapaxes(-1, -2) @ self.q
        xp = get_array_module(grad)
        return (einops.rearrange(xp.stack([dq, dk, dv]), "three b h n dh -> b n (three h dh)"),)
