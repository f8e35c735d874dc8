"""ReLU(x) = max(x, 0).  Shapes: any, elementwise."""
from minivit.backend import get_array_module
from minivit.engine import Function


class ReLU(Function):
    """y = x where x > 0, else 0.  dy/dx = 1 where x > 0, else 0 (at x = 0 we take 0, as
    PyTorch does), so dx = dy * [x > 0]."""

    def forward(self, x):
        self.positive = x > 0
        return get_array_module(x).maximum(x, 0)

    def backward(self, grad):
        return (grad * self.positive,)
