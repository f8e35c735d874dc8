"""Exercise: the backward pass of a linear layer, y = x W + b.

Write `Linear.backward` below (the forward is done), then grade it:

    python -m pytest --exercises -k linear

See README.md in this folder. The answer is in solutions/ and in minivit/ops/: try first.
"""
from minivit.engine import Function


class Linear(Function):
    """y = x W + b.  x: (... Din), W: (Din Dout), b: (Dout) -> y: (... Dout).
    The leading axes of x are flattened into rows, so the work is one 2-D product."""

    def forward(self, x, weight, bias=None):
        self.x2d = x.reshape(-1, x.shape[-1])  # (rows Din), kept for backward
        y = self.x2d @ weight
        if bias is not None:
            y = y + bias
        return y.reshape(x.shape[:-1] + (weight.shape[1],))

    def backward(self, grad):
        """grad = dL/dy, shape (... Dout). Return a tuple with one gradient per input, each the
        shape of its input: (dx, dweight), or (dx, dweight, dbias) when a bias was given
        (then len(self.inputs) == 3). dx: (... Din), dweight: (Din Dout), dbias: (Dout).

        Hint: for one row, y_j = sum_i x_i W_ij + b_j. Ask which outputs each input touches
        and sum dL/dy over them:
          - x_i reaches every y_j of its row, through W_ij;
          - W_ij reaches y_j of every row;
          - b_j is added to y_j of every row.
        Each of dx and dweight is then a single matrix product of 2-D arrays: use
        grad.reshape(-1, Dout) (rows Dout), self.x2d (rows Din), self.inputs[1].data (Din Dout),
        and reshape dx back to self.inputs[0].shape.
        """
        raise NotImplementedError("exercise not done yet: write Linear.backward "
                                  "(its docstring has the shapes and a hint)")
