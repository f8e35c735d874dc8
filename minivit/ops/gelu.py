"""GELU(x) = x * Phi(x), Phi the standard normal CDF, in two forms:
'erf' (exact; timm, PyTorch's default) and 'tanh' (the approximation the JAX checkpoints used).
Shapes: any, elementwise."""
import math

from minivit.backend import erf, get_array_module
from minivit.engine import Function

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
TANH_CUBIC = 0.044715


class GELU(Function):
    """erf:  y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2;
             dy/dx = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi) (product rule).
    tanh: y = x (1 + t) / 2, t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3);
          dy/dx = (1 + t) / 2 + x (1 - t^2) / 2 * sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""

    def forward(self, x):
        if self.approximate not in ("erf", "tanh"):
            raise ValueError(f"gelu: approximate must be 'erf' or 'tanh', not {self.approximate!r}")
        xp = get_array_module(x)
        if self.approximate == "tanh":
            self.t = xp.tanh(SQRT_2_OVER_PI * x * (1 + TANH_CUBIC * x * x))  # x*x: NumPy's x**3 is ~50x slower
            return 0.5 * x * (1 + self.t)
        self.cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
        return x * self.cdf

    def backward(self, grad):
        x = self.inputs[0].data
        xp = get_array_module(x)
        if self.approximate == "tanh":
            t = self.t
            du_dx = SQRT_2_OVER_PI * (1 + 3 * TANH_CUBIC * x * x)
            return (grad * 0.5 * (1 + t + x * (1 - t * t) * du_dx),)
        pdf = xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return (grad * (self.cdf + x * pdf),)
