"""Layer normalisation over the last axis.  x: (... D), gamma, beta: (D) -> y: (... D)."""
from minivit.backend import fused, get_array_module
from minivit.engine import Function


@fused
def normalize(xp, centred, variance, eps, gamma, beta):
    """(xhat, y): xhat = (x - mean) / sqrt(var + eps), y = gamma * xhat + beta."""
    xhat = centred * (1 / xp.sqrt(variance + eps))    # the root on (... 1) rows on NumPy
    y = xhat * gamma
    y += beta
    return xhat, y


@fused
def layernorm_backward(xp, grad, gamma, xhat, variance, eps, mean_g, mean_g_xhat):
    """dx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps), g = dy * gamma."""
    dx = grad * gamma
    dx -= mean_g
    dx -= xhat * mean_g_xhat
    dx *= 1 / xp.sqrt(variance + eps)
    return dx


class LayerNorm(Function):
    """y = gamma * xhat + beta,  xhat = (x - mean) * r,  r = 1 / sqrt(var + eps).

    dgamma = sum over rows of dy * xhat;  dbeta = sum over rows of dy;  with g = dy * gamma,
    dx = r * (g - mean(g) - xhat * mean(g * xhat))  (mean and var depend on every x_i of a row).
    Row statistics are reductions; the elementwise rest is `fused`, one kernel on the GPU."""

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        centred = x - x.mean(axis=-1, keepdims=True)
        self.variance = xp.einsum("...i,...i->...", centred, centred)[..., None] / x.shape[-1]
        self.xhat, y = normalize(centred, self.variance, self.eps, gamma, beta)
        return y

    def backward(self, grad):
        gamma = self.inputs[1].data
        D = grad.shape[-1]
        g_xhat = self.xhat * grad                            # dy * xhat
        dgamma = g_xhat.reshape(-1, D).sum(axis=0)
        dbeta = grad.reshape(-1, D).sum(axis=0)
        mean_g = (grad @ gamma)[..., None] / D               # mean(g) of each row
        mean_g_xhat = (g_xhat @ gamma)[..., None] / D        # mean(g * xhat)
        dx = layernorm_backward(grad, gamma, self.xhat, self.variance, self.eps, mean_g, mean_g_xhat)
        return dx, dgamma, dbeta
