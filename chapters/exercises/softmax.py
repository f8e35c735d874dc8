"""Exercise: the backward pass of softmax.

Write `Softmax.backward` below (the forward is done), then grade it:

    python -m pytest --exercises -k softmax

See README.md in this folder. The answer is in solutions/ and in minivit/ops/: try first.
"""
from minivit.backend import get_array_module
from minivit.engine import Function


class Softmax(Function):
    """y_i = e^(x_i) / sum_j e^(x_j) along `self.axis`.  x: any shape -> y: the same."""

    def forward(self, x):
        e = get_array_module(x).exp(x - x.max(axis=self.axis, keepdims=True))  # no overflow
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, grad):
        """grad = dL/dy, the shape of x. Return (dx,): a tuple of one array, the shape of x.

        Hint: every y_i along the axis depends on every x_j (through the sum), so
          1. derive the Jacobian dy_i/dx_j with the quotient rule, the cases i = j and i != j,
             and write it in terms of y alone;
          2. dx_j = sum_i grad_i dy_i/dx_j: simplify it so that it needs one sum along
             self.axis (keepdims=True) and no (n n) matrix.
        The output y is kept in self.y. Mind self.axis: the tests also use axis=0.
        """
        raise NotImplementedError("exercise not done yet: write Softmax.backward "
                                  "(its docstring has the shapes and a hint)")
