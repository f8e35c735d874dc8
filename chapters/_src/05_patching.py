# Source of chapters/05_patching.ipynb; rebuild with `python chapters/_build.py 05`.

# %% [markdown]
# # Chapter 5 — An image becomes a sequence
#
# A transformer consumes a *sequence* of vectors. The Vision Transformer's one idea specific to
# images is how to make such a sequence: cut the image into non-overlapping $P \times P$
# patches, flatten each patch into a vector of $P^2 C$ numbers, and map it linearly to the model
# width $D$ — "an image is worth 16×16 words". This chapter
#
# 1. cuts a real photograph into patches and draws them,
# 2. explains the `rearrange` pattern that does the cutting, and checks it against plain
#    `reshape`/`transpose`,
# 3. applies minivit's `PatchEmbed` (the linear projection), and
# 4. verifies numerically that a linear map of flattened patches **is** a convolution with
#    kernel size and stride $P$ — the form the paper's code uses.
#
# Shapes: `B C H W` images, `N = (H/P)(W/P)` patches, `D` model width.

# %%
import inspect
import os
import sys
from pathlib import Path

try:
    import minivit
except ImportError:  # executed from chapters/ without minivit installed: use the repository
    sys.path.insert(0, str(Path.cwd().parent))
    import minivit

import einops
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects
from sklearn.datasets import load_sample_image

from exercises.check import check  # chapters/exercises/check.py: grades a "your turn" in place
from minivit import Tensor, gradcheck, ops
from minivit.engine import Function
from minivit.model import PatchEmbed

FAST = os.environ.get("MINIVIT_FAST") == "1"  # CI runs the chapters in fast mode
plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 90})
np.set_printoptions(precision=3, suppress=True, linewidth=110)
minivit.manual_seed(0)
rng = np.random.default_rng(0)
print("fast mode:", FAST)

# %% [markdown]
# ## 1. A real image
#
# scikit-learn ships two sample photographs. We take the centre square of `china.jpg` and
# make two versions: **224 × 224**, the paper's resolution (by nearest-neighbour sampling —
# crude, but enough here), and **32 × 32**, the CIFAR resolution of minivit's small models (by
# averaging 13 × 13 blocks of a 416 × 416 crop: `einops.reduce` with `'mean'`).

# %%
photo = load_sample_image("china.jpg")                    # H W C, uint8
print("original:", photo.shape, photo.dtype)
H0, W0, _ = photo.shape
side = min(H0, W0)
top, left = (H0 - side) // 2, (W0 - side) // 2
square = photo[top:top + side, left:left + side]          # side side C

rows = ((np.arange(224) + 0.5) * side / 224).astype(int)  # nearest neighbour: one source row per row
image224 = square[rows][:, rows].astype(np.float32) / 255  # 224 224 3, in [0, 1]

crop = square[(side - 416) // 2:(side - 416) // 2 + 416, (side - 416) // 2:(side - 416) // 2 + 416]
image32 = einops.reduce(crop.astype(np.float32) / 255, "(h a) (w b) c -> h w c", "mean", a=13, b=13)
assert image224.shape == (224, 224, 3) and image32.shape == (32, 32, 3)

# minivit (like PyTorch) takes channels first: B C H W
x224 = einops.rearrange(image224, "h w c -> 1 c h w")
x32 = einops.rearrange(image32, "h w c -> 1 c h w")
print("x224:", x224.shape, "| x32:", x32.shape)

# %% [markdown]
# ## 2. Patches
#
# With patch size $P$, an $H \times W$ image has a grid of $(H/P) \times (W/P)$ patches, numbered
# row by row: $N = 14 \times 14 = 196$ for 224 px and $P = 16$ (ViT-B/16), $N = 8 \times 8 = 64$
# for 32 px and $P = 4$ (minivit's `C-*/4` models).

# %%
def draw_grid(ax, image, patch, numbered, fontsize=7):
    """The image with its patch grid; `numbered`: the patches to label with their index."""
    ax.imshow(image, interpolation="nearest")
    size = image.shape[0]
    for t in range(0, size + 1, patch):
        ax.axhline(t - 0.5, color="white", lw=0.7)
        ax.axvline(t - 0.5, color="white", lw=0.7)
    g = size // patch
    for n in numbered:
        i, j = divmod(n, g)
        ax.text(j * patch + patch / 2 - 0.5, i * patch + patch / 2 - 0.5, str(n),
                ha="center", va="center", fontsize=fontsize, color="white", fontweight="bold",
                path_effects=[patheffects.withStroke(linewidth=2, foreground="black")])
    ax.set_xticks([]); ax.set_yticks([])


fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.4), dpi=80)
draw_grid(axes[0], image224, 16, [*range(14), *range(14, 196, 14), 195], fontsize=6)
axes[0].set_title("224 × 224, P = 16: N = 14 × 14 = 196 patches", fontsize=10)
draw_grid(axes[1], image32, 4, range(64))
axes[1].set_title("32 × 32, P = 4: N = 8 × 8 = 64 patches", fontsize=10)
plt.tight_layout(); plt.show()

# %% [markdown]
# ### Your turn: patchify, and its inverse
#
# Before reading how minivit cuts an image into this sequence, write it yourself:
# `patchify(images, patch_size)`, `B C H W` → `B N (P·P·C)` with one `einops.rearrange`, the
# patches row by row over the grid and each one ordered pixel row, pixel column, channel; and
# its inverse `unpatchify(patches, patch_size, height, width)`, which must give the images back
# exactly. Replace the two `raise`s and run the check below them: it grades both on the cases
# of `python -m pytest --exercises -k patchify` (RGB, not square, a batch of one, patches of one
# pixel, one patch for the whole image). Section 3 is the answer: try first.

# %%
def patchify(images, patch_size):
    """images (B C H W) -> patches (B N P*P*C), N = (H/P) (W/P), P = patch_size; the patches
    row by row over the grid, each ordered (p1 p2 c)."""
    raise NotImplementedError("exercise not done yet: write patchify")


def unpatchify(patches, patch_size, height, width):
    """The inverse: patches (B N P*P*C) -> images (B C H W), H = height, W = width."""
    raise NotImplementedError("exercise not done yet: write unpatchify")


# %%
check("patchify", patchify, unpatchify)

# %% [markdown]
# ## 3. `rearrange`: cutting and flattening in one line
#
# minivit's `PatchEmbed` cuts the patches with one einops pattern:
#
# ```
# b c (h p1) (w p2) -> b (h w) (p1 p2 c)
# ```
#
# Read it left to right. The height axis of length $H$ is *viewed* as two axes `(h p1)`: `h`
# patch rows of `p1 = P` pixel rows each (and the same for the width). Then the axes are
# regrouped: `(h w)` numbers the patches row by row — the sequence axis $N$ — and
# `(p1 p2 c)` flattens one patch, pixel row by pixel row, pixel by pixel, and the channels of
# each pixel together (the channel axis varies fastest). Nothing is computed: entries only move.
#
# A tiny image makes the order visible: 2 channels of 4 × 4 pixels, each entry set to
# `100·c + 10·row + column`, cut into 2 × 2 patches.

# %%
c, r, col = np.meshgrid(np.arange(2), np.arange(4), np.arange(4), indexing="ij")
tiny = (100 * c + 10 * r + col)[None].astype(float)                  # 1 2 4 4  (B C H W)
print("channel 0:\n", tiny[0, 0], "\nchannel 1:\n", tiny[0, 1])
patches = einops.rearrange(tiny, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=2, p2=2)
assert patches.shape == (1, 4, 2 * 2 * 2)                            # B N (P P C)
print("\npatches (B N P*P*C), one row per patch:\n", patches[0])

# %% [markdown]
# Patch 0 is `[0, 100, 1, 101, 10, 110, 11, 111]`: pixel (0, 0) in both channels, then pixel
# (0, 1), then (1, 0), then (1, 1). Patch 1 is the top-right 2 × 2 block.
#
# **The same with reshape and transpose.** `rearrange` is shorthand for a reshape that splits
# the axes, a transpose that orders them, and a reshape that merges them:

# %%
def to_patches(x, P):
    """B C H W -> B N (P P C) with plain NumPy."""
    B, C, H, W = x.shape
    h, w = H // P, W // P
    x = x.reshape(B, C, h, P, w, P)          # b c h p1 w p2
    x = x.transpose(0, 2, 4, 3, 5, 1)        # b h w p1 p2 c
    return x.reshape(B, h * w, P * P * C)    # b (h w) (p1 p2 c)


for image, P in ((tiny, 2), (x224, 16), (x32, 4)):
    assert np.array_equal(to_patches(image, P),
                          einops.rearrange(image, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=P, p2=P))
seq224 = to_patches(x224, 16)
print("x224 -> patches:", x224.shape, "->", seq224.shape, "(B N P*P*C)")

# the inverse pattern puts every entry back: no information is lost
back = einops.rearrange(seq224, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=14, p1=16, p2=16)
assert np.array_equal(back, x224)

# %% [markdown]
# ### One solution
#
# `to_patches` is `patchify`, and the inverse pattern above is `unpatchify`. The reference
# solution (`exercises/solutions/patchify.py`) says the same in einops alone; its check, then
# its code:

# %%
from exercises.solutions import patchify as patchify_solution

check("patchify", patchify_solution)
print(inspect.getsource(patchify_solution.patchify))
print(inspect.getsource(patchify_solution.unpatchify))

# %% [markdown]
# The ordering `(p1 p2 c)` is not arbitrary: the paper's checkpoints store the patch projection
# as a convolution kernel of shape `(P, P, C, D)`, and reshaping it to `(P·P·C, D)` orders its
# rows exactly as `(p1 p2 c)`. Any fixed order would train equally well, but only this one
# loads the official weights without shuffling them.
#
# Here is the sequence the transformer receives. On the left, one row per patch, in sequence
# order; each row holds the patch's $16 \cdot 16 = 256$ pixels in reading order, and each pixel
# its 3 channels — $768$ numbers, drawn as 256 coloured pixels. On the right, the same patches
# pulled apart, in reading order.

# %%
g, P = 14, 16
gap = 3
canvas = np.ones((g * (P + gap), g * (P + gap), 3))
for n in range(g * g):
    i, j = divmod(n, g)
    patch = einops.rearrange(seq224[0, n], "(p1 p2 c) -> p1 p2 c", p1=P, p2=P)
    canvas[i * (P + gap):i * (P + gap) + P, j * (P + gap):j * (P + gap) + P] = patch

fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), dpi=80, gridspec_kw=dict(width_ratios=[1.2, 1]))
rows_rgb = einops.rearrange(seq224[0], "n (pixels c) -> n pixels c", c=3)   # N 256 3
axes[0].imshow(rows_rgb, aspect="auto", interpolation="nearest")
axes[0].set(xlabel="pixel (p1 p2) of the patch; each has c = 3 numbers", ylabel="patch n (sequence position)")
axes[0].set_title("the sequence: N × P²C = 196 × 768", fontsize=10)
axes[1].imshow(canvas, interpolation="nearest")
axes[1].set_title("the same 196 patches, pulled apart", fontsize=10)
axes[1].axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 4. The linear projection: `PatchEmbed`
#
# Each flattened patch $x_n \in \mathbb{R}^{P^2C}$ becomes a token $z_n = x_n E + b$ with
# $E$ of shape `(P·P·C, D)` — the same $E$ for every patch. In minivit:

# %%
print(inspect.getsource(PatchEmbed.forward))

# %%
embed = PatchEmbed(image_size=224, patch_size=16, in_channels=3, dim=192)   # ViT-Ti width
print("E:", embed.proj.weight.shape, "| b:", embed.proj.bias.shape)
tokens = embed(Tensor(x224))
assert tokens.shape == (1, 196, 192)                                         # B N D
print("tokens:", tokens.shape, "(B N D)")
manual = seq224 @ embed.proj.weight.data + embed.proj.bias.data
print("max |PatchEmbed - patches @ E + b|:", np.abs(tokens.data - manual).max())

# %% [markdown]
# Even with random (untrained) weights, a linear projection to 192 dimensions roughly preserves
# how similar patches are to each other. The maps below show, for one sky patch and one patch
# on the roof, the cosine similarity of its token to every other token (tokens centred over
# the sequence first).

# %%
centred = tokens.data[0] - tokens.data[0].mean(axis=0)                      # N D
unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
similarity = unit @ unit.T                                                   # N N

fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), dpi=80)
axes[0].imshow(image224, interpolation="nearest"); axes[0].set_title("the image", fontsize=10)
for ax, n in zip(axes[1:], (2, 14 * 8 + 4)):
    im = ax.imshow(similarity[n].reshape(14, 14), cmap="RdBu_r", vmin=-1, vmax=1)
    i, j = divmod(n, 14)
    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="k", lw=2))
    axes[0].add_patch(plt.Rectangle((j * 16 - 0.5, i * 16 - 0.5), 16, 16, fill=False, ec="yellow", lw=2))
    ax.set_title(f"similarity to patch {n}", fontsize=10)
for ax in axes:
    ax.set_xticks([]); ax.set_yticks([])
fig.colorbar(im, ax=axes[1:], shrink=0.8, label="cosine similarity")
plt.show()

# %% [markdown]
# ### Your turn: the patch embedding's backward
#
# What is the backward of the whole patch embedding, rearrange then projection, as one op?
# Below is `PatchEmbedding` with its forward written: it keeps the rearranged patches,
# `self.patches` (`B N P·P·C`), for the backward. Write `backward`: given $\bar z$ (`grad`,
# `B N D`), return $(\bar x, \bar E, \bar b)$, each of its input's shape. Chapter 2's linear
# layer does most of it; what is left is to put each patch's gradient back where its pixels
# came from. The check grades it with `gradcheck` and against minivit's two ops (RGB, one
# patch of one channel, not square). The next paragraph gives it away.

# %%
PATCHES = "b c (h p1) (w p2) -> b (h w) (p1 p2 c)"


class PatchEmbedding(Function):
    """Cut images into P x P patches and project each one, in one op (P = self.patch_size):
    images (B C H W) -> patches (B N P*P*C) -> patches W + b (B N D).
    weight: (P*P*C D), bias: (D)."""

    def forward(self, images, weight, bias):
        self.patches = einops.rearrange(images, PATCHES, p1=self.patch_size, p2=self.patch_size)
        return self.patches @ weight + bias

    def backward(self, grad):
        """grad: (B N D) -> (dimages, dweight, dbias), shapes (B C H W), (P*P*C D), (D)."""
        raise NotImplementedError("exercise not done yet: write PatchEmbedding.backward")


# %%
check("patch_embed", PatchEmbedding)

# %% [markdown]
# **The gradient stays in its patch.** The backward of `PatchEmbed` is the linear layer's
# ($\bar x = \bar z E^\top$) followed by the *reverse* rearrange, which puts every gradient entry
# back on the pixel it came from. So the gradient of a function of one token reaches only
# that token's patch:

# %%
image_t = Tensor(x224.copy(), requires_grad=True)
n = 14 * 5 + 9
(embed(image_t)[:, n] ** 2).sum().backward()                                # L = |z_n|^2
assert image_t.grad.shape == (1, 3, 224, 224)
nonzero = np.argwhere(np.abs(image_t.grad[0]).sum(axis=0) > 0)
print(f"token {n}: gradient nonzero on rows {nonzero[:, 0].min()}..{nonzero[:, 0].max()}, "
      f"columns {nonzero[:, 1].min()}..{nonzero[:, 1].max()} (patch row {n // 14}, column {n % 14})")

fig, ax = plt.subplots(figsize=(3.6, 3.6))
ax.imshow(np.abs(image_t.grad[0]).sum(axis=0), cmap="magma")
ax.set_title(f"|dL/dimage| for L = |token {n}|²", fontsize=10)
ax.set_xticks([]); ax.set_yticks([])
plt.show()

# %% [markdown]
# And the usual check, in float64 on a small image (`gradcheck` converts the module's
# parameters, which we pass as inputs, in place):

# %%
small = PatchEmbed(image_size=8, patch_size=4, in_channels=3, dim=5).to(dtype=np.float64)
images = Tensor(rng.standard_normal((2, 3, 8, 8)), requires_grad=True)       # B C H W
errors = gradcheck(lambda x, *_: small(x),
                   {"images": images, "E": small.proj.weight, "b": small.proj.bias}, name="PatchEmbed")
print(errors)

# %% [markdown]
# ### One solution
#
# That is the whole backward: the linear layer's three products on the patches, then the
# reverse pattern for $\bar x$. The reference solution (`exercises/solutions/patch_embed.py`),
# its check, then its code:

# %%
from exercises.solutions import patch_embed as patch_embed_solution

check("patch_embed", patch_embed_solution)
print(inspect.getsource(patch_embed_solution.PatchEmbedding.backward))

# %% [markdown]
# ## 5. Patch embedding = strided convolution
#
# The official code writes the patch embedding as a convolution with kernel size $P$ and stride
# $P$, kernel $K$ of shape `(P, P, C, D)`:
#
# $$\operatorname{conv}(x)_{b,i,j,d} = b_d + \sum_{u<P}\sum_{v<P}\sum_{c} x_{b,\,c,\,iP+u,\,jP+v}\;K_{u,v,c,d}.$$
#
# The window of output $(i, j)$ is exactly patch $n = i\,(W/P) + j$, and the triple sum is a dot
# product between that patch flattened in the order $(u, v, c)$ = `(p1 p2 c)` and the kernel
# flattened the same way: `K.reshape(P*P*C, D)` is $E$. Stride $= P$ makes the windows tile
# the image without overlap, which is why a reshape can replace the sliding window.
#
# Let us write the convolution directly — a loop over output positions, an `einsum` over each
# window — and compare.

# %%
def conv2d(images, kernel, bias, stride):
    """images (B C H W), kernel (P P C D) as in the JAX checkpoints -> (B D H' W')."""
    B, C, H, W = images.shape
    P, _, _, D = kernel.shape
    Ho, Wo = (H - P) // stride + 1, (W - P) // stride + 1
    out = np.empty((B, D, Ho, Wo), images.dtype)
    for i in range(Ho):
        for j in range(Wo):
            window = images[:, :, i * stride:i * stride + P, j * stride:j * stride + P]   # B C P P
            out[:, :, i, j] = np.einsum("bcuv,uvcd->bd", window, kernel) + bias
    return out


P, C, D = 16, 3, 192
kernel = embed.proj.weight.data.reshape(P, P, C, D)                    # E viewed as (P P C D)
conv = conv2d(x224, kernel, embed.proj.bias.data, stride=P)            # B D 14 14
assert conv.shape == (1, D, 14, 14)
conv_tokens = einops.rearrange(conv, "b d h w -> b (h w) d")           # B N D
print("max |conv - PatchEmbed|:", np.abs(conv_tokens - tokens.data).max(),
      f"(float32; the values are of size {np.abs(tokens.data).max():.1f})")

# %% [markdown]
# With PyTorch (not a dependency of minivit; skipped if it is missing) the same check against
# `torch.nn.functional.conv2d`, whose weight layout is `(D, C, P, P)`:

# %%
try:
    import torch
except ImportError:
    print("PyTorch is not installed: skipping the comparison with torch.nn.functional.conv2d")
else:
    weight = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())    # D C P P
    ref = torch.nn.functional.conv2d(torch.from_numpy(x224), weight,
                                     torch.from_numpy(embed.proj.bias.data), stride=P)
    ref_tokens = einops.rearrange(ref.numpy(), "b d h w -> b (h w) d")
    print("max |torch conv2d - PatchEmbed|:", np.abs(ref_tokens - tokens.data).max())

# %% [markdown]
# With a stride smaller than $P$ the windows overlap, the reshape trick no longer applies, and
# the sequence gets longer — $N = ((H-P)/S + 1)^2$:

# %%
for stride in (16, 8, 4):
    out = conv2d(x224[:, :, :64, :64], kernel, embed.proj.bias.data, stride)   # a 64 x 64 corner
    print(f"stride {stride:2d}: a 64 x 64 crop gives {out.shape[2]} x {out.shape[3]} = {out.shape[2] * out.shape[3]} tokens")

# %% [markdown]
# ## 6. Sequence length and cost
#
# The patch size sets the sequence length, and attention's `B H N N` matrices grow with its
# square (chapter 11 trains one model with patches of 4, 8 and 16 pixels and weighs the
# accuracy each buys against its compute, as the paper's B/16 against B/32). The models in
# `minivit.CONFIGS`, with the class token added (`N + 1` tokens):

# %%
print(f"{'config':10s} {'image':>5s} {'P':>3s} {'grid':>6s} {'tokens':>7s} {'attention entries per head':>27s}")
for name, cfg in minivit.CONFIGS.items():
    grid = cfg["image_size"] // cfg["patch_size"]
    tokens_n = grid * grid + 1
    print(f"{name:10s} {cfg['image_size']:5d} {cfg['patch_size']:3d} {f'{grid}x{grid}':>6s} "
          f"{tokens_n:7d} {tokens_n ** 2:27,d}")

# %% [markdown]
# ## 7. What comes next
#
# `ViT` then prepends a learned class token and adds learned position embeddings — the patch
# sequence itself carries no notion of where each patch was:

# %%
model = minivit.ViT.from_config("C-micro/4", num_classes=10)
z = model.patch_embed(Tensor(x32))                                          # B N D
cls = ops.broadcast_to(model.cls_token, (1, 1, z.shape[2]))                  # B 1 D
z = ops.concat([cls, z], axis=1) + model.pos_embed                           # B 1+N D
assert z.shape == (1, 65, 64)
print("patches", model.patch_embed(Tensor(x32)).shape, "-> with class token and positions", z.shape)
print("logits:", model(x32).shape)

# %% [markdown]
# ## Summary
#
# * `rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)')` turns `B C H W` into `B N (P P C)`:
#   a reshape, a transpose, a reshape; its backward is the reverse pattern.
# * `PatchEmbed` = that rearrange + one linear layer $E$ (`P·P·C D`), shared by all patches.
# * It equals a convolution with kernel size = stride = $P$ and kernel `E.reshape(P, P, C, D)`;
#   the `(p1 p2 c)` order is what makes the official weights load as they are.
# * $N = (H/P)(W/P)$; attention costs grow as $N^2$.
#
# ## Exercises
#
# The two "your turn" exercises of this chapter are also exercise files, graded on the same
# cases from the repository root:
#
# ```bash
# python -m pytest --exercises -k patchify      # chapters/exercises/patchify.py, before section 3
# python -m pytest --exercises -k patch_embed   # chapters/exercises/patch_embed.py, in section 4
# ```
#
# Thinking questions:
#
# 1. Replace `(p1 p2 c)` with `(c p1 p2)` in `PatchEmbed`. Does the model still train as well?
#    What must you do to the official kernel `(P, P, C, D)` to load it?
# 2. The convolution view suggests overlapping patches (stride < P). How does $N$ grow for
#    224 px images, $P = 16$, stride 8? What does that do to attention's cost?
# 3. Why does the gradient with respect to the image of one token stay inside its patch — and
#    after one attention layer, would it still?
# 4. A patch of a uniformly coloured region (sky) is almost constant: which direction in
#    $\mathbb{R}^{P^2C}$ does it lie close to? What does the linear projection do with it?

# %% [markdown]
# ### What you can now do
#
# * Cut a batch of images into a sequence of patches with one `rearrange` pattern, each patch
#   ordered `(p1 p2 c)`, and invert it exactly.
# * Explain why that order is the one that loads the official checkpoints' `(P, P, C, D)`
#   kernel unchanged.
# * Derive the patch embedding's backward pass (the linear layer's, then the reverse
#   rearrange) and show that a token's gradient stays inside its patch.
# * Show numerically that the patch embedding is a convolution with kernel size and stride $P$.
# * Compute the sequence length $N = (H/P)(W/P)$ of a configuration and what it does to
#   attention's cost.
#
# ### Further reading
#
# * Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929,
#   Section 3.1 and Figure 1: the patch embedding, and the hybrid that takes its patches from a
#   CNN's feature map instead.
# * Vincent Dumoulin, Francesco Visin, "A guide to convolution arithmetic for deep learning",
#   2016, arXiv:1603.07285: kernel size, stride and output size.
# * Alex Rogozhnikov, "Einops: Clear and Reliable Tensor Manipulations with Einstein-like
#   Notation", ICLR 2022: the notation of `rearrange`.
