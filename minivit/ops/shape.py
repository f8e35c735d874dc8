"""Ops that move entries around without changing them: reshape, transpose, einops-style
rearrange, concat and indexing. Each backward sends every gradient entry back to where its
entry came from."""
import re

import einops

from minivit.backend import get_array_module
from minivit.engine import Function
from minivit.ops.arithmetic import sum_to


class Reshape(Function):
    """y = x viewed with a new shape.  Same entries, so dx = dy viewed with x's shape."""

    def forward(self, x):
        return x.reshape(self.shape)

    def backward(self, grad):
        return (grad.reshape(self.inputs[0].shape),)


class Transpose(Function):
    """y = x with its axes permuted (all reversed when `axes` is None).
    dx = dy with the inverse permutation."""

    def forward(self, x):
        self.axes = tuple(reversed(range(x.ndim))) if self.axes is None else tuple(self.axes)
        return x.transpose(self.axes)

    def backward(self, grad):
        inverse = sorted(range(len(self.axes)), key=self.axes.__getitem__)
        return (grad.transpose(inverse),)


class Rearrange(Function):
    """einops.rearrange, e.g. 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)' with p1=p2=P.
    A rearrange only moves entries, so dx = dy rearranged by the reversed pattern."""

    def forward(self, x):
        if "..." in self.pattern:
            raise ValueError("rearrange: patterns with '...' are not supported; name every axis")
        self.lengths = self.lengths or {}
        return einops.rearrange(x, self.pattern, **self.lengths)

    def backward(self, grad):
        left, right = self.pattern.split("->")
        lengths = axis_lengths(left, self.inputs[0].shape, self.lengths)
        return (einops.rearrange(grad, f"{right} -> {left}", **lengths),)


def axis_lengths(side, shape, known):
    """The length of every named axis on one side of a pattern, e.g. side 'b (h p1)' with
    shape (2, 32) and known {'p1': 4} gives {'b': 2, 'h': 8, 'p1': 4}."""
    lengths = dict(known)
    for (group, name), size in zip(re.findall(r"\(([^)]*)\)|(\w+)", side), shape):
        names = group.split() if group else [name]
        product = 1
        for n in names:
            product *= lengths.get(n, 1)
        unknown = [n for n in names if n not in lengths]
        if unknown:
            lengths[unknown[0]] = size // product
    return lengths


class BroadcastTo(Function):
    """y = x repeated along axes of size 1 (or new leading axes) up to `shape`, e.g. the class
    token (1 1 D) -> (B 1 D).  Every copy passes its gradient back: dx = dy summed to x's shape."""

    def forward(self, x):
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, grad):
        return (sum_to(grad, self.inputs[0].shape),)


class Concat(Function):
    """y = [x_1, x_2, ...] joined along `axis`.  dx_i = the slice of dy that x_i filled."""

    def forward(self, *xs):
        return get_array_module(*xs).concatenate(xs, axis=self.axis)

    def backward(self, grad):
        sizes = [x.shape[self.axis] for x in self.inputs]
        splits = [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]
        return tuple(get_array_module(grad).split(grad, splits, axis=self.axis))


class GetItem(Function):
    """y = x[index] (e.g. the class token, x[:, 0]).  dx is zero except where y was read from,
    which receives dy; an entry read twice (fancy indexing) receives both."""

    def forward(self, x):
        return x[self.index]

    def backward(self, grad):
        x = self.inputs[0]
        xp = get_array_module(grad)
        dx = xp.zeros(x.shape, dtype=grad.dtype)
        if is_basic_index(self.index):
            dx[self.index] = grad
        else:
            xp.add.at(dx, self.index, grad)
        return (dx,)


def is_basic_index(index):
    """True for ints, slices, None and ... (which never read an entry twice)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)
