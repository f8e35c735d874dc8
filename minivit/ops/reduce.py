"""Reductions. Shapes: x any; y drops (or keeps as 1) the reduced axes."""
from minivit.backend import get_array_module
from minivit.engine import Function


def _expand_back(grad, input_shape, axis, keepdims):
    """Put back the reduced axes of `grad` as size 1, then broadcast to the input's shape."""
    if axis is not None and not keepdims:
        axes = (axis,) if isinstance(axis, int) else axis
        axes = sorted(a % len(input_shape) for a in axes)
        for a in axes:
            grad = grad.reshape(grad.shape[:a] + (1,) + grad.shape[a:])
    elif axis is None and not keepdims:
        grad = grad.reshape((1,) * len(input_shape))
    return get_array_module(grad).broadcast_to(grad, input_shape)


class Sum(Function):
    """y = sum of x over `axis`.  Each x_i adds to one y_j with weight 1: dx_i = dy_j."""

    def forward(self, x):
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, grad):
        return (_expand_back(grad, self.inputs[0].shape, self.axis, self.keepdims),)


class Mean(Function):
    """y = sum of x over `axis` / n.  dx_i = dy_j / n."""

    def forward(self, x):
        y = x.mean(axis=self.axis, keepdims=self.keepdims)
        self.count = x.size // max(y.size, 1)
        return y

    def backward(self, grad):
        return (_expand_back(grad / self.count, self.inputs[0].shape, self.axis, self.keepdims),)
