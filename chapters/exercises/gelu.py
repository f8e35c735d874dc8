"""Exercise: the backward pass of GELU, y = x Phi(x), in both its forms.

Write `GELU.backward` below (the forward is done), then grade it:

    python -m pytest --exercises -k gelu

See README.md in this folder. The answer is in solutions/ and in minivit/ops/: try first.
"""
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
        """grad = dL/dy, the shape of x. Return (dx,): a tuple of one array, the shape of x.

        Hint: the op is elementwise, so dx = grad * dy/dx entry by entry; derive dy/dx.
          - 'erf': y = x Phi(x) is a product. The derivative of a CDF is its density: here the
            standard normal density phi(x) = exp(-x^2 / 2) / sqrt(2 pi). Phi(x) is self.cdf.
          - 'tanh': y = x (1 + t) / 2 with t = tanh(u) and u = sqrt(2/pi) (x + 0.044715 x^3):
            product rule, then the chain rule through t and u (d tanh(u)/du = 1 - tanh(u)^2).
            t is self.t.
        x is self.inputs[0].data; xp = get_array_module(x) gives numpy (or cupy) for exp.
        """
        raise NotImplementedError("exercise not done yet: write GELU.backward "
                                  "(its docstring has the shapes and a hint)")
