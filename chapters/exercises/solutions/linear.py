"""Reference solution of chapters/exercises/linear.py. Try the exercise before reading this."""
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
        """For one row: y_j = sum_i x_i W_ij + b_j.
        x_i feeds every y_j through W_ij:         dx_i  = sum_j dy_j W_ij    -> dx = dy W^T
        W_ij feeds y_j of every row r:             dW_ij = sum_r x_ri dy_rj   -> dW = x^T dy
        b_j is added to y_j of every row r:        db_j  = sum_r dy_rj
        """
        x, weight = self.inputs[0], self.inputs[1]
        grad2d = grad.reshape(-1, grad.shape[-1])             # (rows Dout)
        dx = (grad2d @ weight.data.T).reshape(x.shape)        # (... Din)
        dweight = self.x2d.T @ grad2d                         # (Din Dout)
        if len(self.inputs) == 2:
            return dx, dweight
        return dx, dweight, grad2d.sum(axis=0)                # dbias: (Dout)
