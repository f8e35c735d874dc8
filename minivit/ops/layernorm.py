"""Layer normalisation over the last axis.  x: (... D), gamma, beta: (D) -> y: (... D)."""
from minivit.backend import get_array_module
from minivit.engine import Function


class LayerNorm(Function):
    """y = gamma * xhat + beta,  xhat = (x - mean) * r,  r = 1 / sqrt(var + eps).

    dgamma = sum over rows of dy * xhat;  dbeta = sum over rows of dy;  with g = dy * gamma,
    dx = r * (g - mean(g) - xhat * mean(g * xhat))  (mean and var depend on every x_i of a row).
    """

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        self.r = 1 / xp.sqrt((centred * centred).mean(axis=-1, keepdims=True) + self.eps)
        self.xhat = centred * self.r
        return self.xhat * gamma + beta

    def backward(self, grad):
        gamma = self.inputs[1].data
        rows = tuple(range(grad.ndim - 1))
        dgamma = (grad * self.xhat).sum(axis=rows)
        dbeta = grad.sum(axis=rows)
        g = grad * gamma
        dx = self.r * (g - g.mean(axis=-1, keepdims=True)
                       - self.xhat * (g * self.xhat).mean(axis=-1, keepdims=True))
        return dx, dgamma, dbeta
