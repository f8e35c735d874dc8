# Source of chapters/04_encoder.ipynb; rebuild with `python chapters/_build.py 04`.

# %% [markdown]
# # Chapter 4 — The Transformer encoder
#
# Chapters 1 to 3 built the parts: autograd, the linear layer, GELU and layer normalisation,
# and multi-head attention. A ViT puts them together in one way only, the **encoder** of the
# Transformer (Vaswani et al., 2017, "Attention Is All You Need"): a stack of identical blocks,
# each an attention layer and a small MLP, each wrapped in a LayerNorm and a residual
# connection. The paper (Dosovitskiy et al., 2021, Section 3.1) writes the whole model in four
# equations, and this chapter puts each beside the code that computes it:
#
# $$
# \begin{aligned}
# z_0 &= [\,x_\text{class};\; x^1_p E;\; \dots;\; x^N_p E\,] + E_\text{pos} && (1)\\
# z'_\ell &= \operatorname{MSA}(\operatorname{LN}(z_{\ell-1})) + z_{\ell-1}, \quad \ell = 1 \dots L && (2)\\
# z_\ell &= \operatorname{MLP}(\operatorname{LN}(z'_\ell)) + z'_\ell, \quad \ell = 1 \dots L && (3)\\
# y &= \operatorname{LN}(z^0_L) && (4)
# \end{aligned}
# $$
#
# Equation 1 makes the input, a sequence of $1 + N$ tokens of width $D$; chapter 5 cuts the
# image into the $N$ patches $x^i_p$ and projects them with $E$, and chapter 6 adds the class
# token and the position embeddings $E_\text{pos}$. Here we take that sequence as given and
# follow it through equations 2–4: the pre-LN block, the residual stream it writes to, the
# MLP, the final LayerNorm and the head. Then we measure why the LayerNorm sits *before* each
# sublayer and not after it, as in the original Transformer, and count the parameters and the
# FLOPs of a ViT-Ti/16 on paper, checking both against the code.
#
# But first it is **your turn**: with chapter 2's layers and chapter 3's attention, equations 2
# and 3 are enough to write a block yourself, before section 1 shows minivit's.
#
# Shapes (einops notation): `B` batch, `T = 1 + N` tokens, `D` width, `M` the MLP's hidden
# width, `L` blocks, `K` classes.

# %%
import inspect
import math
import os
import sys
from contextlib import contextmanager
from pathlib import Path

try:
    import minivit
except ImportError:  # executed from chapters/ without minivit installed: use the repository
    sys.path.insert(0, str(Path.cwd().parent))
    import minivit

import matplotlib.pyplot as plt
import numpy as np

from minivit import CONFIGS, Tensor, ViT, nn, ops
from minivit.cost import model_flops
from minivit.data import load_dataset
from minivit.model import Block
from minivit.ops.attention import Attention
from minivit.ops.matmul import Linear as LinearOp
from minivit.optim import AdamW

from exercises.check import check  # chapters/exercises/check.py: grades a "your turn" in place

FAST = os.environ.get("MINIVIT_FAST") == "1"  # CI runs the chapters in fast mode
plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 90})
np.set_printoptions(precision=3, suppress=True, linewidth=110)
minivit.manual_seed(0)  # the initial weights of the models below
rng = np.random.default_rng(0)
print("fast mode:", FAST)

# %% [markdown]
# ### Your turn: one block, from the equations
#
# Write `block_forward(x, weights, heads, eps, approximate)`: equations 2 and 3 on NumPy arrays,
# $y = x + \operatorname{MSA}(\operatorname{LN}_1(x))$, then
# $y + \operatorname{MLP}(\operatorname{LN}_2(y))$, for `x` of shape `B T D`. The weights are
# those of a `minivit.model.Block`, a dict `{name: array}` under the names of its
# `state_dict()`:
#
# | names | shapes | what |
# |---|---|---|
# | `norm1.weight`, `norm1.bias` | `D`, `D` | $\gamma$, $\beta$ of $\operatorname{LN}_1$ |
# | `attn.qkv.weight`, `attn.qkv.bias` | `D 3D`, `3D` | the fused projection to $q, k, v$, laid out `(3 H Dh)` |
# | `attn.proj.weight`, `attn.proj.bias` | `D D`, `D` | attention's output projection |
# | `norm2.weight`, `norm2.bias` | `D`, `D` | $\gamma$, $\beta$ of $\operatorname{LN}_2$ |
# | `mlp.fc1.weight`, `mlp.fc1.bias` | `D M`, `M` | the MLP's hidden layer |
# | `mlp.fc2.weight`, `mlp.fc2.bias` | `M D`, `D` | its output layer |
#
# A linear layer is $hW + b$, the weight stored `Din Dout` as in minivit (no transpose).
# $\operatorname{LN}$ is chapter 2's, with the biased variance and this `eps`;
# $\operatorname{MSA}(h) = \operatorname{attention}(hW_{qkv} + b_{qkv})\,W_\text{proj} + b_\text{proj}$,
# with chapter 3's `attention_forward` (no mask, `heads` heads); and
# $\operatorname{MLP}(h) = \operatorname{GELU}(hW_1 + b_1)\,W_2 + b_2$, with GELU in its exact form
# (`approximate="erf"`, `erf` from `scipy.special`) or its tanh form. No dropout. Three small
# helpers first — a layer norm, GELU and attention — and the block is two lines. Mind that
# $\operatorname{LN}_2$ reads $y$, the output of the first residual, not $x$. The check runs the
# cases of `python -m pytest --exercises -k block_forward` against `Block` in float64: both GELU
# forms, one head with a large `eps`, a single token.

# %%
def block_forward(x, weights, heads, eps=1e-6, approximate="erf"):
    """One pre-LN encoder block: y = x + MSA(LN1(x)), out = y + MLP(LN2(y)).
    x: (B T D) -> (B T D); weights: {name: array}, a Block's parameters by name."""
    raise NotImplementedError("exercise not done yet: write block_forward")


# %%
check("block_forward", block_forward)

# %% [markdown]
# ### One solution
#
# The reference solution (`exercises/solutions/block_forward.py`), checked, then its code —
# the block itself, then its three helpers:

# %%
from exercises.solutions import block_forward as block_solution

check("block_forward", block_solution)
for function in (block_solution.block_forward, block_solution.layer_norm, block_solution.gelu,
                 block_solution.attention):
    print(inspect.getsource(function))

# %% [markdown]
# ## 1. The equations in the code
#
# Equations 2 and 3 are one encoder block, `minivit.model.Block`. Its `forward` is the two
# equations, line for line: `norm1` is the LN of equation 2, `attn` the MSA (chapter 3's
# `MultiHeadAttention`), `norm2` and `mlp` those of equation 3. (`drop` is dropout, which the
# paper applies after every dense layer except the $q, k, v$ projections; it is off, $p = 0$,
# unless a configuration asks for it.)

# %%
print(inspect.getsource(Block))

# %% [markdown]
# The model runs $L$ of them, then equation 4, then the classifier head:

# %%
print(inspect.getsource(ViT.forward_features))
print(inspect.getsource(ViT.forward))

# %% [markdown]
# Two details of equation 4. The code normalises *every* token and then keeps token 0, where
# the equation takes token 0 and normalises it: the same thing, since a LayerNorm acts on each
# token by itself. And the head is one linear layer, $\text{logits} = yW_\text{head} +
# b_\text{head}$ (`D K`). The paper pre-trains with an MLP head of one hidden layer and
# fine-tunes with a single linear layer, which minivit always uses.
#
# ## 2. One block, a sublayer at a time
#
# Let's run a block of ViT-Ti's width ($D = 192$, 3 heads, $M = 768$) on a batch of random
# tokens, calling its sublayers by hand, and check that we reproduce `block(x)` exactly.
# Random tokens of variance 1 are a fair stand-in for $z_0$: chapter 5's patch embedding is
# initialised so that its outputs have about that variance. Every step keeps the shape
# `B T D`: a block maps a sequence to a sequence of the same shape, which is what lets us stack
# as many as we like.

# %%
ti = ViT.from_config("Ti/16", num_classes=1000)     # ViT-Ti/16 at 224 px: 197 tokens of width 192
block = ti.blocks[0]
x = Tensor(rng.standard_normal((4, 197, 192)).astype(np.float32))  # B T D

with minivit.no_grad():
    update_attn = block.attn(block.norm1(x))              # MSA(LN(z))     B T D
    z_mid = x + update_attn                               # z' (equation 2)
    update_mlp = block.mlp(block.norm2(z_mid))            # MLP(LN(z'))    B T D
    z_out = z_mid + update_mlp                            # z  (equation 3)
    assert update_attn.shape == update_mlp.shape == z_out.shape == (4, 197, 192)
    print("by hand vs block(x), max |Δ|:", np.abs(z_out.data - block(x).data).max())

# %% [markdown]
# ## 3. The MLP
#
# The other sublayer is a two-layer perceptron, Linear $D \to M$, GELU (chapter 2), Linear
# $M \to D$, applied to every token separately:

# %%
print(inspect.getsource(nn.MLP))

# %% [markdown]
# The paper's models make it four times wider than the model, $M = 4D$, as the original
# Transformer did ($D = 512$, $M = 2048$). The small configurations that minivit trains on
# CIFAR-10 mostly use $M = 2D$:

# %%
print(f"{'config':10s} {'D':>5s} {'M':>5s} {'M/D':>4s}")
for name, c in CONFIGS.items():
    print(f"{name:10s} {c['dim']:5d} {c['mlp_dim']:5d} {c['mlp_dim'] / c['dim']:4.0f}")

# %% [markdown]
# Attention is the only layer in the block that mixes tokens; the LayerNorms and the MLP see
# one token at a time. Running the MLP on a single token gives what it gives that token inside
# the whole sequence (up to float32 rounding):

# %%
with minivit.no_grad():
    h = block.norm2(z_mid)                                                 # B T D
    whole = block.mlp(h).data                                              # B T D
    alone = block.mlp(Tensor(h.data[:, 5:6])).data                         # B 1 D: token 5 only
print("MLP of token 5 alone vs in the sequence, max |Δ|:", np.abs(alone[:, 0] - whole[:, 5]).max())

# %% [markdown]
# So a block is a division of labour: attention moves information between tokens, the MLP
# transforms each token's features, and it holds most of the weights (section 8 counts them).
#
# ## 4. The residual stream
#
# Equations 2 and 3 have the same shape: $z \leftarrow z + F(\operatorname{LN}(z))$. Nothing
# ever *replaces* $z$; each sublayer reads a normalised copy of it and **adds** its output.
# Unrolled over the whole encoder,
#
# $$z_L = z_0 + \sum_{\ell=1}^{L} \bigl(a_\ell + m_\ell\bigr), \qquad
# a_\ell = \operatorname{MSA}(\operatorname{LN}(z_{\ell-1})),\quad
# m_\ell = \operatorname{MLP}(\operatorname{LN}(z'_\ell)):$$
#
# the sequence $z$ is a running sum that every sublayer writes into and every later sublayer
# can read — the **residual stream** (the name is from Elhage et al., 2021, "A Mathematical
# Framework for Transformer Circuits"). It is the only thing one block passes to the next. The
# class token's row of it, after the last block, is what the head classifies.
#
# Let's follow it through ViT-Ti's 12 freshly initialised blocks, on 65 random tokens: the
# size (root mean square) of the stream and of each update, and how alike the tokens are (the
# mean cosine similarity of two different tokens).

# %%
def rms(a):
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))


def token_similarity(z):
    """Mean cosine similarity between two different tokens of the same image.  z: (B T D)."""
    u = z / np.linalg.norm(z, axis=-1, keepdims=True)
    cos = u @ u.swapaxes(-1, -2)                                           # B T T
    T = z.shape[1]
    return float(((cos.sum(axis=(-1, -2)) - T) / (T * (T - 1))).mean())


z0 = rng.standard_normal((8, 65, 192)).astype(np.float32)                  # B T D
stream, attn_sizes, mlp_sizes, similarity = [rms(z0)], [], [], [token_similarity(z0)]
total = z0.astype(np.float64)
with minivit.no_grad():
    z = Tensor(z0)
    for block in ti.blocks:
        a = block.attn(block.norm1(z))
        z = z + a
        m = block.mlp(block.norm2(z))
        z = z + m
        total += a.data + m.data                                            # z0 + all the updates
        stream.append(rms(z.data)); attn_sizes.append(rms(a.data)); mlp_sizes.append(rms(m.data))
        similarity.append(token_similarity(z.data))
print("z_L vs z_0 + sum of the 24 updates, max |Δ|:", f"{np.abs(total - z.data).max():.1e}")
print("block          ", " ".join(f"{i:5d}" for i in range(13)))
print("rms of z       ", " ".join(f"{s:5.2f}" for s in stream))
print("rms of a (MSA) ", "      " + " ".join(f"{s:5.2f}" for s in attn_sizes))
print("rms of m (MLP) ", "      " + " ".join(f"{s:5.2f}" for s in mlp_sizes))
print("token cos sim  ", " ".join(f"{s:5.2f}" for s in similarity))

# %% [markdown]
# The MLP's updates keep the same size block after block, an RMS of 0.47 to 0.50: a sublayer
# reads a *normalised* copy of the stream, so it cannot know how large the stream has become.
# The stream itself grows, from RMS 1.00 to 2.70 over the 12 blocks, so at initialisation the
# blocks change it by less and less, relatively: about half its RMS in block 1, about a third in
# block 12 (not strictly block after block: the attention updates grow). The attention updates grow too,
# from 0.21 to 0.78, for another reason: a freshly initialised head spreads its weight over all
# the tokens, so its output is close to an average of the tokens' values, and an average of
# unrelated vectors is short; it lengthens as the tokens become more alike.
#
# And they do become more alike: their mean cosine similarity goes from -0.00 to 0.61. That is
# the averaging of unstructured attention, and it shows what the residual connections are
# for. Remove them — $z \leftarrow \operatorname{MSA}(\operatorname{LN}(z))$, then
# $z \leftarrow \operatorname{MLP}(\operatorname{LN}(z))$ — and the same blocks collapse every
# token onto the same vector within a few blocks:

# %%
no_residual = [token_similarity(z0)]
with minivit.no_grad():
    z = Tensor(z0)
    for block in ti.blocks:
        z = block.mlp(block.norm2(block.attn(block.norm1(z))))
        no_residual.append(token_similarity(z.data))
print("without residuals, token cos sim:", " ".join(f"{s:.2f}" for s in no_residual))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].plot(range(13), stream, "o-", label="stream z")
axes[0].plot(range(1, 13), attn_sizes, "s-", label="update a (MSA)")
axes[0].plot(range(1, 13), mlp_sizes, "^-", label="update m (MLP)")
axes[0].set(xlabel="block", ylabel="root mean square", title="the stream grows, the updates do not")
axes[1].plot(range(13), similarity, "o-", label="with residual connections")
axes[1].plot(range(13), no_residual, "o-", label="without")
axes[1].set(xlabel="block", ylabel="mean cosine similarity of two tokens", ylim=(-0.05, 1.05),
            title="tokens at initialisation")
for ax in axes:
    ax.legend(fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# Without the residual connections the mean cosine similarity is 0.98 after two blocks and
# 1.00 after three: to two decimals the 65 tokens are one vector, and whatever distinguished a
# patch from its neighbours is gone before the model could use it. This is the "rank
# collapse" of pure attention that Dong, Cordonnier and Loukas (2021, "Attention is not all
# you need") proved: stacked self-attention alone converges to a rank-1 matrix doubly
# exponentially fast in depth, and skip connections are what prevent it.
# With them, each token's own input is still in the sum $z_L = z_0 + \sum(\dots)$.
#
# ## 5. The final LayerNorm and the head
#
# Because the stream is never normalised in place, its scale at the top depends on the depth
# and, once trained, on the data (at initialisation we saw its RMS go from 1.00 to 2.70 in 12
# blocks).
# Equation 4's LayerNorm brings the class token back to zero mean and unit variance, times the
# learned $\gamma$ plus $\beta$, before the head reads it.
#
# The head is `Linear(D, K, init="zeros")`: the official code starts it at zero, weight and
# bias. A fresh ViT therefore outputs logits that are exactly zero, a uniform prediction, and
# its loss is exactly $\ln K$. It has a consequence for the first step: the gradient that
# reaches the encoder, $\partial L/\partial y$, is proportional to
# $(p - \text{onehot})\,W_\text{head}^\top = 0$,
# so at the very first step only the head learns. Let's check on a small ViT and a few digits:

# %%
digits = load_dataset("digits")                        # 8x8 grey images, 1,437 train / 360 test
mean, std = digits.mean[0], digits.std[0]


def normalise(images):
    """uint8 (B 1 8 8) -> float32, each pixel to mean 0 and std 1 over the training set."""
    return ((images / 255 - mean) / std).astype(np.float32)


small = ViT(image_size=8, patch_size=2, in_channels=1, num_classes=10, dim=64, depth=6, heads=4,
            mlp_dim=256)
logits = small(normalise(digits.train_images[:32]))                       # B K
loss = ops.cross_entropy(logits, digits.train_labels[:32])
loss.backward()
print("logits all zero:", not np.any(logits.data),
      f"| loss {float(loss.data):.6f}, ln 10 = {math.log(10):.6f}")
moved = [name for name, p in small.named_parameters() if np.any(p.grad)]
print(f"parameters with a nonzero gradient at the first step: {moved} "
      f"(of {len(small.parameters())})")

# %% [markdown]
# ## 6. Pre-LN against post-LN: gradients at initialisation
#
# The original Transformer put the LayerNorm *after* the residual addition:
#
# $$\text{post-LN:}\quad z' = \operatorname{LN}\bigl(z + \operatorname{MSA}(z)\bigr),\qquad
# z = \operatorname{LN}\bigl(z' + \operatorname{MLP}(z')\bigr);$$
#
# $$\text{pre-LN (ViT):}\quad z' = z + \operatorname{MSA}(\operatorname{LN}(z)),\qquad
# z = z' + \operatorname{MLP}(\operatorname{LN}(z')).$$
#
# Post-LN normalises the stream itself after every sublayer, so there is no clean identity
# path from input to output: every gradient passes through $2L$ LayerNorms on its way down.
# Pre-LN keeps the path $z_L = z_0 + \sum(\dots)$ untouched. Xiong et al. (2020, "On Layer
# Normalization in the Transformer Architecture") analysed the two at initialisation: for
# post-LN, the gradient of the parameters near the output is large and does not depend on the
# depth $L$; for pre-LN it shrinks like $1/\sqrt{L}$. Post-LN therefore needs a learning-rate
# warmup to train stably, and pre-LN, which GPT-2 and then ViT adopted, can do without one.
#
# A post-LN block is `Block` with a different `forward`, the same sublayers and the same
# weights (a subclass here in the chapter; minivit itself has only pre-LN):

# %%
class PostLNBlock(Block):
    """The original Transformer's block: x = LN(x + MSA(x)), then x = LN(x + MLP(x))."""

    def forward(self, x):
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.mlp(x))


def post_ln(model):
    """The same ViT, with the same weights, every block post-LN."""
    state, a = model.state_dict(), model.architecture
    model.blocks = [PostLNBlock(a["dim"], a["heads"], a["mlp_dim"], a["dropout"], a["gelu"],
                                a["eps"]) for _ in model.blocks]
    return model.load_state_dict(state)


# %% [markdown]
# The measurement: a stack of $L$ blocks of width $D = 64$ (4 heads, $M = 256$), the final
# LayerNorm, and a linear head on the class token, on random tokens with random labels. The
# head is initialised at random here (Xavier, minivit's default for `Linear`), not at zero:
# with a zero head every gradient below it is zero (section 5), and it is the encoder's
# gradients we want to see. For each block, the norm of the gradient of all its parameters
# together, averaged over a few random initialisations; the same weights for both variants.

# %%
def block_gradient_norms(block_class, depth, seed, D=64, heads=4, B=32, T=17):
    """||dL/d(parameters of block l)|| for l = 1..depth, at initialisation."""
    minivit.manual_seed(seed)
    blocks = [block_class(D, heads, 4 * D, gelu="tanh") for _ in range(depth)]
    norm, head = nn.LayerNorm(D), nn.Linear(D, 10)
    draw = np.random.default_rng(seed)
    z = Tensor(draw.standard_normal((B, T, D)).astype(np.float32))        # B T D
    for block in blocks:
        z = block(z)
    ops.cross_entropy(head(norm(z)[:, 0]), draw.integers(0, 10, B)).backward()
    return np.array([math.sqrt(sum(float(np.sum(np.square(p.grad, dtype=np.float64)))
                                   for p in block.parameters())) for block in blocks])


seeds = range(1 if FAST else 3)
depths = (3, 6, 12, 24)
gradients = {(kind, L): np.mean([block_gradient_norms(cls, L, s) for s in seeds], axis=0)
             for kind, cls in (("pre-LN", Block), ("post-LN", PostLNBlock)) for L in depths}

print("gradient norm of the last block's parameters, at initialisation")
print(f"{'L':>3s} {'pre-LN':>8s} {'post-LN':>8s}")
for L in depths:
    print(f"{L:3d} {gradients['pre-LN', L][-1]:8.2f} {gradients['post-LN', L][-1]:8.2f}")
for kind in ("pre-LN", "post-LN"):
    print(f"{kind}, L = 24, block by block:", np.round(gradients[kind, 24], 2))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for kind, color in (("pre-LN", "C0"), ("post-LN", "C3")):
    axes[0].plot(range(1, 25), gradients[kind, 24], "o-", color=color, ms=3, label=kind)
    axes[1].loglog(depths, [gradients[kind, L][-1] for L in depths], "o-", color=color, label=kind)
guide = gradients["pre-LN", 3][-1] * np.sqrt(3 / np.array(depths))
axes[1].loglog(depths, guide, "--", color="0.6", label="∝ 1/√L")
axes[0].set(xlabel="block l (1 = next to the input)", ylabel="gradient norm of block l",
            title="L = 24 blocks, D = 64, at initialisation", ylim=(0, None))
axes[1].set(xlabel="number of blocks L", ylabel="gradient norm of the last block",
            title="the last block's gradient against depth")
axes[1].minorticks_off()
axes[1].set_xticks(depths, depths)
axes[1].set_yticks([0.6, 1, 2, 4], ["0.6", "1", "2", "4"])
for ax in axes:
    ax.legend(fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# The two differ as Xiong et al. predict, even at this small scale. Under pre-LN the last
# block's gradient falls as the stack gets deeper, from 1.84 at $L = 3$ to 0.98 at $L = 24$
# (more slowly than the $1/\sqrt{L}$ guide, at these depths); under post-LN it does not fall
# at all, it rises, from 2.43 to 4.71. Within the 24-block stack, pre-LN's gradients shrink
# steadily from the input side (3.44) to the output side (0.98); post-LN's are larger at every
# block, 5.26 next to the input, smallest in the middle (3.23, block 10), and 4.71 at the top.
# Large gradients right below the head, that do not shrink as blocks are added, are what makes
# large early steps dangerous; the next section takes such steps.
#
# ## 7. Pre-LN against post-LN: a high learning rate
#
# Now train both. The model is the small ViT of section 5 — the digits cut into $2 \times 2$
# patches (16 tokens and the class token), $D = 64$, 6 blocks, 4 heads — once pre-LN and once
# post-LN, from the same initial weights, with Adam (chapter 7 takes the optimizer apart), a
# constant learning rate and **no warmup**, for 150 steps of 64 images, at three learning
# rates. The same batches for every run.

# %%
train_x, train_y = normalise(digits.train_images), digits.train_labels
test_x, test_y = normalise(digits.test_images), digits.test_labels
STEPS, BATCH = (15 if FAST else 150), 64


def train_digits(variant, lr):
    """Train a fresh copy of the small ViT (seed 0); return (losses, test accuracy)."""
    minivit.manual_seed(0)
    model = ViT(image_size=8, patch_size=2, in_channels=1, num_classes=10, dim=64, depth=6,
                heads=4, mlp_dim=256)
    if variant == "post-LN":
        post_ln(model)
    optimizer = AdamW(model.parameters(), lr=lr)        # weight decay 0: plain Adam
    order = np.random.default_rng(0)
    losses = []
    while len(losses) < STEPS:
        shuffled = order.permutation(len(train_x))
        for start in range(0, len(shuffled) - BATCH + 1, BATCH):
            batch = shuffled[start:start + BATCH]
            loss = ops.cross_entropy(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.data))
            if len(losses) == STEPS:
                break
    model.eval()
    with minivit.no_grad():
        accuracy = float((model(test_x).data.argmax(axis=1) == test_y).mean())
    return losses, accuracy


rates = (1e-3, 3e-3, 1e-2)
runs = {(variant, lr): train_digits(variant, lr)
        for lr in rates for variant in ("pre-LN", "post-LN")}
print(f"after {STEPS} steps: test accuracy (360 images) | mean training loss of the last 10 steps")
print(f"{'lr':>6s} {'pre-LN':>16s} {'post-LN':>16s}")
for lr in rates:
    cells = [f"{100 * runs[v, lr][1]:5.1f}% | {np.mean(runs[v, lr][0][-10:]):.3f}"
             for v in ("pre-LN", "post-LN")]
    print(f"{lr:6g} {cells[0]:>16s} {cells[1]:>16s}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), sharey=True)
for ax, lr in zip(axes, rates):
    for variant, color in (("pre-LN", "C0"), ("post-LN", "C3")):
        losses = np.array(runs[variant, lr][0])
        smooth = np.convolve(losses, np.ones(5) / 5, mode="valid")       # a 5-step running mean
        ax.plot(np.arange(len(smooth)) + 5, smooth, color=color, label=variant)
    ax.axhline(math.log(10), color="0.6", ls="--", lw=1)
    ax.set(title=f"lr = {lr:g}, no warmup", xlabel="step")
axes[0].set_ylabel("training loss (5-step mean)")
axes[0].text(2, math.log(10) + 0.05, "ln 10: chance", fontsize=8, color="0.4")
axes[0].legend(fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# At $10^{-3}$ both learn (73.1% and 67.2% test accuracy). At $3 \times 10^{-3}$ pre-LN does
# better than at $10^{-3}$ (85.6%) while post-LN falls to 21.7%, and at $10^{-2}$ post-LN never
# leaves chance (10.0%; its last ten losses average 2.307, $\ln 10$) where pre-LN reaches 67.2%.
# This is one seed and 150 steps: read the gaps, not the decimals. The usual cure for post-LN
# is the warmup this experiment leaves out (exercise 2); pre-LN needs less of it, which is one
# reason it became the default. minivit's training recipes (chapter 7) still warm up, as the
# paper did.
#
# ## 8. Counting parameters
#
# On paper, for one block with biases everywhere (the official code's):
#
# | sublayer | weights | biases | parameters |
# |---|---|---|---|
# | `norm1` ($\gamma, \beta$) | | | $2D$ |
# | `attn.qkv` ($W_q, W_k, W_v$ side by side) | $D \cdot 3D$ | $3D$ | $3D^2 + 3D$ |
# | `attn.proj` | $D \cdot D$ | $D$ | $D^2 + D$ |
# | `norm2` | | | $2D$ |
# | `mlp.fc1` | $D \cdot M$ | $M$ | $DM + M$ |
# | `mlp.fc2` | $M \cdot D$ | $D$ | $MD + D$ |
# | **block** | | | $4D^2 + 2DM + 9D + M$ |
#
# With $M = 4D$ that is $4D^2 + 8D^2 + 9D + 4D = \mathbf{12D^2 + 13D}$: two thirds of it
# ($8D^2$) in the MLP, a third ($4D^2$) in attention, and almost nothing in the LayerNorms.
# The number of heads does not appear: the heads split the width, they add no weights. The
# whole model adds the patch embedding ($P^2C \cdot D + D$), the class token ($D$), the
# position embeddings ($(1 + N)D$), the final LayerNorm ($2D$) and the head ($DK + K$):
#
# $$\#\theta = (P^2C + N + 5)\,D + L\,(4D^2 + 2DM + 9D + M) + DK + K .$$

# %%
def block_parameters(D, M):
    return 4 * D * D + 2 * D * M + 9 * D + M


def vit_parameters(c, K, C=3):
    D, P, N = c["dim"], c["patch_size"], (c["image_size"] // c["patch_size"]) ** 2
    return (P * P * C + N + 5) * D + c["depth"] * block_parameters(D, c["mlp_dim"]) + D * K + K


D = 192
print(f"one Ti block: 12 D^2 + 13 D = {12 * D * D + 13 * D:,}; Block(192, 3, 768) has "
      f"{ti.blocks[0].num_parameters():,}")
print(f"ViT-Ti/16, 1000 classes: formula {vit_parameters(CONFIGS['Ti/16'], 1000):,}; "
      f"ViT.from_config('Ti/16') has {ti.num_parameters():,}")
assert ti.num_parameters() == vit_parameters(CONFIGS["Ti/16"], 1000) == 5_717_416

by_part = {}
for name, p in ti.named_parameters():
    part = name.split(".")[2] if name.startswith("blocks.") else name.split(".")[0]
    by_part[part] = by_part.get(part, 0) + p.size
print("ViT-Ti/16 by part:", ", ".join(f"{part} {count:,}" for part, count in by_part.items()))

# %% [markdown]
# In ViT-Ti/16 the twelve MLPs hold 3,550,464 of the 5,717,416 parameters and the twelve
# attention layers 1,778,688: the $8D^2$ against $4D^2$ of the formula.
#
# The other configurations: the paper's at 224 px and 1,000 classes, too big to build here
# just to count them (S/16 and B/16 are checked against the counts of the same models in timm,
# 22,050,664 and 86,567,656), and minivit's CIFAR-10 ones, built and counted, at 10 classes.

# %%
print(f"{'config':10s} {'formula':>12s} {'the model':>12s}")
for name, c in CONFIGS.items():
    K = 10 if name.startswith("C-") else 1000
    built = ViT.from_config(name, num_classes=K).num_parameters() if name.startswith("C-") else None
    if name == "Ti/16":
        built = ti.num_parameters()
    counted = f"{built:12,d}" if built is not None else f"{'':12s}"
    print(f"{name:10s} {vit_parameters(c, K):12,d} {counted}")
    assert built is None or built == vit_parameters(c, K)
assert vit_parameters(CONFIGS["S/16"], 1000) == 22_050_664
assert vit_parameters(CONFIGS["B/16"], 1000) == 86_567_656

# %% [markdown]
# ## 9. Counting FLOPs
#
# Almost all of a ViT's arithmetic is matrix products, and a product of an `a b` matrix with a
# `b c` one costs $a\,b\,c$ multiply-adds, $2abc$ FLOPs (a multiply and an add counted
# separately). Per image, with $T = N + 1$ tokens:
#
# * in each block, per token: `qkv` $2 \cdot D \cdot 3D$, `proj` $2D^2$, `fc1` $2DM$, `fc2`
#   $2MD$; with $r = M/D$, that is $2(4 + 2r)D^2$ per token, $2\,T\,(4 + 2r)\,D^2$ per block;
# * in each block, attention itself: the scores $QK^\top$ are, over the heads, $T \times T$
#   dot products of length $D_h$ per head, $2T^2D$ FLOPs; the weighted sum $PV$ as much again:
#   $4\,T^2 D$;
# * the patch embedding, $2N \cdot P^2C \cdot D$, and the head, $2DK$.
#
# $$\text{FLOPs} = 2\,T L\,(4 + 2r)\,D^2 \;+\; 4\,L\,T^2 D \;+\; 2N P^2 C D \;+\; 2DK .$$
#
# The rest — LayerNorms, GELU, softmax, biases, residual additions — is a few operations per
# entry of a `T D`, `T M` or `H T T` array, not a few per entry *times* $D$, and is left out.
# This is the formula of `minivit.cost.model_flops`, which the benchmark and the training
# runs use. Two checks: our own arithmetic, and a count of the products the model actually
# computes, by wrapping minivit's `Linear` and `Attention` ops so that they add up their FLOPs
# from the shapes they see during one forward pass of ViT-Ti/16 on one image.

# %%
@contextmanager
def counting_flops():
    """Within the block, every linear op adds 2 * rows * Din * Dout to counts['linear'] and
    every attention op 4 * B * T^2 * D to counts['attention']."""
    counts = {"linear": 0, "attention": 0}
    linear_forward, attention_forward = LinearOp.forward, Attention.forward

    def linear(self, x, weight, bias=None):
        counts["linear"] += 2 * (x.size // x.shape[-1]) * weight.shape[0] * weight.shape[1]
        return linear_forward(self, x, weight, bias)

    def attention(self, qkv):
        B, T, D = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        counts["attention"] += 4 * B * T * T * D
        return attention_forward(self, qkv)

    LinearOp.forward, Attention.forward = linear, attention
    try:
        yield counts
    finally:
        LinearOp.forward, Attention.forward = linear_forward, attention_forward


def paper_flops(c, K, C=3):
    D, L, P = c["dim"], c["depth"], c["patch_size"]
    N = (c["image_size"] // P) ** 2
    T, r = N + 1, c["mlp_dim"] / D
    return {"projections and MLP": 2 * T * L * (4 + 2 * r) * D * D, "attention": 4 * L * T * T * D,
            "patch embedding": 2 * N * P * P * C * D, "head": 2 * D * K}


terms = paper_flops(CONFIGS["Ti/16"], 1000)
with minivit.no_grad(), counting_flops() as counted:
    ti(rng.standard_normal((1, 3, 224, 224)).astype(np.float32))                  # one image
totals = {"total, on paper": sum(terms.values()), "counted in the run": sum(counted.values()),
          "cost.model_flops": model_flops(CONFIGS["Ti/16"], num_classes=1000)}
for term, flops in terms.items():
    print(f"{term:20s} {flops / 1e9:7.4f} GFLOP  ({100 * flops / totals['total, on paper']:4.1f}%)")
for name, flops in totals.items():
    print(f"{name:20s} {flops / 1e9:7.4f} GFLOP  = {flops:,.0f}")
assert len(set(totals.values())) == 1

# %% [markdown]
# The three agree: 2.5074 GFLOP per image for ViT-Ti/16 at 224 px, forward only (a training
# step, forward and backward, costs about three times as much: the backward pass of a matrix
# product is two matrix products of the same size). The projections and the MLP take 83.4%;
# the attention matrices themselves, the $T^2$ term that chapter 3 worried about, 14.3%.
#
# That share depends on the number of tokens. Per block, attention's $4T^2D$ against the
# projections' $2T(4 + 2r)D^2$ is the ratio $2T / ((4 + 2r)D)$, which is $T / 6D$ for $r = 4$:
# small while $T \ll 6D$, dominant beyond. The same Ti/16 at higher resolutions (the paper
# fine-tunes at 384 px), and minivit's CIFAR-10 models:

# %%
print(f"{'model':10s} {'px':>4s} {'tokens':>6s} {'GFLOP':>8s} {'attention share':>16s}")
for name, size in (("Ti/16", 224), ("Ti/16", 384), ("Ti/16", 512),
                   ("C-mini/4", 32), ("C-Ti/4", 32), ("C-M/4", 32)):
    c = {**CONFIGS[name], "image_size": size}
    parts = paper_flops(c, 1000 if name == "Ti/16" else 10)
    tokens = (size // c["patch_size"]) ** 2 + 1
    print(f"{name:10s} {size:4d} {tokens:6d} {sum(parts.values()) / 1e9:8.3f} "
          f"{100 * parts['attention'] / sum(parts.values()):15.1f}%")

# %% [markdown]
# At 384 px there are 577 tokens and attention's share reaches 32.8%; at 512 px, 1025 tokens,
# 46.4%, almost half. The three CIFAR-10 models in the table have 65 tokens, and attention
# takes 4.1% to 11.2% of their FLOPs, the most in the narrowest of them, C-mini/4: the ratio
# grows as $D$ shrinks, and its $r = 2$ makes the MLP cheaper still (C-micro/4, narrower again
# at $D = 64$, would reach about 20%).
#
# ## Summary
#
# * A ViT encoder is $L$ identical pre-LN blocks:
#   $z' = z + \operatorname{MSA}(\operatorname{LN}(z))$, then
#   $z + \operatorname{MLP}(\operatorname{LN}(z'))$ (equations 2 and 3, `model.Block`);
#   the MLP is Linear $D \to 4D$, GELU, Linear $4D \to D$, token by token.
# * The residual stream is a running sum: $z_L = z_0 + \sum_\ell (a_\ell + m_\ell)$. Each
#   sublayer reads a normalised copy and adds an update; without the additions the tokens of a
#   fresh model collapse onto one vector within three blocks.
# * The final LayerNorm (equation 4) rescales the class token for the head; the head starts at
#   zero, so a fresh ViT's loss is $\ln K$ and only the head moves at the first step.
# * Post-LN (the original Transformer) normalises the stream itself; at initialisation its
#   top-block gradients do not shrink as blocks are added, pre-LN's do (Xiong et al., 2020),
#   and without warmup post-LN fails at learning rates that pre-LN trains at.
# * Parameters: $12D^2 + 13D$ per block for $M = 4D$; ViT-Ti/16 has 5,717,416. FLOPs per image:
#   $2TL(4 + 2r)D^2 + 4LT^2D + 2NP^2CD + 2DK$, 2.5074 GFLOP for Ti/16 at 224 px.
#
# ## Exercises
#
# The "your turn" above is also an exercise file, `chapters/exercises/block_forward.py` (after
# `attention_forward.py`, which it uses), graded on the same cases from the repository root:
#
# ```bash
# python -m pytest --exercises -k block_forward
# ```
#
# Thinking questions:
#
# 1. Section 4's stream grew from RMS 1.00 to 2.70 in 12 blocks. If the updates of different
#    blocks were independent, of equal size and uncorrelated with the stream, how would the RMS
#    grow with depth? Compare with the printed numbers.
# 2. Add a linear warmup (the learning rate rising from 0 over the first 50 steps) to
#    `train_digits` and rerun post-LN at $3 \times 10^{-3}$ and $10^{-2}$. Which run does it
#    rescue?
# 3. Where would dropout go in a post-LN block? Why does `PostLNBlock` keep `self.drop` where
#    `Block` has it?
# 4. Derive the number of parameters of a block with an MLP ratio $r$ and no biases at all.
#    For which $r$ do attention and MLP hold the same number of weights?
# 5. At which image size does attention (the $4LT^2D$ term) cost as much as everything else in
#    ViT-Ti/16 with 16-pixel patches? In ViT-B/16?

# %% [markdown]
# ### What you can now do
#
# * Put the paper's equations 2-4 next to `minivit.model.Block` and `ViT`, and write a pre-LN
#   encoder block on NumPy arrays.
# * Explain the residual stream, and show what becomes of the tokens of a fresh model without
#   residual connections.
# * Say why a zero-initialised head gives a loss of exactly $\ln K$ and is the only part that
#   learns at the first step.
# * Compare pre-LN and post-LN blocks by their gradients at initialisation and by training
#   without warmup.
# * Count a ViT's parameters ($12D^2 + 13D$ per block when $M = 4D$) and forward FLOPs, and
#   predict attention's share of the FLOPs from $T$ and $D$.
#
# ### Further reading
#
# * Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929,
#   Section 3.1 (equations 1-4) and Table 1 (the Base, Large and Huge models).
# * Ruibin Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020,
#   arXiv:2002.04745: pre-LN against post-LN.
# * Nelson Elhage et al., "A Mathematical Framework for Transformer Circuits", Transformer
#   Circuits Thread, 2021 (transformer-circuits.pub): the residual stream.
# * Yihe Dong, Jean-Baptiste Cordonnier, Andreas Loukas, "Attention is Not All You Need: Pure
#   Attention Loses Rank Doubly Exponentially with Depth", ICML 2021, arXiv:2103.03404.
