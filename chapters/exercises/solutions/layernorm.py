"""Reference solution of chapters/exercises/layernorm.py. Try the exercise before reading this."""
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
        """gamma and beta are shared by every row: dgamma = sum_rows dy * xhat, dbeta = sum_rows dy.
        For dx, within one row let g = dy * gamma (= dL/dxhat). With dmean/dx_i = 1/D and
        dr/dx_i = -r^3 (x_i - mean) / D = -r^2 xhat_i / D,
            dxhat_j/dx_i = r (delta_ij - 1/D) - xhat_j xhat_i r / D,
        so  dx_i = sum_j g_j dxhat_j/dx_i = r (g_i - mean(g) - xhat_i mean(g * xhat))."""
        gamma = self.inputs[1].data
        rows = tuple(range(grad.ndim - 1))
        dgamma = (grad * self.xhat).sum(axis=rows)
        dbeta = grad.sum(axis=rows)
        g = grad * gamma
        dx = self.r * (g - g.mean(axis=-1, keepdims=True)
                       - self.xhat * (g * self.xhat).mean(axis=-1, keepdims=True))
        return dx, dgamma, dbeta
