"""Exercise: the backward pass of layer normalisation.

Write `LayerNorm.backward` below (the forward is done), then grade it:

    python -m pytest --exercises -k layernorm

See README.md in this folder. The answer is in solutions/ and in minivit/ops/: try first.
"""
from minivit.backend import get_array_module
from minivit.engine import Function


class LayerNorm(Function):
    """Normalise the last axis, then scale and shift.  x: (... D), gamma, beta: (D) -> y: (... D).
    y = gamma * xhat + beta,  xhat = (x - mean) * r,  r = 1 / sqrt(var + eps)."""

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        self.r = 1 / xp.sqrt((centred * centred).mean(axis=-1, keepdims=True) + self.eps)  # (... 1)
        self.xhat = centred * self.r                                                         # (... D)
        return self.xhat * gamma + beta

    def backward(self, grad):
        """grad = dL/dy, shape (... D). Return (dx, dgamma, dbeta): shapes (... D), (D), (D).

        Hint:
          - gamma and beta are shared by every row (every position of the leading axes): their
            gradients sum a per-row quantity over all rows.
          - dx is the real exercise: the mean and the variance of a row depend on every x of
            that row, so each x_i reaches every xhat_j of its row. Let g = dL/dxhat = grad * gamma
            and derive dx_i = sum_j g_j dxhat_j/dx_i, using dmean/dx_i = 1/D and the derivative of
            r = (var + eps)^(-1/2) with respect to x_i (var = mean of (x - mean)^2).
          - Simplify until dx needs only self.r, self.xhat, g and two means over the last axis
            (keepdims=True); no (D D) matrix.
        gamma is self.inputs[1].data.
        """
        raise NotImplementedError("exercise not done yet: write LayerNorm.backward "
                                  "(its docstring has the shapes and a hint)")
