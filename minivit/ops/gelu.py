"""GELU(x) = x * Phi(x), Phi the standard normal CDF, in two forms:
'erf' (exact; timm, PyTorch's default) and 'tanh' (the approximation the JAX checkpoints used).
Shapes: any, elementwise.

GELU runs on the MLP's widest activation (B N 4D), so each array pass costs: the formulas are
evaluated in place (`*=`, `+=`) in a few buffers instead of a new array per operator, and the
tanh form's are `fused` (backend.fused), one kernel each way on the GPU instead of about ten.
"""
import math

from minivit.backend import erf, fused, get_array_module
from minivit.engine import Function

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
TANH_CUBIC = 0.044715


@fused
def tanh_gelu(xp, x):
    """(y, t): y = x (1 + t) / 2, t = tanh(sqrt(2/pi) (x + 0.044715 x^3))."""
    u = x * x                                         # x*x: NumPy's x**3 is ~50x slower
    u *= SQRT_2_OVER_PI * TANH_CUBIC
    u += SQRT_2_OVER_PI
    u *= x                                            # u = sqrt(2/pi) (x + 0.044715 x^3)
    t = xp.tanh(u)
    y = t + 1
    y *= x
    y *= 0.5                                          # x (1 + t) / 2
    return y, t


@fused
def tanh_gelu_backward(xp, x, t, grad):
    du_dx = x * x
    du_dx *= SQRT_2_OVER_PI * 3 * TANH_CUBIC
    du_dx += SQRT_2_OVER_PI
    dx = 1 - t * t
    dx *= du_dx
    dx *= x
    dx += t
    dx += 1
    dx *= 0.5                                         # dy/dx = (1 + t + x (1 - t^2) du/dx) / 2
    dx *= grad
    return dx


class GELU(Function):
    """erf:  y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2;
             dy/dx = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi) (product rule).
    tanh: y = x (1 + t) / 2, t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3);
          dy/dx = (1 + t) / 2 + x (1 - t^2) / 2 * sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""

    def forward(self, x):
        if self.approximate not in ("erf", "tanh"):
            raise ValueError(f"gelu: approximate must be 'erf' or 'tanh', not {self.approximate!r}")
        if self.approximate == "tanh":
            y, self.t = tanh_gelu(x)
            return y
        self.cdf = erf(x / math.sqrt(2))
        self.cdf += 1
        self.cdf *= 0.5                               # Phi(x)
        return x * self.cdf

    def backward(self, grad):
        x = self.inputs[0].data
        if self.approximate == "tanh":
            return (tanh_gelu_backward(x, self.t, grad),)
        dx = get_array_module(x).exp(-0.5 * x * x)
        dx *= x
        dx *= 1 / math.sqrt(2 * math.pi)              # x phi(x)
        dx += self.cdf
        dx *= grad
        return (dx,)
