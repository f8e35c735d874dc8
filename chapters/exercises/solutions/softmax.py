"""Reference solution of chapters/exercises/softmax.py. Try the exercise before reading this."""
from minivit.backend import get_array_module
from minivit.engine import Function


class Softmax(Function):
    """y_i = e^(x_i) / sum_j e^(x_j) along `self.axis`.  x: any shape -> y: the same."""

    def forward(self, x):
        e = get_array_module(x).exp(x - x.max(axis=self.axis, keepdims=True))  # no overflow
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, grad):
        """dy_i/dx_j = y_i (delta_ij - y_j)   (quotient rule; i = j and i != j together), so
        dx_j = sum_i dy_i y_i (delta_ij - y_j) = y_j (dy_j - sum_i dy_i y_i):
        no (n n) Jacobian needed, one sum along the axis."""
        y = self.y
        return (y * (grad - (grad * y).sum(axis=self.axis, keepdims=True)),)
