# Source of chapters/01_autograd.ipynb; rebuild with `python chapters/_build.py 01`.

# %% [markdown]
# # Chapter 1 — Autograd from scratch
#
# Training a network means nudging every parameter against the gradient of one number, the loss.
# A Vision Transformer has millions of parameters and the loss is a long composition of simple
# operations, so we need a way to get *all* the partial derivatives at once, exactly, and for
# about the price of one more forward pass. That way is **reverse-mode automatic
# differentiation**, and it is nothing more than the chain rule applied to a graph in the right
# order.
#
# In this chapter we
#
# 1. write an expression as a **computational graph**,
# 2. see why the gradients must be computed in **reverse topological order**,
# 3. build a tiny scalar autograd engine (about 50 lines of code) and check it against finite
#    differences,
# 4. do the same with `minivit.Tensor`, the engine the rest of the book uses, and look at the
#    graph it records, and
# 5. write a new op (a `Function`) with its own backward.

# %%
import math
import os
import sys
from pathlib import Path

try:
    import minivit
except ImportError:  # executed from chapters/ without minivit installed: use the repository
    sys.path.insert(0, str(Path.cwd().parent))
    import minivit

import matplotlib.pyplot as plt
import numpy as np

from minivit import Tensor, ops
from minivit.engine import topological_order

FAST = os.environ.get("MINIVIT_FAST") == "1"  # CI runs the chapters in fast mode
plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 90})
np.set_printoptions(precision=4, suppress=True)
print("fast mode:", FAST)

# %% [markdown]
# ## 1. A computational graph
#
# Take three numbers $a, b, c$ and the function
#
# $$L(a, b, c) = (a b + c)\, a .$$
#
# A computer evaluates it one elementary operation at a time, naming the intermediate results:
#
# $$e = a b, \qquad d = e + c, \qquad L = d\, a .$$
#
# Each line is a node of a directed graph, with an edge from every input to the result. The
# graph is acyclic (a result never feeds its own inputs), and notice that $a$ is used **twice**:
# once in $e$ and once in $L$.
#
# **The chain rule on a graph.** Write $\bar v = \partial L / \partial v$ for the gradient of the
# final output with respect to a node $v$ (the "adjoint" of $v$). If $v$ is consumed by the nodes
# $u_1, \dots, u_k$, then $L$ depends on $v$ only through them, so
#
# $$\bar v \;=\; \sum_{i=1}^{k} \bar u_i \, \frac{\partial u_i}{\partial v}.$$
#
# Every node needs only *local* derivatives ($\partial u / \partial v$ of one elementary
# operation) and the adjoints of its consumers. Start from $\bar L = 1$ and work backwards:
#
# | node | local derivatives | adjoint |
# |---|---|---|
# | $L = d a$ | $\partial L/\partial d = a$, $\partial L/\partial a = d$ | $\bar L = 1$ |
# | $d = e + c$ | $\partial d/\partial e = 1$, $\partial d/\partial c = 1$ | $\bar d = \bar L\, a$ |
# | $e = a b$ | $\partial e/\partial a = b$, $\partial e/\partial b = a$ | $\bar e = \bar d$ |
# | $c$ | | $\bar c = \bar d$ |
# | $b$ | | $\bar b = \bar e\, a$ |
# | $a$ (used twice) | | $\bar a = \bar L\, d + \bar e\, b$ |
#
# With $a = 2, b = -3, c = 10$: $e = -6$, $d = 4$, $L = 8$, and $\bar a = 4 - 6 = -2$,
# $\bar b = 4$, $\bar c = 2$. (Check: $L = a^2 b + a c$, so $\partial L/\partial a = 2ab + c = -2$.)
#
# **Why a topological order.** $\bar a$ is a *sum* over both uses of $a$. We may only pass
# $\bar a$ on (or report it) once *every* consumer of $a$ has contributed its term. Processing the
# nodes in reverse **topological order** — an order in which every node comes after all of its
# inputs — guarantees exactly that: when we reach a node, everything computed from it has
# already been processed.

# %% [markdown]
# ## 2. A scalar autograd engine in about 50 lines
#
# A `Value` holds a number, its gradient, the values it was computed from, and a small closure
# `backward_step` that knows the local derivatives of the operation that made it: it adds
# $\bar u \cdot \partial u / \partial v$ into each parent's `.grad`. Adding (`+=`) rather than
# assigning is what implements the sum over consumers.

# %%
class Value:
    """A scalar that remembers how it was computed."""

    def __init__(self, data, parents=(), op="", label=""):
        self.data, self.grad = float(data), 0.0
        self.parents, self.op, self.label = parents, op, label
        self.backward_step = lambda: None  # a leaf has nothing to pass on

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def backward_step():  # d(x + y)/dx = d(x + y)/dy = 1
            self.grad += out.grad
            other.grad += out.grad
        out.backward_step = backward_step
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def backward_step():  # d(xy)/dx = y, d(xy)/dy = x
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out.backward_step = backward_step
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def backward_step():  # d tanh(x)/dx = 1 - tanh(x)^2
            self.grad += (1 - t * t) * out.grad
        out.backward_step = backward_step
        return out

    __radd__, __rmul__ = __add__, __mul__
    def __neg__(self): return self * -1
    def __sub__(self, other): return self + (-other)
    def __repr__(self): return f"Value({self.label or self.op}: data={self.data:.4g}, grad={self.grad:.4g})"


def topological_sort(root):
    """Every value `root` depends on, each after all of its inputs (depth-first search)."""
    order, seen = [], set()

    def visit(v):
        if v not in seen:
            seen.add(v)
            for parent in v.parents:
                visit(parent)
            order.append(v)  # appended only after all of its inputs
    visit(root)
    return order


def backward(root):
    """Fill .grad of every value with dL/dvalue, L = root."""
    order = topological_sort(root)
    for v in order:
        v.grad = 0.0
    root.grad = 1.0  # dL/dL
    for v in reversed(order):  # outputs before inputs
        v.backward_step()

# %% [markdown]
# The engine on our example. The gradients must be the ones we derived by hand:
# $\bar a = -2$, $\bar b = 4$, $\bar c = 2$.

# %%
a, b, c = Value(2.0, label="a"), Value(-3.0, label="b"), Value(10.0, label="c")
e = a * b; e.label = "e"
d = e + c; d.label = "d"
L = d * a; L.label = "L"
backward(L)
print("topological order:", [v.label for v in topological_sort(L)])
for v in (a, b, c, e, d, L):
    print(v)
assert (a.grad, b.grad, c.grad) == (-2.0, 4.0, 2.0)

# %% [markdown]
# ### Drawing the graph
#
# A small helper draws a graph with matplotlib: values are boxes (data and gradient), operations
# are circles, arrows point from inputs to results (the forward direction; gradients flow
# against them).

# %%
def draw_graph(nodes, edges, title=None):
    """nodes: {key: (text, kind)} in topological order (the output last), kind 'value' or 'op';
    edges: [(from_key, to_key)]. A tidy-tree layout: the output on the right, each node's inputs
    one column to its left, every leaf on a row of its own."""
    inputs_of = {key: [s for s, t in edges if t == key] for key in nodes}
    position, rows = {}, [0]

    def place(key, depth):  # returns the row of `key`, placing it and its inputs first
        if key not in position:
            position[key] = None
            rows_of_inputs = [place(k, depth + 1) for k in inputs_of[key] if k not in position]
            if rows_of_inputs:
                row = sum(rows_of_inputs) / len(rows_of_inputs)
            else:
                row, rows[0] = rows[0], rows[0] + 1
            position[key] = (-depth, row)
        return position[key][1]

    place(list(nodes)[-1], 0)
    depth = -min(x for x, _ in position.values())
    fig, ax = plt.subplots(figsize=(1.25 * depth + 1.5, 0.62 * rows[0] + 0.6))
    xy = {key: (2.0 * x, -1.25 * y) for key, (x, y) in position.items()}
    for s, t in edges:  # long edges curve a little; all pass behind the boxes
        bend = -0.2 if abs(xy[t][0] - xy[s][0]) > 2.5 else 0.0
        ax.annotate("", xy=xy[t], xytext=xy[s], zorder=1,
                    arrowprops=dict(arrowstyle="-|>", color="0.45", lw=1.1, shrinkA=20, shrinkB=18,
                                    connectionstyle=f"arc3,rad={bend}"))
    for key, (text, kind) in nodes.items():
        style = (dict(boxstyle="round,pad=0.35", fc="#dbe9f6", ec="#3a6ea5") if kind == "value"
                 else dict(boxstyle="circle,pad=0.25", fc="#fde2c8", ec="#c66a00"))
        ax.text(*xy[key], text, ha="center", va="center", fontsize=8, bbox=style, zorder=3)
    xs, ys = zip(*xy.values())
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    plt.show()


def value_graph(root):
    """The nodes and edges of a Value graph, with an op node between inputs and result."""
    nodes, edges = {}, []
    for v in topological_sort(root):
        if v.op:
            nodes[("op", id(v))] = (v.op, "op")
            edges += [(id(p), ("op", id(v))) for p in v.parents]
            edges.append((("op", id(v)), id(v)))
        nodes[id(v)] = (f"{v.label or '·'}\ndata {v.data:.3g}\ngrad {v.grad:.3g}", "value")
    return nodes, edges


draw_graph(*value_graph(L), "L = (a b + c) a, after backward")

# %% [markdown]
# ### The order matters
#
# What goes wrong in any other order? Run the same `backward_step`s but visit $a$'s first
# consumer $e$ *before* $L$ has passed its gradient down: $e$ sees $\bar e = 0$ and passes
# nothing to $a$ and $b$. The sum over consumers is incomplete.

# %%
for v in (a, b, c, e, d, L):
    v.grad = 0.0
L.grad = 1.0
for v in (e, L, d):  # not a reverse topological order: e comes before d, one of its consumers
    v.backward_step()
print(f"wrong order: a.grad = {a.grad}, b.grad = {b.grad}, c.grad = {c.grad}  (should be -2, 4, 2)")

# %% [markdown]
# ### Checking against finite differences
#
# A derivative is a limit, $f'(x) = \lim_{h\to 0} (f(x+h) - f(x-h)) / 2h$. With a small $h$ the
# central difference approximates it to $O(h^2)$ — an independent check that needs no calculus.
# A slightly bigger example, one neuron $y = \tanh(w_1 x_1 + w_2 x_2 + b)$ with loss
# $(y - t)^2$ (the neuron is the one Andrej Karpathy's micrograd builds in its introduction;
# see Further reading):

# %%
def neuron_loss(x1, x2, w1, w2, bias, target=0.5):
    y = (w1 * x1 + w2 * x2 + bias).tanh()
    error = y - target
    return error * error


def loss_at(**values):  # the loss as a plain number, for finite differences
    return neuron_loss(**{name: Value(v) for name, v in values.items()}).data


inputs = dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, bias=6.88)
leaves = {name: Value(v, label=name) for name, v in inputs.items()}
loss = neuron_loss(**leaves)
loss.label = "loss"
backward(loss)

h = 1e-6
print(f"{'':>5} {'autograd':>12} {'central difference':>20}")
for name in inputs:
    plus = loss_at(**{**inputs, name: inputs[name] + h})
    minus = loss_at(**{**inputs, name: inputs[name] - h})
    numeric = (plus - minus) / (2 * h)
    print(f"{name:>5} {leaves[name].grad:12.8f} {numeric:20.8f}")
    assert abs(leaves[name].grad - numeric) < 1e-6

# %%
draw_graph(*value_graph(loss), "one neuron and a squared error, after backward")

# %% [markdown]
# One backward pass gives the gradient with respect to every input at once, whatever their
# number, for a cost comparable to the forward pass: that is the point of the *reverse* mode. (Finite differences would need two evaluations per input; for a ViT
# with 86 million parameters, 172 million forward passes.)
#
# ## 3. The same with `minivit.Tensor`
#
# minivit's engine (`minivit/engine.py`) has the same three ingredients, lifted from scalars to
# arrays:
#
# * a `Tensor` holds an array `data`, a gradient `grad` and the `creator` that made it,
# * each operation is a `Function` with a `forward` (arrays in, an array out) and a `backward`
#   (the output's gradient in, one gradient per input out), and
# * `Tensor.backward()` walks `minivit.engine.topological_order(root)` in reverse, adding up the
#   gradients of nodes used more than once.
#
# Here is our first example again, now as Tensors:

# %%
a = Tensor(2.0, requires_grad=True)
b = Tensor(-3.0, requires_grad=True)
c = Tensor(10.0, requires_grad=True)
L = (a * b + c) * a
L.backward()
print("L =", L.item(), "| grads:", a.grad, b.grad, c.grad)
assert (a.grad, b.grad, c.grad) == (-2.0, 4.0, 2.0)

order = topological_order(L)
print("topological order:", [type(t.creator).__name__ if t.creator else "leaf" for t in order])

# %% [markdown]
# The graph minivit recorded: each non-leaf Tensor points at its `creator`, a `Function` object
# whose `inputs` are Tensors again. We draw it with the same helper.

# %%
def tensor_graph(root, names):
    """Nodes and edges of minivit's graph: a Tensor box per node, its creator as an op circle."""
    nodes, edges = {}, []
    for t in topological_order(root):
        if t.creator is not None:
            nodes[("op", id(t))] = (type(t.creator).__name__, "op")
            edges += [(id(p), ("op", id(t))) for p in t.creator.inputs if p.requires_grad]
            edges.append((("op", id(t)), id(t)))
        text = names.get(id(t), "·") + (f" {t.shape}" if t.ndim else "")
        text += f"\ndata {float(t.data):.3g}" if t.size == 1 else ""
        text += f"\ngrad {float(t.grad):.3g}" if t.grad is not None and t.size == 1 else ""
        nodes[id(t)] = (text, "value")
    return nodes, edges


draw_graph(*tensor_graph(L, {id(a): "a", id(b): "b", id(c): "c", id(L): "L"}),
           "minivit's graph of L = (a b + c) a, after backward")

# %% [markdown]
# Only leaves keep their `.grad`; intermediate gradients live just long enough to be passed on
# (in `minivit.engine.leaf_gradients`, which `Tensor.backward` calls, the dictionary `grads`
# holds them and pops each one when its node is processed), which is what keeps memory in check for a deep network.
#
# ### Arrays: a layer and its gradients
#
# With arrays the chain rule is the same, only the local derivatives become matrix expressions.
# Take a batch of inputs $x$ (`B Din`), a weight $W$ (`Din Dout`), a bias $b$ (`Dout`), and
#
# $$z = xW + b, \qquad y = \tanh z, \qquad L = \textstyle\sum y^2 .$$
#
# By hand: $\bar y = 2y$, $\bar z = \bar y \odot (1 - y^2)$, and for $z_{nj} = \sum_k x_{nk}
# W_{kj} + b_j$: $\bar W = x^\top \bar z$ (`Din Dout`), $\bar b = \sum_n \bar z_n$ (`Dout`): the
# bias was broadcast over the batch, so its gradient sums over it. And $\bar x = \bar z W^\top$.

# %%
rng = np.random.default_rng(0)
B, Din, Dout = 4, 3, 2
x = Tensor(rng.standard_normal((B, Din)), requires_grad=True)
W = Tensor(rng.standard_normal((Din, Dout)), requires_grad=True)
bias = Tensor(np.zeros(Dout), requires_grad=True)

y = (x @ W + bias).tanh()
L = (y * y).sum()
L.backward()

z_bar = 2 * y.data * (1 - y.data ** 2)              # B Dout
assert W.grad.shape == (Din, Dout) and bias.grad.shape == (Dout,) and x.grad.shape == (B, Din)
print("max |dW - x^T z_bar|:", np.abs(W.grad - x.data.T @ z_bar).max())
print("max |db - sum_n z_bar|:", np.abs(bias.grad - z_bar.sum(axis=0)).max())
print("max |dx - z_bar W^T|:", np.abs(x.grad - z_bar @ W.data.T).max())
print("order:", [type(t.creator).__name__ if t.creator else "leaf" for t in topological_order(L)])

# %% [markdown]
# The `Add` in that graph broadcast `bias` (`Dout`) against `x @ W` (`B Dout`). Its backward uses
# `minivit.ops.arithmetic.sum_to`, which undoes broadcasting: a value copied to $B$ places
# collects the gradient of all $B$ copies.

# %%
from minivit.ops.arithmetic import sum_to

g = np.arange(8.0).reshape(4, 2)  # a gradient of shape (B Dout)
print("gradient (B Dout):\n", g)
print("summed to the bias shape (Dout):", sum_to(g, (2,)))
print("summed to shape (1 Dout):", sum_to(g, (1, 2)))

# %% [markdown]
# ### Gradients accumulate
#
# A leaf's `.grad` is *added to* by every backward pass (that is how a parameter used in several
# places, or in several micro-batches, collects all of its gradient). So before each optimizer
# step the gradients must be reset — `Module.zero_grad()` — or they keep growing:

# %%
w = Tensor(3.0, requires_grad=True)
for step in range(3):
    (w * w).backward()  # d(w^2)/dw = 6
    print(f"after backward #{step + 1}: w.grad = {w.grad}")
w.grad = None  # what zero_grad does

# %% [markdown]
# And when no gradient is needed (evaluation, the optimizer's own update), `minivit.no_grad()`
# records no graph at all:

# %%
with minivit.no_grad():
    out = (w * w) + 1
print("inside no_grad: requires_grad =", out.requires_grad, ", creator =", out.creator)

# %% [markdown]
# ## 4. Writing a new op
#
# Every op in `minivit/ops/` is a `Function` subclass. Here is minivit's own `Mul`, whose backward
# is the product rule followed by `sum_to` for broadcasting:

# %%
import inspect

from minivit.ops.arithmetic import Mul

print(inspect.getsource(Mul))

# %% [markdown]
# To add an op you write `forward` on arrays (keeping on `self` what the backward will need) and
# `backward`, returning one gradient per input. Say $y = \sin x$: $\partial y/\partial x =
# \cos x$, so $\bar x = \bar y \odot \cos x$. `minivit.gradcheck` (the subject of the next
# chapter) compares the result with finite differences:

# %%
from minivit import Function


class Sin(Function):
    """y = sin(x), elementwise.  dx = dy * cos(x)."""

    def forward(self, x):
        self.cos = np.cos(x)  # saved for backward
        return np.sin(x)

    def backward(self, grad):
        return (grad * self.cos,)


x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)  # B D
y = Sin()(x)
assert y.shape == x.shape == (3, 4)
errors = minivit.gradcheck(lambda t: Sin()(t), {"x": x}, name="sin")
print("relative error of the hand-written backward:", errors)

# %% [markdown]
# That is the whole engine. Everything else in minivit — linear layers, GELU, layernorm,
# softmax, attention, the cross-entropy — is more `Function`s with more interesting backward
# passes, which the next chapters derive one by one.
#
# ## Summary
#
# * An expression is a DAG of elementary operations; the chain rule says a node's gradient is the
#   sum, over its consumers, of the consumer's gradient times the local derivative.
# * Processing nodes in reverse topological order makes every sum complete before it is used;
#   one backward pass gives the gradient with respect to every input.
# * minivit's `Tensor`/`Function` are the same idea on arrays; broadcasting in the forward pass
#   becomes summation (`sum_to`) in the backward pass; leaf gradients accumulate.
#
# ## Exercises
#
# The graded exercises are in `chapters/exercises/` (start with its `README.md`): each file is
# one op with its forward written and its `backward` left to you, graded by `minivit.gradcheck`
# and by comparison with minivit's own op. After this chapter, start with the simplest one, the
# linear layer in `chapters/exercises/linear.py`; from the repository root:
#
# ```bash
# python -m pytest --exercises -k linear
# ```
#
# Chapter 2 asks for it too, in a cell of its own before it derives it, and grades it there on
# the same cases (`check("linear", Linear)`); so do chapters 3 and 4 with theirs.
#
# (Reference solutions, with derivations, are in `chapters/exercises/solutions/` — try first.)
#
# Thinking questions:
#
# 1. Our `Value` engine recurses in `topological_sort`; minivit's `topological_order` uses an
#    explicit stack. Why does that matter for a network with many layers? (Try a chain of 5,000
#    additions with `Value`.)
# 2. Add `__pow__` (for a constant exponent) and `exp` to `Value`, and check them with finite
#    differences. Which values must the closure capture?
# 3. The order in which the ops were *created* is also a topological order. Why? Why does
#    minivit still compute one, instead of recording the creation order?
# 4. `Tensor.backward` frees each intermediate gradient once it has been passed on. Which
#    intermediate *values* must still be kept until the backward pass, and where does minivit
#    keep them? (Look at what `GELU.forward` and `LayerNorm.forward` store on `self`.)

# %% [markdown]
# ### What you can now do
#
# * Write an expression as a computational graph and compute every node's gradient by hand,
#   summing over the node's consumers.
# * Explain why the backward pass must visit the nodes in reverse topological order, and show the
#   sums a wrong order leaves incomplete.
# * Build a scalar autograd engine and check its gradients against central differences.
# * Read the graph that `minivit.Tensor` records, see broadcasting become `sum_to` in the
#   backward pass, and reset gradients that accumulate.
# * Add an op to minivit as a `Function` with its own `backward`, and check it with
#   `minivit.gradcheck`.
#
# ### Further reading
#
# * Andrej Karpathy, *micrograd* (github.com/karpathy/micrograd): a scalar autograd engine with
#   a small neural-network library on top, close in spirit to section 2.
# * Atılım Güneş Baydin, Barak A. Pearlmutter, Alexey Andreyevich Radul, Jeffrey Mark Siskind,
#   "Automatic Differentiation in Machine Learning: a Survey", JMLR, 2018, arXiv:1502.05767:
#   forward and reverse mode, and how autograd systems implement them.
# * Andreas Griewank, Andrea Walther, *Evaluating Derivatives: Principles and Techniques of
#   Algorithmic Differentiation*, 2nd edition, SIAM, 2008: the textbook on the subject.
