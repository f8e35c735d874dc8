"""Layer normalisation over the last axis.  x: (... D), gamma, beta: (D) -> y: (... D)."""
from minivit.backend import get_array_module
from minivit.engine import Function


class LayerNorm(Function):
    """y = gamma * xhat + beta,  xhat = (x - mean) * r,  r = 1 / sqrt(var + eps).

    dgamma = sum over rows of dy * xhat;  dbeta = sum over rows of dy;  with g = dy * gamma,
    dx = r * (g - mean(g) - xhat * mean(g * xhat))  (mean and var depend on every x_i of a row).
    (Computed in place in a few (... D) buffers: on a ViT's activations every pass counts.)
    """

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        xhat = x - x.mean(axis=-1, keepdims=True)
        variance = xp.einsum("...i,...i->...", xhat, xhat)[..., None] / x.shape[-1]
        self.r = 1 / xp.sqrt(variance + self.eps)
        xhat *= self.r
        self.xhat = xhat
        y = xhat * gamma
        y += beta
        return y

    def backward(self, grad):
        xp = get_array_module(grad)
        gamma = self.inputs[1].data
        D = grad.shape[-1]
        g_xhat = self.xhat * grad                      # dy * xhat
        dgamma = g_xhat.reshape(-1, D).sum(axis=0)
        dbeta = grad.reshape(-1, D).sum(axis=0)
        g_xhat *= gamma                                # g * xhat
        mean_g_xhat = g_xhat.mean(axis=-1, keepdims=True)
        dx = grad * gamma                              # g
        dx -= dx.mean(axis=-1, keepdims=True)
        dx -= xp.multiply(self.xhat, mean_g_xhat, out=g_xhat)
        dx *= self.r
        return dx, dgamma, dbeta
