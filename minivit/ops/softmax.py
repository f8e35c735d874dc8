"""Softmax along one axis (the last by default).  Shapes: x any -> y the same."""
from minivit.backend import fused, get_array_module
from minivit.engine import Function


def softmax_array(x, axis=-1):
    """softmax on a raw array; subtracting the max first keeps exp from overflowing."""
    e = get_array_module(x).exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@fused
def softmax_backward_formula(xp, y, grad, dot):
    dx = grad - dot
    dx *= y
    return dx


def softmax_backward_array(y, grad, axis=-1):
    """dy_i/dx_j = y_i (delta_ij - y_j), so dx_j = y_j (g_j - sum_i g_i y_i)."""
    return softmax_backward_formula(y, grad, (grad * y).sum(axis=axis, keepdims=True))


class Softmax(Function):
    """y_i = e^(x_i) / sum_j e^(x_j).  dx = y * (dy - sum(dy * y)) along the axis."""

    def forward(self, x):
        self.y = softmax_array(x, self.axis)
        return self.y

    def backward(self, grad):
        return (softmax_backward_array(self.y, grad, self.axis),)
