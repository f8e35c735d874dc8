"""Max pooling over non-overlapping windows (kernel = stride).

    x (B C H W) -> y (B C H' W'),  H' = H // size, W' = W // size

Rows and columns past the last whole window are dropped, as in PyTorch.
Global average pooling needs no op of its own: it is `x.mean(axis=(2, 3))` (B C H W) -> (B C),
and Mean's backward already spreads dy / (H W) over every position.
"""
from minivit.backend import get_array_module
from minivit.engine import Function


def _windows(x, size):
    """(B C H W) -> (B C H' W' size*size): each window's entries on the last axis, (u v) order."""
    B, C, H, W = x.shape
    Ho, Wo = H // size, W // size
    x = x[:, :, :Ho * size, :Wo * size].reshape(B, C, Ho, size, Wo, size)
    return x.transpose(0, 1, 2, 4, 3, 5).reshape(B, C, Ho, Wo, size * size)


class MaxPool2d(Function):
    """y[b, c, i, j] = max over the size x size window at (size i, size j) of x.

    Only the window's largest entry (its argmax; the first one on a tie) changes y, with slope 1:
    dx = dy at each window's argmax, 0 elsewhere.
    """

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"max_pool2d: needs x (B C H W), got shape {x.shape}")
        if not 1 <= self.size <= min(x.shape[2:]):
            raise ValueError(f"max_pool2d: window size {self.size} does not fit a "
                             f"{x.shape[2]}x{x.shape[3]} input")
        xp = get_array_module(x)
        windows = _windows(x, self.size)
        self.argmax = windows.argmax(axis=-1)                          # B C H' W'
        return xp.take_along_axis(windows, self.argmax[..., None], axis=-1)[..., 0]

    def backward(self, grad):
        xp = get_array_module(grad)
        B, C, H, W = self.inputs[0].shape
        s, (Ho, Wo) = self.size, grad.shape[2:]
        hit = xp.arange(s * s) == self.argmax[..., None]               # B C H' W' (s s), one-hot
        dwindows = (hit * grad[..., None]).reshape(B, C, Ho, Wo, s, s)
        dx = xp.zeros((B, C, H, W), dtype=grad.dtype)
        dwindows = dwindows.transpose(0, 1, 2, 4, 3, 5).reshape(B, C, Ho * s, Wo * s)
        dx[:, :, :Ho * s, :Wo * s] = dwindows                          # dropped rows stay 0
        return (dx,)
