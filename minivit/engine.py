"""The autograd engine: a Tensor that remembers the Function that made it.

Forward: every op is a `Function`; calling it on Tensors runs `forward` on their arrays and
returns a new Tensor that points back at the Function (and so at its inputs).
Backward: `loss.backward()` orders the graph topologically and walks it in reverse, calling each
Function's hand-written `backward` to turn the gradient of its output into gradients of its inputs
(the chain rule). Gradients of leaves (parameters, inputs) accumulate in `.grad`.
"""
import contextlib

import numpy as np

from minivit import backend

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Inside this block ops record no graph (evaluation, optimizer steps). The switch is one
    for the whole process, threads included: enter it from the main thread only."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def as_array(data, dtype=None, like=None):
    """An array for `data`: with the device and dtype of `like` if given, else float32 unless
    `data` is already a float array or `dtype` says otherwise."""
    if like is not None:
        return backend.get_array_module(like).asarray(data, dtype=dtype or like.dtype)
    array = backend.get_array_module(data).asarray(data, dtype=dtype)
    return array if dtype is not None or array.dtype.kind == "f" else array.astype(np.float32)


class Tensor:
    """An array (`data`), its gradient (`grad`) and the Function that produced it (`creator`)."""

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = data.data if isinstance(data, Tensor) else as_array(data, dtype)
        self.grad = None
        self.requires_grad = requires_grad
        self.creator = None

    # --- what it is -------------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    device = property(lambda self: backend.device_of(self.data))

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, device={self.device}{grad})"

    def __len__(self):
        return len(self.data)

    def numpy(self):
        return backend.to_device(self.data, "cpu")

    def item(self):
        return float(self.data)

    def detach(self):
        return Tensor(self.data)

    def to(self, device=None, dtype=None):
        """Move the array in place to 'cpu'/'gpu' and/or cast it; returns self."""
        if device is not None:
            self.data = backend.to_device(self.data, device)
        if dtype is not None:
            self.data = self.data.astype(dtype)
        return self

    # --- backward -----------------------------------------------------------------------------
    def backward(self, grad=None):
        """Fill `.grad` of every leaf this Tensor depends on with d(self)/d(leaf), times `grad`.

        `grad` is the upstream gradient; it defaults to 1 for a scalar (a loss).
        """
        for leaf, leaf_grad in leaf_gradients(self, grad):
            leaf.grad = leaf_grad if leaf.grad is None else leaf.grad + leaf_grad

    # --- operators: thin wrappers over the ops in minivit/ops ----------------------------------
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __neg__(self): return ops.neg(self)
    def __pow__(self, exponent): return ops.power(self, exponent)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __getitem__(self, index): return ops.getitem(self, index)
    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def reshape(self, *shape): return ops.reshape(self, shape[0] if len(shape) == 1 else shape)
    def transpose(self, *axes): return ops.transpose(self, axes[0] if len(axes) == 1 else axes or None)
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def tanh(self): return ops.tanh(self)
    T = property(lambda self: ops.transpose(self))


def leaf_gradients(root, grad=None):
    """(leaf, d(root)/d(leaf) * grad) for every leaf that `root` depends on and that needs a
    gradient. It walks the graph topologically in reverse, calling each Function's `backward` to
    turn the gradient of its output into gradients of its inputs (the chain rule); a tensor used
    twice gets the sum of both gradients. It writes no `.grad`, so several threads may run it at
    once on graphs that share leaves (see minivit.parallel).
    """
    if grad is None:
        if root.size != 1:
            raise ValueError(f"backward() without a gradient needs a scalar, not shape {root.shape}")
        grad = backend.get_array_module(root.data).ones_like(root.data)
    grads = {id(root): as_array(grad, like=root.data)}
    found = []
    for tensor in reversed(topological_order(root)):
        g = grads.pop(id(tensor), None)
        if g is None:
            continue
        if tensor.creator is None:  # a leaf: every path to it has been summed by now
            found.append((tensor, g))
            continue
        for parent, parent_grad in zip(tensor.creator.inputs, tensor.creator.backward(g)):
            if parent_grad is None or not parent.requires_grad:
                continue
            previous = grads.get(id(parent))
            grads[id(parent)] = parent_grad if previous is None else previous + parent_grad
    return found


def topological_order(root):
    """Every Tensor that `root` depends on (and that needs a gradient), inputs before outputs.

    An iterative depth-first search: a tensor is appended after all of its inputs, and deep
    graphs cannot hit Python's recursion limit.
    """
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
        elif id(tensor) not in seen:
            seen.add(id(tensor))
            stack.append((tensor, True))
            if tensor.creator is not None:
                stack.extend((t, False) for t in tensor.creator.inputs if t.requires_grad)
    return order


class Function:
    """One op: `forward` maps arrays to an array, `backward` maps the output's gradient to the
    inputs' gradients. Subclasses keep what backward needs on `self`.

    `MyOp(option=...)(x, y)` builds the op with its options and calls it on Tensors.
    """

    def __init__(self, **options):
        self.__dict__.update(options)

    def __call__(self, *inputs):
        like = next((x.data for x in inputs if isinstance(x, Tensor)), None)
        inputs = [x if isinstance(x, Tensor) else Tensor(as_array(x, like=like)) for x in inputs]
        check_same_device(type(self).__name__, inputs)
        out = Tensor(self.forward(*(x.data for x in inputs)))
        if _grad_enabled and any(x.requires_grad for x in inputs):
            out.requires_grad = True
            out.creator = self
            self.inputs = inputs
        return out

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError


def check_same_device(op_name, tensors):
    devices = [t.device for t in tensors]
    if len(set(devices)) > 1:
        where = ", ".join(f"input {i} is on {d} ({'cupy' if d == 'gpu' else 'numpy'})"
                          for i, d in enumerate(devices))
        raise TypeError(f"{op_name}: inputs are on different devices: {where}; "
                        "move them with .to('cpu') or .to('gpu')")


from minivit import ops  # noqa: E402  (ops build on Tensor and Function defined above)
