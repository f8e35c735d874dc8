# Source of chapters/03_attention.ipynb; rebuild with `python chapters/_build.py 03`.

# %% [markdown]
# # Chapter 3 — Attention
#
# Attention is the one layer of a transformer that mixes information *between* tokens. Every
# token emits a **query** ("what am I looking for?"), a **key** ("what do I contain?") and a
# **value** ("what do I pass on?"); each token's output is an average of all the values,
# weighted by how well its query matches each key:
#
# $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\Bigl(\frac{Q K^\top}{\sqrt{D_h}}\Bigr) V .$$
#
# This chapter builds it in steps — softmax and its backward, one head, several heads, the fused
# QKV projection that minivit uses — then derives the backward pass of the whole thing, checks
# it with `minivit.gradcheck`, and looks at attention matrices.
#
# Three times it is **your turn** first: the softmax backward, attention's forward on the fused
# projection (with a mask), and attention's backward. Each is a cell for you to fill, then a
# cell that grades it in place with the cases of `python -m pytest --exercises` (as in
# chapter 2), and only then the derivation and one solution. In the notebook as committed they
# are still to write, so each check says "not done yet".
#
# Shapes (einops notation): `B` batch, `N` tokens, `D` model width, `H` heads,
# `Dh = D / H` the width of one head.

# %%
import inspect
import math
import os
import sys
import timeit
from pathlib import Path

try:
    import minivit
except ImportError:  # executed from chapters/ without minivit installed: use the repository
    sys.path.insert(0, str(Path.cwd().parent))
    import minivit

import einops
import matplotlib.pyplot as plt
import numpy as np

from minivit import Tensor, gradcheck, nn, ops
from minivit.engine import Function, topological_order
from minivit.ops import composed
from minivit.ops.attention import Attention

from exercises.check import check  # chapters/exercises/check.py: grades a "your turn" in place

FAST = os.environ.get("MINIVIT_FAST") == "1"  # CI runs the chapters in fast mode
plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 90})
np.set_printoptions(precision=4, suppress=True)
minivit.manual_seed(0)  # the initial weights of the modules below
rng = np.random.default_rng(0)
print("fast mode:", FAST)

# %% [markdown]
# ## 1. Softmax
#
# Softmax turns a vector of scores into a probability distribution:
#
# $$y_i = \frac{e^{x_i}}{\sum_j e^{x_j}} .$$
#
# **Stability.** Adding the same constant $c$ to every $x_i$ multiplies numerator and
# denominator by $e^c$: softmax is unchanged. Computing it naively overflows as soon as a score
# passes about 89 in float32 (or 710 in float64); subtracting the row maximum first makes the
# largest exponent $e^0 = 1$ and nothing can overflow.

# %%
scores = np.array([1000.0, 1001.0, 1002.0])
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(scores) / np.exp(scores).sum()
shifted = np.exp(scores - scores.max())
print("naive:  ", naive)
print("stable: ", shifted / shifted.sum())

# %% [markdown]
# ### Your turn: the softmax backward
#
# Every $y_i$ depends on every $x_j$ of its row, through the sum. Derive the Jacobian
# $\partial y_i / \partial x_j$ with the quotient rule (the cases $i = j$ and $i \ne j$), write it
# in terms of $y$ alone, and simplify $\bar x_j = \sum_i \bar y_i\,\partial y_i/\partial x_j$
# until it needs one sum along the axis (`keepdims=True`) and no $N \times N$ matrix. minivit's
# `Softmax` below keeps its output $y$ (`self.y`); softmax runs along `self.axis`, which the
# check's cases vary (the last axis, an axis of length 1, axis 0). Return `(dx,)`.

# %%
class Softmax(Function):
    """y_i = e^(x_i) / sum_j e^(x_j) along self.axis.  x: any shape -> y: the same."""

    def forward(self, x):
        e = np.exp(x - x.max(axis=self.axis, keepdims=True))  # no overflow
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, grad):
        """grad: the shape of x -> (dx,)."""
        raise NotImplementedError("exercise not done yet: write Softmax.backward")


# %%
check("softmax", Softmax)

# %% [markdown]
# ### The derivation
#
# **Backward.** Every output depends on every input. Differentiating the quotient,
#
# $$\frac{\partial y_i}{\partial x_j} = y_i(\delta_{ij} - y_j), \qquad
# J = \operatorname{diag}(y) - y y^\top .$$
#
# $J$ is symmetric, and $J\mathbf 1 = y - y\,(y^\top \mathbf 1) = 0$: moving every score by the
# same amount changes nothing, the shift invariance again. Given $\bar y$, the chain rule gives
# $\bar x = J^\top \bar y$, which we never need to form as an $N\times N$ matrix per row:
#
# $$\bar x_j = \sum_i \bar y_i\, y_i (\delta_{ij} - y_j) = y_j \Bigl(\bar y_j - \sum_i \bar y_i y_i\Bigr),
# \qquad \boxed{\;\bar x = y \odot \bigl(\bar y - \langle \bar y, y\rangle\bigr)\;}$$
#
# $O(N)$ per row instead of $O(N^2)$, and it needs only the output $y$ — which is why minivit's
# `Softmax` keeps `self.y` from the forward pass.
#
# ### One solution
#
# The reference solution (`exercises/solutions/softmax.py`), checked, then its backward:

# %%
from exercises.solutions import softmax as softmax_solution

check("softmax", softmax_solution)
print(inspect.getsource(softmax_solution.Softmax.backward))

# %% [markdown]
# On one row of five scores: the Jacobian formed in full, the formula, and minivit's op agree.

# %%
x = rng.standard_normal(5)
y = np.exp(x - x.max()); y /= y.sum()
J = np.diag(y) - np.outer(y, y)
grad_y = rng.standard_normal(5)
print("J @ 1 =", J @ np.ones(5))
print("J^T dy          :", J.T @ grad_y)
print("y * (dy - <dy,y>):", y * (grad_y - grad_y @ y))

xt = Tensor(x, requires_grad=True)
ops.softmax(xt).backward(grad_y)
print("minivit softmax  :", xt.grad)
assert np.allclose(xt.grad, J.T @ grad_y)

# %%
scores = Tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)   # B H N N
print("gradcheck softmax:", gradcheck(ops.softmax, {"scores": scores}, name="softmax"))
a, b = ops.softmax(scores).data, composed.softmax(scores).data
print("fused vs composed, max |Δ|:", np.abs(a - b).max())

# %% [markdown]
# ## 2. Why divide by $\sqrt{D_h}$
#
# Softmax is sensitive to the *scale* of its input: multiplying the scores by a large factor
# pushes it towards a one-hot vector (all weight on the maximum), a small factor towards uniform.

# %%
scores = np.array([1.0, 2.0, 0.5, 3.0, 1.5])
fig, axes = plt.subplots(1, 4, figsize=(11, 2.3), sharey=True)
for ax, scale in zip(axes, (0.25, 1, 3, 10)):
    e = np.exp(scale * (scores - scores.max()))
    ax.bar(range(5), e / e.sum(), color="C0")
    ax.set_title(f"softmax({scale} · scores)", fontsize=10)
    ax.set_xticks(range(5))
axes[0].set_ylabel("weight")
plt.tight_layout(); plt.show()

# %% [markdown]
# A query–key score is a dot product of two $D_h$-dimensional vectors. If their entries are
# independent with mean 0 and variance 1, then $q\cdot k = \sum_{d=1}^{D_h} q_d k_d$ is a sum of
# $D_h$ terms of variance 1: its variance is $D_h$. Wide heads would therefore produce huge
# scores, a nearly one-hot softmax — and, since $J = \operatorname{diag}(y) - yy^\top \to 0$ when $y$
# is one-hot, nearly zero gradients. Dividing by $\sqrt{D_h}$ brings the variance back to 1
# whatever the head width. The plot measures it: the entropy of attention rows over 64 keys
# (uniform $= \ln 64 \approx 4.16$, one-hot $= 0$).

# %%
def row_entropy(scores):
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return float(-(p * np.log(p + 1e-30)).sum(-1).mean())


widths = [4, 8, 16, 32, 64, 128, 256, 512]
queries = 16 if FAST else 128
unscaled, scaled = [], []
for dh in widths:
    q, k = rng.standard_normal((queries, dh)), rng.standard_normal((64, dh))
    unscaled.append(row_entropy(q @ k.T))
    scaled.append(row_entropy(q @ k.T / math.sqrt(dh)))

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.semilogx(widths, unscaled, "o-", label="softmax(q k^T)")
ax.semilogx(widths, scaled, "o-", label="softmax(q k^T / sqrt(Dh))")
ax.axhline(math.log(64), color="0.6", ls="--", lw=1)
ax.text(4, math.log(64) - 0.35, "uniform over 64 keys", fontsize=8, color="0.4")
ax.set(xlabel="head width Dh", ylabel="mean entropy of a row", ylim=(0, 4.5))
ax.set_xticks(widths, widths)
ax.legend(fontsize=8); ax.set_title("scaling keeps the softmax out of saturation", fontsize=10)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 3. One head
#
# Tokens $X$ (`B N D`) are projected by three matrices $W_q, W_k, W_v$ (`D Dh`):
#
# $$Q = XW_q,\; K = XW_k,\; V = XW_v \quad (B\,N\,D_h), \qquad
# S = \frac{QK^\top}{\sqrt{D_h}} \quad (B\,N\,N), \qquad P = \operatorname{softmax}(S), \qquad O = PV \quad (B\,N\,D_h).$$
#
# Row $i$ of $P$ says how much token $i$ takes from each token $j$; it sums to 1.

# %%
B, N, D, H = 2, 10, 12, 3
Dh = D // H
X = rng.standard_normal((B, N, D))


def softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def one_head(X, Wq, Wk, Wv):
    Q, K, V = X @ Wq, X @ Wk, X @ Wv                         # B N Dh each
    S = Q @ K.swapaxes(-1, -2) / math.sqrt(Q.shape[-1])       # B N N
    P = softmax(S)                                            # B N N, rows sum to 1
    return P @ V, P                                           # B N Dh


Wq, Wk, Wv = (rng.standard_normal((D, D)) / math.sqrt(D) for _ in range(3))  # all H heads side by side
O, P = one_head(X, Wq[:, :Dh], Wk[:, :Dh], Wv[:, :Dh])                      # the first head only
assert O.shape == (B, N, Dh) and P.shape == (B, N, N)
assert np.allclose(P.sum(-1), 1)
print("O:", O.shape, "| P:", P.shape, "| row sums of P:", P.sum(-1)[0, :4])

# %% [markdown]
# ## 4. Several heads
#
# One softmax can only express one pattern of "who looks at whom". Multi-head attention runs
# $H$ heads in parallel, each with its own $D_h = D/H$ slice of the projections, and concatenates
# their outputs back to width $D$ (followed by one output projection $W_o$, `D D`). The cost is
# the same as one head of width $D$: the heads split the width, they do not multiply it.
#
# With arrays, "$H$ heads in parallel" is just another batch axis: split the feature axis with
# `rearrange('b n (h dh) -> b h n dh')`, compute attention on `B H N Dh`, merge back with
# `rearrange('b h n dh -> b n (h dh)')`.

# %%
def multi_head(X, Wq, Wk, Wv, heads):
    split = lambda T: einops.rearrange(T, "b n (h dh) -> b h n dh", h=heads)
    Q, K, V = split(X @ Wq), split(X @ Wk), split(X @ Wv)                    # B H N Dh
    P = softmax(Q @ K.swapaxes(-1, -2) / math.sqrt(Q.shape[-1]))             # B H N N
    return einops.rearrange(P @ V, "b h n dh -> b n (h dh)"), P              # B N D


O_all, P_all = multi_head(X, Wq, Wk, Wv, H)
assert O_all.shape == (B, N, D) and P_all.shape == (B, H, N, N)

# the same thing, one head at a time
columns = lambda h: slice(h * Dh, (h + 1) * Dh)
loop = np.concatenate([one_head(X, Wq[:, columns(h)], Wk[:, columns(h)], Wv[:, columns(h)])[0]
                       for h in range(H)], axis=-1)
print("batched heads vs a loop over heads, max |Δ|:", np.abs(O_all - loop).max())

# %% [markdown]
# ## 5. The fused QKV projection
#
# Three matrix products $XW_q, XW_k, XW_v$ are one matrix product with the three weights side by
# side: $W_{qkv} = [W_q \;|\; W_k \;|\; W_v]$ (`D 3D`), giving `qkv` (`B N 3D`). One large GEMM
# is faster than three small ones. minivit's `MultiHeadAttention` does exactly that
# (`self.qkv = Linear(dim, 3 * dim)`), and the attention op `minivit.ops.attention(qkv, heads)`
# takes that `B N 3D` array with its last axis laid out as **`(3 H Dh)`**: first all of $q$
# (head 0's $D_h$ features, then head 1's, …), then all of $k$, then all of $v$. (This is also
# timm's `qkv` layout.)

# %%
fig, ax = plt.subplots(figsize=(10, 1.3))
strip = np.zeros((1, 3 * D, 3))                                      # an RGB strip, one pixel per feature
for part, cmap in enumerate(("Blues", "Oranges", "Greens")):
    for h in range(H):
        start = (part * H + h) * Dh
        strip[0, start:start + Dh] = plt.get_cmap(cmap)(0.45 + 0.45 * h / max(H - 1, 1))[:3]
        ax.text(start + Dh / 2 - 0.5, 0, f"{'qkv'[part]}, head {h}", ha="center", va="center",
                fontsize=8, color="white")
ax.imshow(strip, aspect="auto")
ax.set_yticks([]); ax.set_xticks(np.arange(0, 3 * D + 1, Dh) - 0.5, np.arange(0, 3 * D + 1, Dh))
ax.set_xlabel("index on the last axis of qkv")
ax.set_title(f"qkv (B N 3D) with D = {D}, H = {H}, Dh = {Dh}: the last axis is laid out (3 H Dh)", fontsize=10)
plt.show()

# %% [markdown]
# ### Your turn: attention on the fused projection, with a mask
#
# Write `attention_forward(qkv, heads, mask=None)`: from `qkv` (`B N 3D`, laid out `(3 H Dh)`),
# the output `B N D` of multi-head attention, the heads merged back in the order `(h dh)`:
# sections 3 and 4 again, on one array laid out as above. Split `qkv` into $q, k, v$
# (`B H N Dh` each) with one `rearrange`, then $S = qk^\top/\sqrt{D_h}$, a stable softmax over
# the keys, $O = PV$.
#
# And a **mask**: `None`, or a boolean array `N N` (or `B N N`, one per image) that is `True`
# where query $i$ may attend to key $j$. A masked-out key gets the score $-\infty$ before the
# softmax, so its weight is exactly 0 (`np.where(mask, S, -np.inf)`; a `B N N` mask needs an
# axis for the heads, `mask[:, None]`). Every query keeps at least one key. A *causal* mask, as
# in a language model's decoder, lets query $i$ see keys $0 \dots i$ only. The check's seven
# cases: without a mask (several heads, one head, one token) against minivit's fused op, and
# with a causal `N N` mask, a random `B N N` one, a one-token mask and a mask that is all
# `True`.

# %%
def attention_forward(qkv, heads, mask=None):
    """qkv: (B N 3D), laid out (3 H Dh); mask: None, or bool (N N) or (B N N), True where
    query i may attend to key j -> out: (B N D), D = H Dh, heads merged (h dh)."""
    raise NotImplementedError("exercise not done yet: write attention_forward")


# %%
check("attention_forward", attention_forward)

# %% [markdown]
# ### One solution
#
# The reference solution (`exercises/solutions/attention_forward.py`), checked, then its code:

# %%
from exercises.solutions import attention_forward as attention_forward_solution

check("attention_forward", attention_forward_solution)
print(inspect.getsource(attention_forward_solution.attention_forward))

# %% [markdown]
# minivit's op, `minivit.ops.attention(qkv, heads)` (its `Attention` function, without a mask),
# splits the same layout the same way, and agrees with section 4's heads:

# %%
W_qkv = np.concatenate([Wq, Wk, Wv], axis=1)                       # D 3D
qkv = X @ W_qkv                                                      # B N 3D
assert qkv.shape == (B, N, 3 * D)
q, k, v = einops.rearrange(qkv, "b n (three h dh) -> three b h n dh", three=3, h=H)
assert q.shape == (B, H, N, Dh)

op = Attention(heads=H)
out = op(Tensor(qkv))                                                # B N D
assert out.shape == (B, N, D) and op.probs.shape == (B, H, N, N)
print("minivit.ops.attention vs our multi-head, max |Δ|:", np.abs(out.data - O_all).max())
print("its attention weights vs ours, max |Δ|:       ", np.abs(op.probs - P_all).max())

# %% [markdown]
# `minivit.nn.MultiHeadAttention` is then three lines: `qkv = Linear(D, 3D)(x)`, the fused op,
# and the output projection `Linear(D, D)`:

# %%
print(inspect.getsource(nn.MultiHeadAttention.forward))

# %% [markdown]
# ## 6. The backward pass
#
# ### Your turn: attention's backward
#
# minivit's fused `Attention` op below has its forward written: it splits `qkv`, keeps
# $q, k, v$ (`B H N Dh`), $P$ (`self.probs`, `B H N N`) and the scale $s = D_h^{-1/2}$, and
# returns the heads merged. Write `backward`: from $\bar O$ (`grad`, `B N D`) return `(dqkv,)`,
# one array `B N 3D`. Go back through the forward one step at a time, last step first: split the
# heads of `grad` again; $O = PV$ is a batched matrix product (chapter 2's linear-layer rule gives
# $\bar P$ and $\bar V$; `.swapaxes(-1, -2)` transposes the last two axes); $P$ is a softmax of
# $S$ row by row (section 1); $S = s\,qk^\top$ is a product again; and finally
# $\bar q, \bar k, \bar v$ go back into the `(3 H Dh)` layout of `qkv` (stack them, then the
# forward's first `rearrange` reversed). The check's cases: two heads, one token, one head.

# %%
class Attention(Function):
    """Multi-head attention on one fused QKV projection: qkv (B N 3D), laid out (3 H Dh)
    -> out (B N D). With q, k, v (B H N Dh) and s = Dh^-1/2: S = s q k^T, P = softmax(S), O = P v."""

    def forward(self, qkv):
        q, k, v = einops.rearrange(qkv, "b n (three h dh) -> three b h n dh", three=3, h=self.heads)
        self.scale = q.shape[-1] ** -0.5
        self.q, self.k, self.v = q, k, v
        scores = (q @ k.swapaxes(-1, -2)) * self.scale
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        self.probs = e / e.sum(axis=-1, keepdims=True)                   # P: (B H N N)
        return einops.rearrange(self.probs @ v, "b h n dh -> b n (h dh)")

    def backward(self, grad):
        """grad: (B N D) -> (dqkv,), dqkv of shape (B N 3D)."""
        raise NotImplementedError("exercise not done yet: write Attention.backward")


# %%
check("attention", Attention)

# %% [markdown]
# ### The derivation
#
# Going backwards through $O = PV$, $P = \operatorname{softmax}(S)$ row by row,
# $S = s\,QK^\top$ with $s = D_h^{-1/2}$ (per batch entry and head), given $\bar O$ (`B H N Dh`):
#
# * $O = PV$ is a matrix product: $\;\bar V = P^\top \bar O$, $\;\bar P = \bar O V^\top$
#   (the linear-layer rule of chapter 2).
# * Softmax, row by row (section 1): $\;\bar S = P \odot \bigl(\bar P - \operatorname{rowsum}(\bar P \odot P)\bigr)$.
# * $S = s\,QK^\top$: $\;\bar Q = s\,\bar S K$, $\;\bar K = s\,\bar S^\top Q$ — $K$ enters
#   transposed, so its gradient is the transposed product.
#
# Finally the three gradients are stacked back into the `(3 H Dh)` layout of `qkv`: the backward
# of a rearrange is the reversed rearrange. Everything is computed from $P$, $Q$, $K$, $V$ saved
# in the forward pass; the scores $S$ are not needed.
#
# ### One solution
#
# The reference solution (`exercises/solutions/attention.py`), checked, then its backward:

# %%
from exercises.solutions import attention as attention_solution

check("attention", attention_solution)
print(inspect.getsource(attention_solution.Attention.backward))

# %% [markdown]
# The same steps as a NumPy function of the arrays kept by the forward (section 5's $q, k, v$
# and $P$), against minivit's op:

# %%
from minivit.ops.attention import Attention  # minivit's op again (above, `Attention` was yours)


def attention_backward(q, k, v, P, grad_out):
    """q, k, v: (B H N Dh), P: (B H N N), grad_out: (B N H*Dh) -> grad of qkv (B N 3*H*Dh)."""
    heads, scale = q.shape[1], q.shape[-1] ** -0.5
    dO = einops.rearrange(grad_out, "b n (h dh) -> b h n dh", h=heads)   # B H N Dh
    dV = P.swapaxes(-1, -2) @ dO                                          # B H N Dh
    dP = dO @ v.swapaxes(-1, -2)                                          # B H N N
    dS = P * (dP - (dP * P).sum(-1, keepdims=True))                       # B H N N
    dQ = scale * dS @ k                                                   # B H N Dh
    dK = scale * dS.swapaxes(-1, -2) @ q                                  # B H N Dh
    return einops.rearrange(np.stack([dQ, dK, dV]), "three b h n dh -> b n (three h dh)")


grad_out = rng.standard_normal((B, N, D))
mine = attention_backward(q, k, v, P_all, grad_out)
assert mine.shape == qkv.shape == (B, N, 3 * D)

qkv_t = Tensor(qkv, requires_grad=True)
ops.attention(qkv_t, heads=H).backward(grad_out)
print("our backward vs minivit's, max |Δ|:", np.abs(mine - qkv_t.grad).max())

# %% [markdown]
# And the two independent checks: finite differences, and the composed attention
# (`rearrange`, `matmul`, the composed softmax) whose gradient autograd derives by itself.

# %%
qkv_small = Tensor(rng.standard_normal((2, 5, 3 * 2 * 4)), requires_grad=True)   # B N (3 H Dh), H 2, Dh 4
print("gradcheck ops.attention:     ",
      gradcheck(lambda t: ops.attention(t, heads=2), {"qkv": qkv_small}, name="attention"))
print("gradcheck composed.attention:",
      gradcheck(lambda t: composed.attention(t, heads=2), {"qkv": qkv_small}, name="composed attention"))

grad_out = rng.standard_normal((2, 5, 8))
fused_grad, composed_grad = Tensor(qkv_small.data, requires_grad=True), Tensor(qkv_small.data, requires_grad=True)
ops.attention(fused_grad, 2).backward(grad_out)
composed.attention(composed_grad, 2).backward(grad_out)
print("fused vs composed gradient, max |Δ|:", np.abs(fused_grad.grad - composed_grad.grad).max())

# %% [markdown]
# The whole `MultiHeadAttention` module, parameters included (converted to float64 first):

# %%
mha = nn.MultiHeadAttention(dim=8, heads=2).to(dtype=np.float64)
tokens = Tensor(rng.standard_normal((2, 5, 8)), requires_grad=True)   # B N D
params = dict(mha.named_parameters())
errors = gradcheck(lambda x, *_: mha(x), {"x": tokens, **params}, name="MultiHeadAttention")
for name, error in errors.items():
    print(f"{name:12s} {error:.1e}")

# %% [markdown]
# ## 7. Looking at attention
#
# A freshly initialised layer attends without any structure. To see what a *trained* head can
# express, we can set $Q$ and $K$ by hand. Give token $i$ (of $N = 16$, on a circle) the
# positional features $p_i = (\cos\omega_1 i, \sin\omega_1 i, \dots, \cos\omega_8 i, \sin\omega_8 i)$
# with $\omega_m = 2\pi m / N$. Then $p_i \cdot p_j = \sum_m \cos \omega_m (i - j)$ is large only
# when $i = j$:
#
# * **head 0**, $q_i = k_i = \alpha\,p_i$: every token attends to **itself**;
# * **head 1**, $q_i = \alpha\,R\,p_i$, where $R$ rotates each $(\cos, \sin)$ pair back by
#   $\omega_m$, so that $R\,p_i = p_{i-1}$: every token attends to the **previous** one.
#
# $R$ is a fixed matrix, so head 1 is still a linear projection of the same features — the kind
# of "previous-token head" trained transformers are known to learn.

# %%
N, Dh, heads = 16, 16, 2
positions = np.arange(N)
omegas = 2 * np.pi * np.arange(1, Dh // 2 + 1) / N                       # Dh/2 frequencies
p = np.stack([np.cos(np.outer(positions, omegas)), np.sin(np.outer(positions, omegas))], axis=-1)
p = p.reshape(N, Dh)                                                     # N Dh, pairs (cos, sin)

R = np.zeros((Dh, Dh))                                                   # rotate each pair by -omega
for m, w in enumerate(omegas):
    R[2 * m:2 * m + 2, 2 * m:2 * m + 2] = [[np.cos(w), -np.sin(w)], [np.sin(w), np.cos(w)]]
assert np.allclose(p @ R, np.roll(p, 1, axis=0))                         # row i of p @ R = p_{i-1}

alpha = 1.5
q = np.concatenate([alpha * p, alpha * p @ R], axis=-1)                  # N (H Dh): head 0, head 1
k = np.concatenate([alpha * p, alpha * p], axis=-1)
v = np.concatenate([p, p], axis=-1)
qkv = np.concatenate([q, k, v], axis=-1)[None]                           # 1 N (3 H Dh)
assert qkv.shape == (1, N, 3 * heads * Dh)

op = Attention(heads=heads)
op(Tensor(qkv))
crafted = op.probs[0]                                                    # H N N

mha = nn.MultiHeadAttention(dim=64, heads=4)
mha.keep_attention = True
mha(Tensor(rng.standard_normal((1, N, 64)).astype(np.float32)))
random_head = mha.attention[0, 0]                                        # N N

fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
panels = ((crafted[0], "head 0: q = k = α p\nattends to itself"),
          (crafted[1], "head 1: q = α R p, k = α p\nattends to the previous token"),
          (random_head, "a freshly initialised MultiHeadAttention\non random tokens: no structure"))
for ax, (matrix, title) in zip(axes, panels):
    im = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(0, N, 5)); ax.set_yticks(range(0, N, 5))
    ax.set_xlabel("key j (attended to)")
axes[0].set_ylabel("query i")
fig.colorbar(im, ax=axes, shrink=0.75, label="attention weight P[i, j]")
plt.show()
print("weight on the intended key:  head 0 %.2f, head 1 %.2f (mean over queries)"
      % (np.diag(crafted[0]).mean(), np.diag(np.roll(crafted[1], 1, axis=1)).mean()))

# %% [markdown]
# ## 8. Fused versus composed, once more
#
# The composed attention lets autograd record every step — the split into $q, k, v$, a
# transpose, two matmuls, the scaling, the softmax's subtraction, exp, sum and division, the
# merge of the heads — and several of those nodes are `B H N N` arrays kept alive until
# backward. The fused op is one node that keeps $q, k, v$ and a single `B H N N` array, $P$. Forward + backward at ViT-Ti-like width, `B N D` = 32 × 65 × 192, 3 heads,
# float32:

# %%
Bt, Nt, Dt, Ht = 32, 65, 192, 3
qkv32 = rng.standard_normal((Bt, Nt, 3 * Dt)).astype(np.float32)
grad32 = np.ones((Bt, Nt, Dt), np.float32)
repeat, number = (2, 2) if FAST else (5, 10)


def measure(fn):
    t = Tensor(qkv32, requires_grad=True)

    def step():
        fn(t, Ht).backward(grad32)
    step()
    seconds = min(timeit.repeat(step, repeat=repeat, number=number)) / number
    graph = topological_order(fn(t, Ht))
    big = sum(1 for node in graph if node.shape[-2:] == (Nt, Nt))
    return seconds * 1e3, len(graph), big


results = {"fused": measure(ops.attention), "composed": measure(composed.attention)}
print(f"{'':9s} {'ms':>7s} {'graph nodes':>12s} {'B H N N nodes':>14s}")
for name, (ms, nodes, big) in results.items():
    print(f"{name:9s} {ms:7.2f} {nodes:12d} {big:14d}")

fig, ax = plt.subplots(figsize=(5, 1.8))
ax.barh(list(results), [r[0] for r in results.values()], color=["C0", "C1"])
ax.invert_yaxis(); ax.set_xlabel("forward + backward, ms (float32)")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Summary
#
# * Softmax: subtract the max; $\bar x = y \odot (\bar y - \langle \bar y, y \rangle)$ row by row.
# * Attention: $S = QK^\top/\sqrt{D_h}$, $P = \operatorname{softmax}(S)$, $O = PV$; heads are a batch
#   axis made by `rearrange`; the scale keeps the scores' variance at 1.
# * minivit fuses the three projections into one `qkv` (`B N 3D`, laid out `(3 H Dh)`) and the
#   attention into one op with backward $\bar V = P^\top\bar O$, $\bar S = P\odot(\bar P -
#   \operatorname{rowsum}(\bar P\odot P))$ with $\bar P = \bar O V^\top$, $\bar Q = s\bar SK$,
#   $\bar K = s\bar S^\top Q$.
# * Cost: the `B H N N` matrices grow with the square of the number of tokens — which is why
#   the number of patches (chapter 5) matters so much.
#
# ## Exercises
#
# The three "your turn" sections are also exercise files, graded on the same cases:
# `chapters/exercises/softmax.py`, `attention_forward.py` and `attention.py` (the backward,
# which uses the softmax backward and the linear-layer rule). `cross_entropy.py` — the backward
# of the classifier's loss, a softmax followed by a log, with label smoothing (chapter 7) — is a
# good fourth. From the repository root:
#
# ```bash
# python -m pytest --exercises -k softmax
# python -m pytest --exercises -k attention_forward
# python -m pytest --exercises -k attention
# python -m pytest --exercises -k cross_entropy
# ```
#
# Thinking questions:
#
# 1. The backward of attention uses $P$ but not $S$. Could it use $S$ instead of $P$? What would
#    that cost?
# 2. A causal (masked) attention sets $S_{ij} = -\infty$ for $j > i$ before the softmax. What
#    changes in the backward pass? (Hint: what is $P_{ij}$ there, and what does the softmax
#    backward do with it?)
# 3. At 224 px with 16 px patches a ViT has 197 tokens; at 384 px, 577. By what factor does the
#    memory of `self.probs` grow? And for 4 px patches on 32 px images?
# 4. Build a third hand-crafted head that attends to the token *two* places ahead. Which matrix
#    do you need?

# %% [markdown]
# ### What you can now do
#
# * Compute a numerically stable softmax and its backward,
#   $\bar x = y \odot (\bar y - \langle \bar y, y\rangle)$, without forming the Jacobian.
# * Explain the $1/\sqrt{D_h}$ scale by the variance of a dot product, and what a too-sharp
#   softmax does to the gradients.
# * Write multi-head attention on a fused `qkv` array laid out `(3 H Dh)`, with the heads as a
#   batch axis and an optional boolean mask.
# * Derive attention's backward pass from $P$, $Q$, $K$ and $V$, and verify it with `gradcheck`
#   and against the composed version.
# * Say how attention's memory and cost grow with the number of tokens.
#
# ### Further reading
#
# * Ashish Vaswani et al., "Attention Is All You Need", NeurIPS 2017, arXiv:1706.03762,
#   Section 3.2: scaled dot-product and multi-head attention.
# * Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929,
#   Appendix A: the multihead self-attention of the ViT's encoder.
# * Tri Dao, Daniel Y. Fu, Stefano Ermon, Atri Rudra, Christopher Ré, "FlashAttention: Fast and
#   Memory-Efficient Exact Attention with IO-Awareness", NeurIPS 2022, arXiv:2205.14135:
#   attention and its backward without keeping the `N N` matrix in memory.
