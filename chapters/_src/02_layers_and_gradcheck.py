# Source of chapters/02_layers_and_gradcheck.ipynb; rebuild with `python chapters/_build.py 02`.

# %% [markdown]
# # Chapter 2 — Layers, their gradients, and how to check them
#
# A transformer block is built from three kinds of layer besides attention: the **linear** map,
# the **GELU** nonlinearity and **layer normalisation**. minivit implements each as one fused
# `Function` with a backward pass derived by hand. This chapter derives those three backward
# passes, implements them from scratch in NumPy, and checks them — against minivit's ops,
# against **finite differences** (`minivit.gradcheck`), and against the same layers rebuilt from
# primitive ops whose gradients autograd derives by itself (`minivit.ops.composed`).
#
# Each of the three starts with **your turn**: before the derivation, a cell with the layer's
# forward written and its backward left to you, and a cell that grades it in place. `check`
# runs the cases of `python -m pytest --exercises` (the exercises at the chapter's end) and
# prints one line: "not done yet", the first case that fails with its worst entry, or
# "passed". The derivation and one solution come after the check. In the notebook as
# committed the backward passes are still to write, so each check says "not done yet".
#
# Notation: shapes in einops style, `B N D` = batch, tokens, features. For a scalar loss $L$ and
# any array $v$, $\bar v = \partial L/\partial v$ has the shape of $v$.

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

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import erf

from minivit import GradcheckError, Tensor, gradcheck, ops
from minivit.engine import Function, topological_order
from minivit.ops import composed

from exercises.check import check  # chapters/exercises/check.py: grades a "your turn" in place

FAST = os.environ.get("MINIVIT_FAST") == "1"  # CI runs the chapters in fast mode
plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 90})
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)
print("fast mode:", FAST)

# %% [markdown]
# ## 1. Checking a derivative with finite differences
#
# Before deriving anything, we need a referee. For a function $f$ of one number, Taylor's
# theorem gives
#
# $$\frac{f(x+h) - f(x-h)}{2h} = f'(x) + \frac{h^2}{6} f'''(x) + O(h^4),$$
#
# so the **central difference** has a *truncation error* of order $h^2$ (the one-sided
# $(f(x+h)-f(x))/h$ only $h$). But $f$ is computed in floating point, with a relative rounding
# error of about the machine epsilon $\varepsilon$ ($2.2\times10^{-16}$ in float64,
# $1.2\times10^{-7}$ in float32), and dividing by $2h$ amplifies it: a *rounding error* of order
# $\varepsilon |f| / h$. The total $\approx h^2 + \varepsilon/h$ is smallest near
# $h \approx \varepsilon^{1/3}$:
#
# * float64: $h \approx 10^{-5}$–$10^{-6}$, error $\approx 10^{-10}$;
# * float32: $h \approx 10^{-2}$–$10^{-3}$, error only $\approx 10^{-5}$ at best (a lucky $h$ may reach $10^{-6}$).
#
# The plot shows both effects for $f(x) = e^x \sin x$ at $x = 1$.

# %%
def f(x):
    return np.exp(x) * np.sin(x)


x0, exact = 1.0, math.exp(1.0) * (math.sin(1.0) + math.cos(1.0))
steps = np.logspace(-12, -0.5, 60)
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for dtype, style in ((np.float64, "-"), (np.float32, "--")):
    x = dtype(x0)
    central = [abs(float((f(x + dtype(h)) - f(x - dtype(h))) / (2 * dtype(h))) - exact) for h in steps]
    forward = [abs(float((f(x + dtype(h)) - f(x)) / dtype(h)) - exact) for h in steps]
    name = np.dtype(dtype).name
    ax.loglog(steps, np.maximum(central, 1e-17), style, color="C0", label=f"central, {name}")
    ax.loglog(steps, np.maximum(forward, 1e-17), style, color="C1", label=f"one-sided, {name}")
ax.axvline(1e-6, color="0.5", lw=0.8)
ax.text(1.3e-6, 1e-15, "h = 1e-6\n(minivit.gradcheck)", fontsize=8, color="0.3")
ax.set(xlabel="step h", ylabel="|error of the derivative|", ylim=(1e-16, 1e1),
       title="finite differences: truncation (right) vs rounding (left)")
ax.legend(fontsize=8, loc="upper left")
plt.show()

# %% [markdown]
# ### `minivit.gradcheck`
#
# For an op $y = f(x_1, \dots, x_n)$ with array inputs, `minivit.gradcheck(fn, inputs)`:
#
# 1. converts the inputs to **float64** (in place),
# 2. draws a random upstream gradient $u$ with the shape of $y$ and runs autograd on the scalar
#    $\ell = \sum u \odot f(x)$ — this exercises the backward with a general $\bar y$, not just ones,
# 3. estimates $\partial \ell / \partial x_{i,j}$ for up to 200 random entries $j$ of each input
#    by central differences with $h = 10^{-6}$, and
# 4. reports the **relative error** $\|a - n\| / (\|a\| + \|n\|)$ between the analytic ($a$) and
#    numerical ($n$) gradients, raising `GradcheckError` if it exceeds the tolerance ($10^{-6}$).
#
# What to expect, in float64:
#
# | relative error | meaning |
# |---|---|
# | $10^{-11}$ … $10^{-8}$ | correct: what is left is rounding in the finite differences |
# | $10^{-6}$ … $10^{-4}$ | suspicious: a kink (ReLU at 0, a max) hit by $x \pm h$, or float32 sneaking in |
# | $10^{-3}$ … $1$ | a wrong backward: a missing term, a wrong constant, a transposed matrix |
#
# ## 2. The linear layer
#
# $$y = x W + b, \qquad x: (B\,N\,D_\text{in}),\; W: (D_\text{in}\,D_\text{out}),\;
# b: (D_\text{out}) \;\to\; y: (B\,N\,D_\text{out}).$$
#
# Flatten the leading axes into rows $r$ (that is also how minivit computes it: one large 2-D
# matrix product): $y_{rj} = \sum_k x_{rk} W_{kj} + b_j$.
#
# ### Your turn: the linear layer's backward
#
# Below is minivit's `Linear` op with its forward written; it keeps $x$ flattened to its
# $R = BN$ rows, `self.x2d` (`R Din`), for the backward. Write `backward`: given $\bar y$ (`grad`, the shape
# of $y$), return one gradient per input, each of its input's shape — $(\bar x, \bar W, \bar b)$,
# or $(\bar x, \bar W)$ when there is no bias (`len(self.inputs) == 2`). For one row,
# $y_j = \sum_i x_i W_{ij} + b_j$: ask which outputs each input touches, and sum $\bar y$ over
# them; each of $\bar x$ and $\bar W$ is then a single matrix product. The inputs' arrays are
# `self.inputs[k].data`.
#
# Replace the `raise` and run the check below it: it grades your class on three cases (a batch
# of tokens; one token with one output; rows without a bias), with `gradcheck` and against
# minivit's own op. The derivation follows the check: try first.

# %%
class Linear(Function):
    """y = x W + b.  x: (... Din), W: (Din Dout), b: (Dout) -> y: (... Dout)."""

    def forward(self, x, weight, bias=None):
        self.x2d = x.reshape(-1, x.shape[-1])  # (rows Din), kept for backward
        y = self.x2d @ weight
        if bias is not None:
            y = y + bias
        return y.reshape(x.shape[:-1] + (weight.shape[1],))

    def backward(self, grad):
        """grad: (... Dout) -> (dx, dweight, dbias), or (dx, dweight) without a bias."""
        raise NotImplementedError("exercise not done yet: write Linear.backward")


# %%
check("linear", Linear)

# %% [markdown]
# ### The derivation
#
# Each partial derivative is one entry:
# $\partial y_{rj} / \partial x_{rk} = W_{kj}$, $\partial y_{rj}/\partial W_{kj} = x_{rk}$,
# $\partial y_{rj}/\partial b_j = 1$. Summing over everything each input touched:
#
# $$\bar x_{rk} = \sum_j \bar y_{rj} W_{kj} \;\Rightarrow\; \bar x = \bar y\, W^\top, \qquad
# \bar W_{kj} = \sum_r x_{rk} \bar y_{rj} \;\Rightarrow\; \bar W = x^\top \bar y, \qquad
# \bar b = \sum_r \bar y_r .$$
#
# A useful sanity rule: $\bar W$ must have the shape of $W$ (`Din Dout`), and $x^\top \bar y$ is
# the only product of $x$ (`R Din`) and $\bar y$ (`R Dout`) that has it. The bias was
# broadcast over all $R = BN$ rows, so its gradient sums over them. The backward costs two
# matrix products the size of the forward one: training costs about 3× the forward FLOPs.
#
# ### One solution
#
# The reference solution, `exercises/solutions/linear.py`, through the same check, then its
# backward:

# %%
from exercises.solutions import linear as linear_solution

check("linear", linear_solution)
print(inspect.getsource(linear_solution.Linear.backward))

# %% [markdown]
# The same three products as plain NumPy functions, checked against minivit's fused op on the
# same inputs, then with `gradcheck`:

# %%
def linear_forward(x, W, b):
    return x @ W + b


def linear_backward(x, W, grad_y):
    """x: (B N Din), W: (Din Dout), grad_y: (B N Dout) -> grads of x, W, b."""
    x2d = x.reshape(-1, x.shape[-1])              # (B N) Din
    g2d = grad_y.reshape(-1, grad_y.shape[-1])    # (B N) Dout
    return (g2d @ W.T).reshape(x.shape), x2d.T @ g2d, g2d.sum(axis=0)


B, N, Din, Dout = 2, 5, 6, 4
x, W, b = rng.standard_normal((B, N, Din)), rng.standard_normal((Din, Dout)), rng.standard_normal(Dout)
grad_y = rng.standard_normal((B, N, Dout))
dx, dW, db = linear_backward(x, W, grad_y)
assert dx.shape == (B, N, Din) and dW.shape == (Din, Dout) and db.shape == (Dout,)

# minivit's fused op, the same inputs, the same upstream gradient
xt, Wt, bt = (Tensor(a, requires_grad=True) for a in (x, W, b))
y = ops.linear(xt, Wt, bt)
assert y.shape == (B, N, Dout)
assert np.allclose(y.data, linear_forward(x, W, b))
y.backward(grad_y)
for name, mine, theirs in (("x", dx, xt.grad), ("W", dW, Wt.grad), ("b", db, bt.grad)):
    print(f"d{name}: max |numpy - minivit| = {np.abs(mine - theirs).max():.1e}")

print("gradcheck:", gradcheck(ops.linear, {"x": xt, "W": Wt, "b": bt}, name="linear"))

# %% [markdown]
# ## 3. GELU
#
# The transformer's MLP uses the Gaussian Error Linear Unit,
#
# $$\mathrm{GELU}(x) = x\,\Phi(x), \qquad \Phi(x) = \tfrac12\bigl(1 + \operatorname{erf}(x/\sqrt2)\bigr),$$
#
# $\Phi$ the standard normal CDF: the input, weighted by how likely a standard normal variable is
# to be below it. The original JAX checkpoints of the paper used the **tanh approximation**
#
# $$\mathrm{GELU}_\text{tanh}(x) = \tfrac12 x\,(1 + t), \quad t = \tanh u, \quad
# u = \sqrt{2/\pi}\,\bigl(x + 0.044715\,x^3\bigr).$$
#
# ### Your turn: GELU's backward, both forms
#
# The `GELU` op below (minivit's, simplified: minivit's writes the tanh form as one fused
# formula) computes either form (`approximate="erf"` or `"tanh"`) and keeps $\Phi(x)$
# (`self.cdf`) or $t$ (`self.t`) for the backward. Write `backward`: the op is
# elementwise, so $\bar x = \bar y \odot \mathrm{GELU}'(x)$, entry by entry. For the erf form,
# $x\,\Phi(x)$ is a product, and the derivative of a CDF is its density,
# $\varphi(x) = e^{-x^2/2}/\sqrt{2\pi}$; for the tanh form, the product rule, then the chain
# rule through $t$ and $u$ ($\tanh' = 1 - \tanh^2$). Return `(dx,)`, a tuple of one array. The
# check's cases: both forms, and a single entry.

# %%
SQRT_2_OVER_PI, TANH_CUBIC = math.sqrt(2 / math.pi), 0.044715


class GELU(Function):
    """x Phi(x), elementwise; approximate='erf' (exact) or 'tanh'."""

    def forward(self, x):
        if self.approximate == "tanh":
            self.t = np.tanh(SQRT_2_OVER_PI * (x + TANH_CUBIC * x ** 3))
            return 0.5 * x * (1 + self.t)
        self.cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
        return x * self.cdf

    def backward(self, grad):
        """grad: the shape of x -> (dx,). x is self.inputs[0].data."""
        raise NotImplementedError("exercise not done yet: write GELU.backward")


# %%
check("gelu", GELU)

# %% [markdown]
# ### The derivation
#
# By the product rule, with $\varphi(x) = e^{-x^2/2}/\sqrt{2\pi}$ the normal density
# ($\Phi' = \varphi$),
#
# $$\frac{d}{dx}\mathrm{GELU}(x) = \Phi(x) + x\,\varphi(x).$$
#
# The tanh form's derivative (product rule, then the chain rule through
# $\tanh' = 1 - \tanh^2$) is
#
# $$\frac{d}{dx}\mathrm{GELU}_\text{tanh}(x) = \tfrac12 (1 + t) + \tfrac12 x\,(1 - t^2)\,
# \sqrt{2/\pi}\,\bigl(1 + 3 \cdot 0.044715\,x^2\bigr).$$
#
# Both are elementwise, so $\bar x = \bar y \odot \mathrm{GELU}'(x)$.
#
# ### One solution
#
# The reference solution (`exercises/solutions/gelu.py`), checked, then its backward:

# %%
from exercises.solutions import gelu as gelu_solution

check("gelu", gelu_solution)
print(inspect.getsource(gelu_solution.GELU.backward))

# %% [markdown]
# minivit's own `GELU` computes exactly this, with its operations done in place to allocate
# fewer temporary arrays. Its tanh form is a function decorated `@fused` (`minivit/backend.py`):
# on NumPy it runs as the plain Python it is, on a GPU `cupy.fuse` compiles the whole chain into
# one kernel, so the formula is written once and tested here, on the CPU:

# %%
from minivit.ops.gelu import GELU, tanh_gelu_backward

print(inspect.getsource(GELU.backward))
print(inspect.getsource(tanh_gelu_backward))

# %%
def gelu_erf(x): return x * 0.5 * (1 + erf(x / math.sqrt(2)))
def gelu_erf_grad(x): return 0.5 * (1 + erf(x / math.sqrt(2))) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
def gelu_tanh(x): return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


xs = np.linspace(-4, 4, 801)
fused = Tensor(xs.copy(), requires_grad=True)
ops.gelu(fused).backward(np.ones_like(xs))
assert np.allclose(fused.grad, gelu_erf_grad(xs))

fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
axes[0].plot(xs, gelu_erf(xs), label="GELU (erf)")
axes[0].plot(xs, np.maximum(xs, 0), "--", color="0.6", label="ReLU")
axes[0].set_title("GELU(x) = x Φ(x)")
axes[1].plot(xs, fused.grad, label="minivit backward")
axes[1].plot(xs[::40], gelu_erf_grad(xs[::40]), "o", ms=4, label="Φ(x) + x φ(x)")
axes[1].set_title("its derivative")
axes[2].plot(xs, gelu_erf(xs) - gelu_tanh(xs))
axes[2].set_title("erf form − tanh form")
for ax in axes:
    ax.set_xlabel("x"); ax.grid(alpha=0.3)
axes[0].legend(fontsize=8); axes[1].legend(fontsize=8)
plt.tight_layout(); plt.show()
print(f"largest |GELU_erf - GELU_tanh| on [-4, 4]: {np.abs(gelu_erf(xs) - gelu_tanh(xs)).max():.2e}")

# %% [markdown]
# The two forms differ by less than $5\times10^{-4}$, small but not nothing: to reproduce a
# checkpoint's outputs to float precision, use the form it was trained with: `ViT`'s default
# is the tanh form (the JAX checkpoints', and on the CPU far cheaper than SciPy's erf),
# `ViT(gelu="erf")` gives timm's exact one (and a `Block` built on its own defaults to erf).
# Both backward passes pass the check:

# %%
x = Tensor(rng.standard_normal((B, N, Din)) * 2, requires_grad=True)   # B N D
for form in ("erf", "tanh"):
    print(form, gradcheck(lambda t: ops.gelu(t, form), {"x": x}, name=f"gelu {form}"))

# %% [markdown]
# ## 4. Layer normalisation
#
# LayerNorm normalises each token's $D$ features to mean 0 and variance 1, then applies a
# learned per-feature scale $\gamma$ and shift $\beta$ (shapes: $x$ `B N D`, $\gamma, \beta$ `D`).
# For one row $x \in \mathbb{R}^D$:
#
# $$\mu = \frac1D \sum_j x_j, \quad \sigma^2 = \frac1D\sum_j (x_j - \mu)^2, \quad
# r = (\sigma^2 + \epsilon)^{-1/2}, \quad \hat x_j = (x_j - \mu)\, r, \quad
# y_j = \gamma_j \hat x_j + \beta_j .$$
#
# ### Your turn: LayerNorm's backward
#
# The `LayerNorm` op below (minivit's, simplified: minivit's keeps the variance and recomputes
# $r$ in its fused backward) keeps $\hat x$ (`self.xhat`, `... D`) and $r$ (`self.r`, `... 1`)
# from the forward. Write `backward`, returning $(\bar x, \bar\gamma, \bar\beta)$ of
# shapes `(... D)`, `(D)`, `(D)`. $\gamma$ and $\beta$ are shared by every row, so their gradients
# sum a per-row quantity over the rows. $\bar x$ is the real exercise: $\mu$ and $\sigma^2$
# depend on every $x_i$ of the row, so each $x_i$ reaches every $\hat x_j$. With
# $g = \bar y \odot \gamma$, derive $\bar x_i = \sum_j g_j\,\partial \hat x_j / \partial x_i$
# (using $\partial \mu / \partial x_i = 1/D$ and the derivative of $r = (\sigma^2 + \epsilon)^{-1/2}$),
# and simplify until it needs only $r$, $\hat x$, $g$ and two means over the row — no `D D`
# matrix. $\gamma$ is `self.inputs[1].data`. The check's cases: a batch of tokens, one token of
# two features, rows with a large $\epsilon$.

# %%
class LayerNorm(Function):
    """gamma * (x - mean) * r + beta over the last axis, r = 1 / sqrt(var + eps)."""

    def forward(self, x, gamma, beta):
        centred = x - x.mean(axis=-1, keepdims=True)
        self.r = 1 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + self.eps)  # ... 1
        self.xhat = centred * self.r                                                         # ... D
        return self.xhat * gamma + beta

    def backward(self, grad):
        """grad: (... D) -> (dx, dgamma, dbeta), shapes (... D), (D), (D)."""
        raise NotImplementedError("exercise not done yet: write LayerNorm.backward")


# %%
check("layernorm", LayerNorm)

# %% [markdown]
# ### The derivation
#
# **Parameters.** $\gamma_j$ and $\beta_j$ touch $y_j$ of every row, so
# $\bar\gamma = \sum_\text{rows} \bar y \odot \hat x$ and $\bar\beta = \sum_\text{rows} \bar y$.
#
# **Input.** Here is the catch: $\mu$ and $\sigma^2$ depend on *every* $x_i$ of the row, so each
# $\hat x_j$ depends on every $x_i$. Let $g = \bar y \odot \gamma$ (the gradient with respect to
# $\hat x$). We need $\partial \hat x_j / \partial x_i$:
#
# * $\partial \mu / \partial x_i = 1/D$;
# * $\partial \sigma^2 / \partial x_i = \frac2D (x_i - \mu)$ (the term through $\mu$ vanishes,
#   because $\sum_j (x_j - \mu) = 0$);
# * so $\partial r / \partial x_i = -\tfrac12 (\sigma^2+\epsilon)^{-3/2} \cdot \frac2D (x_i - \mu)
#   = -\frac{r^2}{D}\,\hat x_i$;
# * and $\displaystyle\frac{\partial \hat x_j}{\partial x_i}
#   = r\Bigl(\delta_{ij} - \frac1D\Bigr) + (x_j - \mu)\frac{\partial r}{\partial x_i}
#   = r\Bigl(\delta_{ij} - \frac1D - \frac{\hat x_i \hat x_j}{D}\Bigr).$
#
# Summing $g_j\,\partial \hat x_j/\partial x_i$ over $j$:
#
# $$\boxed{\;\bar x = r\,\Bigl(g - \operatorname{mean}(g) - \hat x \odot \operatorname{mean}(g \odot \hat x)\Bigr)\;}$$
#
# with the means over the row's $D$ features. Read it as: the plain rescaled gradient $r\,g$, minus
# its component along the two directions the normalisation removes — a constant shift (the mean)
# and a rescaling of $\hat x$ (the variance). The Jacobian is a projection, times $r$.
# The backward needs only $\hat x$ and $r$ from the forward pass.
#
# ### One solution
#
# The reference solution (`exercises/solutions/layernorm.py`), checked, then its backward:

# %%
from exercises.solutions import layernorm as layernorm_solution

check("layernorm", layernorm_solution)
print(inspect.getsource(layernorm_solution.LayerNorm.backward))

# %% [markdown]
# The same as plain NumPy functions, on a batch of tokens, against minivit's op and `gradcheck`:

# %%
def layernorm_forward(x, gamma, beta, eps=1e-6):
    mu = x.mean(axis=-1, keepdims=True)                                  # B N 1
    r = 1 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)  # B N 1
    xhat = (x - mu) * r                                                  # B N D
    return gamma * xhat + beta, (xhat, r)


def layernorm_backward(saved, gamma, grad_y):
    xhat, r = saved
    rows = tuple(range(grad_y.ndim - 1))  # every axis but the features
    g = grad_y * gamma
    dx = r * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (grad_y * xhat).sum(axis=rows), grad_y.sum(axis=rows)


D = 8
x = rng.standard_normal((B, N, D)) * 3 + 1
gamma, beta = rng.standard_normal(D) + 1, rng.standard_normal(D)
y, saved = layernorm_forward(x, gamma, beta)
assert y.shape == (B, N, D)
print("row means of xhat ~ 0:", np.abs(saved[0].mean(-1)).max(), "| row variances ~ 1:", saved[0].var(-1)[0, :3])

grad_y = rng.standard_normal((B, N, D))
mine = layernorm_backward(saved, gamma, grad_y)
xt, gt, bt = (Tensor(a, requires_grad=True) for a in (x, gamma, beta))
ops.layernorm(xt, gt, bt).backward(grad_y)
for name, m, t in zip(("x", "gamma", "beta"), mine, (xt.grad, gt.grad, bt.grad)):
    print(f"d{name}: max |numpy - minivit| = {np.abs(m - t).max():.1e}")
print("gradcheck:", gradcheck(lambda x, g, b: ops.layernorm(x, g, b), {"x": xt, "gamma": gt, "beta": bt},
                              name="layernorm"))

# %% [markdown]
# ## 5. Catching a wrong backward
#
# The most common mistake in a LayerNorm backward is to treat $\mu$ and $\sigma$ as constants,
# giving $\bar x = r\,g$. It *looks* plausible, has the right shape, and a network trained with it
# even learns a bit — which is what makes such bugs dangerous. `gradcheck` catches it at once,
# names the input and the worst entry:

# %%
from minivit.ops.layernorm import LayerNorm


class LayerNormForgetsTheMean(LayerNorm):
    """Wrong on purpose: dx = r * dy * gamma, as if mean and variance did not depend on x."""

    def backward(self, grad):
        _, dgamma, dbeta = super().backward(grad)
        r = 1 / np.sqrt(self.variance + self.eps)            # ... 1, kept by the forward as variance
        return r * grad * self.inputs[1].data, dgamma, dbeta


try:
    gradcheck(lambda x, g, b: LayerNormForgetsTheMean(eps=1e-6)(x, g, b),
              {"x": xt, "gamma": gt, "beta": bt}, name="layernorm (wrong on purpose)")
except GradcheckError as error:
    print("GradcheckError:", error)

# %% [markdown]
# Note that $\bar\gamma$ and $\bar\beta$ were right; only $x$ failed — the message says which.
# A few more realistic bugs, next to the correct ops. `tolerance=inf` makes gradcheck report the
# error instead of raising:

# %%
from minivit.ops.gelu import GELU, SQRT_2_OVER_PI, TANH_CUBIC
from minivit.ops.matmul import Linear


class GeluTanhForgetsThe3(GELU):
    """Wrong on purpose: d/dx of 0.044715 x^3 written as 0.044715 x^2 (the 3 forgotten)."""

    def backward(self, grad):
        x = self.inputs[0].data
        du_dx = SQRT_2_OVER_PI * (1 + TANH_CUBIC * x * x)
        return (grad * (0.5 * (1 + self.t) + 0.5 * x * (1 - self.t ** 2) * du_dx),)


class LinearAveragesTheBias(Linear):
    """Wrong on purpose: the bias gradient averaged over the rows instead of summed."""

    def backward(self, grad):
        dx, dweight, dbias = super().backward(grad)
        return dx, dweight, dbias / grad.reshape(-1, grad.shape[-1]).shape[0]


def fresh(*shape):
    return Tensor(rng.standard_normal(shape), requires_grad=True)


cases = {
    "linear": (ops.linear, [fresh(B, N, Din), fresh(Din, Dout), fresh(Dout)]),
    "gelu erf": (lambda t: ops.gelu(t), [fresh(B, N, D)]),
    "gelu tanh": (lambda t: ops.gelu(t, "tanh"), [fresh(B, N, D)]),
    "layernorm": (lambda x, g, b: ops.layernorm(x, g, b), [fresh(B, N, D), fresh(D), fresh(D)]),
    "linear, bias averaged (bug)": (lambda x, w, b: LinearAveragesTheBias()(x, w, b),
                                    [fresh(B, N, Din), fresh(Din, Dout), fresh(Dout)]),
    "gelu tanh, 3 forgotten (bug)": (lambda t: GeluTanhForgetsThe3(approximate="tanh")(t), [fresh(B, N, D)]),
    "layernorm, mean forgotten (bug)": (lambda x, g, b: LayerNormForgetsTheMean(eps=1e-6)(x, g, b),
                                        [fresh(B, N, D), fresh(D), fresh(D)]),
}
worst = {}
for name, (fn, inputs) in cases.items():
    errors = gradcheck(fn, inputs, name=name, tolerance=math.inf)
    worst[name] = max(errors.values())
    print(f"{name:34s} worst relative error {worst[name]:.1e}")

fig, ax = plt.subplots(figsize=(7, 3.2))
colors = ["C3" if "bug" in name else "C2" for name in worst]
ax.barh(list(worst), list(worst.values()), color=colors)
ax.axvline(1e-6, color="k", ls="--", lw=1)
ax.text(1.5e-6, 0, "tolerance 1e-6", fontsize=8, va="center")
ax.set_xscale("log"); ax.set_xlim(1e-13, 1)
ax.invert_yaxis(); ax.set_xlabel("relative error (float64, h = 1e-6)")
ax.set_title("correct backward passes vs deliberately wrong ones")
plt.tight_layout(); plt.show()

# %% [markdown]
# The gap is what makes the test reliable: correct gradients sit around $10^{-10}$, and even the
# subtle bug (a forgotten factor 3 in a small correction term) is four orders of magnitude
# above the tolerance.
#
# ## 6. Fused versus composed
#
# `minivit.ops.composed` rebuilds GELU and LayerNorm (and softmax, attention and the
# cross-entropy) from primitive ops — `+`, `*`, `exp`, `erf`, `mean`, `**` — so autograd derives
# their backward by itself, with no hand-written derivative at all. That gives a second,
# independent derivation: the two must agree to rounding error. Here is the composed LayerNorm:

# %%
print(inspect.getsource(composed.layernorm))

# %%
x64 = rng.standard_normal((4, 65, 64))   # B N D
g64, b64 = rng.standard_normal(64) + 1, rng.standard_normal(64)
grad_y = rng.standard_normal(x64.shape)


def forward_backward(fn, *arrays):
    inputs = [Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    out.backward(grad_y.astype(out.dtype))
    return out.data, [t.grad for t in inputs]


print(f"{'':10s} {'dtype':8s} {'max |Δ output|':>15s} {'max |Δ grad|':>13s}")
for name, fused, comp, arrays in (
        ("gelu", ops.gelu, composed.gelu, (x64,)),
        ("layernorm", ops.layernorm, composed.layernorm, (x64, g64, b64))):
    for dtype in (np.float64, np.float32):
        out_f, grads_f = forward_backward(fused, *(a.astype(dtype) for a in arrays))
        out_c, grads_c = forward_backward(comp, *(a.astype(dtype) for a in arrays))
        grad_diff = max(np.abs(a - b).max() for a, b in zip(grads_f, grads_c))
        print(f"{name:10s} {np.dtype(dtype).name:8s} {np.abs(out_f - out_c).max():15.1e} {grad_diff:13.1e}")

# %% [markdown]
# They agree to float64 rounding ($10^{-16}$–$10^{-14}$) and to float32 rounding
# ($10^{-7}$–$10^{-5}$, for values of size about 1). So why fuse?
# The composed versions record many more nodes in the graph, and every node keeps its inputs
# alive for the backward pass: more memory, more passes over memory, and (on a GPU) one kernel
# launch per node. Time forward + backward on a ViT-sized activation, `B N D` = 32 × 65 × 192,
# in float32:

# %%
shape = (32, 65, 192)
x32 = rng.standard_normal(shape).astype(np.float32)
g32, b32 = np.ones(192, np.float32), np.zeros(192, np.float32)
grad32 = np.ones(shape, np.float32)
repeat, number = (2, 2) if FAST else (5, 10)


def time_it(fn, *arrays):
    inputs = [Tensor(a, requires_grad=True) for a in arrays]

    def step():
        out = fn(*inputs)
        out.backward(grad32)
    step()  # warm up
    nodes = len(topological_order(fn(*inputs)))
    return min(timeit.repeat(step, repeat=repeat, number=number)) / number * 1e3, nodes


rows = []
for name, fused, comp, arrays in (
        ("gelu (erf)", ops.gelu, composed.gelu, (x32,)),
        ("gelu (tanh)", lambda t: ops.gelu(t, "tanh"), lambda t: composed.gelu(t, "tanh"), (x32,)),
        ("layernorm", ops.layernorm, composed.layernorm, (x32, g32, b32))):
    (t_f, n_f), (t_c, n_c) = time_it(fused, *arrays), time_it(comp, *arrays)
    rows.append((name, t_f, t_c, n_f, n_c))

print(f"{'op':12s} {'fused ms':>9s} {'composed ms':>12s} {'graph nodes fused / composed':>30s}")
for name, t_f, t_c, n_f, n_c in rows:
    print(f"{name:12s} {t_f:9.2f} {t_c:12.2f} {n_f:>19d} / {n_c}")

fig, ax = plt.subplots(figsize=(6, 2.8))
pos = np.arange(len(rows))
ax.barh(pos - 0.2, [r[1] for r in rows], 0.4, label="fused (hand-written backward)")
ax.barh(pos + 0.2, [r[2] for r in rows], 0.4, label="composed (autograd backward)")
ax.set_yticks(pos, [r[0] for r in rows]); ax.invert_yaxis()
ax.set_xlabel("forward + backward, ms (float32, B N D = 32 65 192)")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()

# %% [markdown]
# On this CPU the fused GELUs are faster than their composed chains, and the two LayerNorms
# are about even (the times printed above, from the machine that executed this notebook; they
# move from run to run). NumPy spends much of the time streaming arrays through memory in
# either version, and a fused op that still makes several passes over its arrays saves less
# than its node count suggests. The robust differences are the number of nodes — each a set of
# intermediate arrays held until backward — and, on a GPU, the number of kernel launches. The
# bigger saving in *memory* comes with attention in the next chapter, where the composed
# version materialises several `B H N N` arrays.
#
# ## Summary
#
# * Linear: $\bar x = \bar y W^\top$, $\bar W = x^\top \bar y$, $\bar b = \sum_\text{rows} \bar y$.
# * GELU: $\bar x = \bar y\,(\Phi(x) + x\varphi(x))$, or the tanh form's derivative.
# * LayerNorm: $\bar x = r\,(g - \bar g - \hat x\,\overline{g\hat x})$, $g = \bar y\gamma$,
#   bars meaning row means: the mean and variance depend on every input.
# * `minivit.gradcheck` compares with central differences in float64: about $10^{-10}$ when
#   right, $10^{-3}$–$1$ when wrong; and the composed ops give an independent second derivation.
#
# ## Exercises
#
# The three backward passes of the "your turn" sections are also exercise files,
# `chapters/exercises/linear.py`, `gelu.py` and `layernorm.py` (see the folder's `README.md`),
# graded on the same cases as the checks above — by `minivit.gradcheck` and by comparison with
# minivit's op — from the repository root:
#
# ```bash
# python -m pytest --exercises -k linear
# python -m pytest --exercises -k gelu
# python -m pytest --exercises -k layernorm
# ```
#
# Thinking questions:
#
# 1. `gradcheck` checks $\sum u \odot f(x)$ for a *random* $u$ rather than $\sum f(x)$. Find a
#    wrong LayerNorm backward that passes with $u = 1$ everywhere but fails with a random $u$.
#    (Hint: what is $\operatorname{mean}(g)$ when $\bar y = 1$ and $\gamma = 1$?)
# 2. Why would gradcheck in float32 be useless for LayerNorm with $D = 768$? Estimate the
#    rounding error from section 1.
# 3. RMSNorm drops the mean: $y = \gamma\, x / \sqrt{\operatorname{mean}(x^2) + \epsilon}$.
#    Derive its backward from the LayerNorm derivation and check it with `gradcheck` by writing
#    a `Function`.
# 4. The fused LayerNorm stores $\hat x$ (`B N D`) and the variance (`B N 1`, from which it
#    recomputes $r$) for the backward pass. The
#    composed one stores what? Count the `B N D` arrays kept alive.

# %% [markdown]
# ### What you can now do
#
# * Choose a finite-difference step from the trade-off between truncation and rounding error,
#   and read a `gradcheck` relative error: about $10^{-10}$ when right, $10^{-3}$ to 1 when wrong.
# * Derive the backward passes of the linear layer, GELU (erf and tanh forms) and LayerNorm,
#   write them in NumPy, and grade them with `check`.
# * Recognise a plausible but wrong backward pass (LayerNorm's mean forgotten, a bias gradient
#   averaged, a factor dropped) from what `gradcheck` reports.
# * Check a hand-written backward against the same op composed from primitives, and say what
#   fusing an op buys: fewer graph nodes and saved arrays, not always less time on a CPU.
#
# ### Further reading
#
# * Jimmy Lei Ba, Jamie Ryan Kiros, Geoffrey E. Hinton, "Layer Normalization", 2016,
#   arXiv:1607.06450.
# * Dan Hendrycks, Kevin Gimpel, "Gaussian Error Linear Units (GELUs)", 2016, arXiv:1606.08415:
#   the exact form and the tanh approximation.
# * Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929,
#   Section 3.1: where the LayerNorms and the MLP's GELU sit in the encoder.
