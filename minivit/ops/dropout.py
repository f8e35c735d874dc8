"""Inverted dropout: zero each entry with probability p, scale the rest by 1/(1-p) so the
expected value is unchanged and evaluation needs no rescaling.  Shapes: any."""
from minivit import backend
from minivit.engine import Function


class Dropout(Function):
    """y = x * m,  m_i = 0 with probability p, else 1/(1-p).  dx = dy * m."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        keep = backend.rng(xp).random(x.shape, dtype=x.dtype) >= self.p
        self.mask = keep.astype(x.dtype) / (1 - self.p)
        return x * self.mask

    def backward(self, grad):
        return (grad * self.mask,)
