"""Matrix products: batched `matmul` and the `linear` layer y = x W + b."""
from minivit.engine import Function
from minivit.ops.arithmetic import sum_to


def _swap(a):
    return a.swapaxes(-1, -2)


class MatMul(Function):
    """Y = A @ B on the last two axes, batch axes broadcast: (... n k) @ (... k m) -> (... n m).
    Y_ij = sum_k A_ik B_kj, so dA = dY @ B^T and dB = A^T @ dY (summed over broadcast axes)."""

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul needs inputs with at least 2 axes, got {a.shape} and {b.shape}")
        return a @ b

    def backward(self, grad):
        a, b = self.inputs
        return sum_to(grad @ _swap(b.data), a.shape), sum_to(_swap(a.data) @ grad, b.shape)


class Linear(Function):
    """y = x W + b.  x: (... Din), W: (Din Dout), b: (Dout) -> y: (... Dout).

    All leading axes are flattened so the work is one large 2-D GEMM, (B*N Din) @ (Din Dout).
    dx = dy W^T;  dW = x^T dy (summed over every row);  db = dy summed over every row.
    """

    def forward(self, x, weight, bias=None):
        if x.shape[-1] != weight.shape[0]:
            raise ValueError(f"linear: input has {x.shape[-1]} features but the weight expects "
                             f"{weight.shape[0]} (weight shape {weight.shape})")
        self.x2d = x.reshape(-1, x.shape[-1])
        y = self.x2d @ weight
        if bias is not None:
            y += bias
        return y.reshape(x.shape[:-1] + (weight.shape[1],))

    def backward(self, grad):
        x, weight = self.inputs[0], self.inputs[1]
        grad2d = grad.reshape(-1, grad.shape[-1])
        dx = (grad2d @ weight.data.T).reshape(x.shape)
        dweight = self.x2d.T @ grad2d
        return (dx, dweight) if len(self.inputs) == 2 else (dx, dweight, grad2d.sum(axis=0))
