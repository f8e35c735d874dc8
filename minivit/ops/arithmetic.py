"""Elementwise arithmetic with NumPy broadcasting, and the elementwise functions the composed
layers are built from. Shapes: any; the two operands `a` and `b` broadcast to the output's shape."""
import math

from minivit.backend import erf as erf_array
from minivit.backend import get_array_module
from minivit.engine import Function


def sum_to(grad, shape):
    """Undo broadcasting: sum `grad` over the axes that broadcasting added or stretched from 1.

    If y = f(x) broadcast x from `shape` to grad.shape, every copy of an entry received part of
    the gradient, so dL/dx sums those parts.
    """
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


class Add(Function):
    """y = a + b.  dy/da = dy/db = 1, so both get the upstream gradient (summed to shape)."""

    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        a, b = self.inputs
        return sum_to(grad, a.shape), sum_to(grad, b.shape)


class Sub(Function):
    """y = a - b.  dy/da = 1, dy/db = -1."""

    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        a, b = self.inputs
        return sum_to(grad, a.shape), sum_to(-grad, b.shape)


class Mul(Function):
    """y = a * b.  dy/da = b, dy/db = a (the product rule, entry by entry)."""

    def forward(self, a, b):
        return a * b

    def backward(self, grad):
        a, b = self.inputs
        return sum_to(grad * b.data, a.shape), sum_to(grad * a.data, b.shape)


class Div(Function):
    """y = a / b.  dy/da = 1/b, dy/db = -a/b^2 = -y/b."""

    def forward(self, a, b):
        self.y = a / b
        return self.y

    def backward(self, grad):
        a, b = self.inputs
        ga = grad / b.data
        return sum_to(ga, a.shape), sum_to(-ga * self.y, b.shape)


class Neg(Function):
    """y = -x.  dy/dx = -1."""

    def forward(self, x):
        return -x

    def backward(self, grad):
        return (-grad,)


class Power(Function):
    """y = x^p for a constant p.  dy/dx = p x^(p-1)."""

    def forward(self, x):
        return x ** self.exponent

    def backward(self, grad):
        x = self.inputs[0].data
        return (grad * self.exponent * x ** (self.exponent - 1),)


class Exp(Function):
    """y = e^x.  dy/dx = e^x = y."""

    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, grad):
        return (grad * self.y,)


class Log(Function):
    """y = ln x.  dy/dx = 1/x."""

    def forward(self, x):
        return get_array_module(x).log(x)

    def backward(self, grad):
        return (grad / self.inputs[0].data,)


class Tanh(Function):
    """y = tanh x.  dy/dx = 1 - tanh^2 x = 1 - y^2."""

    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, grad):
        return (grad * (1 - self.y * self.y),)


class Erf(Function):
    """y = erf x = 2/sqrt(pi) * integral_0^x e^(-t^2) dt.  dy/dx = 2/sqrt(pi) e^(-x^2)."""

    def forward(self, x):
        return erf_array(x)

    def backward(self, grad):
        x = self.inputs[0].data
        return (grad * (2 / math.sqrt(math.pi)) * get_array_module(x).exp(-x * x),)
