"""Reference solution of chapters/exercises/gelu.py. Try the exercise before reading this."""
import math

from minivit.backend import erf, get_array_module
from minivit.engine import Function

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
TANH_CUBIC = 0.044715


class GELU(Function):
    """GELU(x) = x Phi(x), Phi the standard normal CDF; elementwise, any shape.
    approximate='erf':  Phi(x) = (1 + erf(x / sqrt 2)) / 2  (exact)
    approximate='tanh': Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2"""

    def forward(self, x):
        xp = get_array_module(x)
        if self.approximate == "tanh":
            self.t = xp.tanh(SQRT_2_OVER_PI * (x + TANH_CUBIC * x ** 3))
            return 0.5 * x * (1 + self.t)
        self.cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
        return x * self.cdf

    def backward(self, grad):
        """erf:  product rule on x Phi(x), and Phi' = phi, the normal density e^(-x^2/2)/sqrt(2 pi):
                 dy/dx = Phi(x) + x phi(x).
        tanh: y = x (1 + t) / 2 with t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3):
              dy/dx = (1 + t) / 2 + x/2 (1 - t^2) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
        The op is elementwise, so dx = dy * dy/dx entry by entry."""
        x = self.inputs[0].data
        xp = get_array_module(x)
        if self.approximate == "tanh":
            du_dx = SQRT_2_OVER_PI * (1 + 3 * TANH_CUBIC * x * x)
            return (grad * (0.5 * (1 + self.t) + 0.5 * x * (1 - self.t * self.t) * du_dx),)
        pdf = xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return (grad * (self.cdf + x * pdf),)
