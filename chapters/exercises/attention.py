"""Exercise: the backward pass of multi-head self-attention.

Write `Attention.backward` below (the forward is done), then grade it:

    python -m pytest --exercises -k attention

Do the linear and softmax exercises first: this one uses both. See README.md in this folder.
The answer is in solutions/ and in minivit/ops/: try first.
"""
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
        """grad = dL/dout, shape (B N D). Return (dqkv,): a tuple of one array of shape (B N 3D).

        Hint: go back through the forward one step at a time, last step first.
          1. Split the heads of grad again to get dO (B H N Dh): the forward's last rearrange,
             reversed (einops.rearrange(grad, "b n (h dh) -> b h n dh", h=self.heads)).
          2. O = P v is a (batched) matrix product: the rule you derived for linear gives
             dP (B H N N) and dv (B H N Dh). Use .swapaxes(-1, -2) to transpose the last two axes.
          3. P = softmax(S) over the last axis: your softmax exercise gives dS from dP.
          4. S = s q k^T: a matrix product again, scaled: dq and dk (B H N Dh each).
          5. Put dq, dk, dv back where q, k, v came from: stack them (xp.stack) into
             (3 B H N Dh) and undo the forward's first rearrange.
        Kept from the forward: self.q, self.k, self.v, self.probs (P), self.scale (s).
        """
        raise NotImplementedError("exercise not done yet: write Attention.backward "
                                  "(its docstring has the shapes and a hint)")
