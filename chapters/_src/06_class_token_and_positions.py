# Source of chapters/06_class_token_and_positions.ipynb; rebuild with `python chapters/_build.py 06`.

# %% [markdown]
# # Chapter 6 — The class token and position embeddings
#
# Chapter 5 turned an image into a sequence of $N$ patch tokens. Before the encoder sees them,
# the ViT does two more things (equation 1 of the paper):
#
# $$z_0 = [\,x_\text{class};\; x_1 E;\; x_2 E;\; \dots;\; x_N E\,] + E_\text{pos},
# \qquad E_\text{pos} \in \mathbb{R}^{(1+N) \times D}.$$
#
# * it **prepends a class token** $x_\text{class}$, a learned vector that belongs to no patch;
#   after the last block, its output alone is fed to the classifier head;
# * it **adds a position embedding**, one learned vector per sequence position.
#
# This chapter shows why the second is needed — without it the encoder cannot tell a picture
# from a shuffled picture — then looks at what a trained ViT's position embeddings learned:
# although they are a plain 1-D table, they discover the 2-D layout of the patch grid.
# Finally it interpolates them to a bigger grid, which is how a ViT is fine-tuned at a higher
# resolution.
#
# Shapes: `B` images, `C H W` channels and pixels, `N = g·g` patches on a `g × g` grid,
# `T = 1 + N` tokens, `D` the width.
#
# It is **your turn** twice: equation 1 on arrays (before section 1 shows minivit's), and the
# interpolation of section 4 (before its answer).

# %%
import inspect
import json
import os
import sys
import tempfile
from pathlib import Path

try:
    import minivit
except ImportError:  # executed from chapters/ without minivit installed: use the repository
    sys.path.insert(0, str(Path.cwd().parent))
    import minivit

import einops
import matplotlib.pyplot as plt
import numpy as np

from exercises.check import check  # chapters/exercises/check.py: grades a "your turn" in place
from minivit import Tensor, ops
from minivit.analysis import position_similarity
from minivit.data.loader import batches
from minivit.interpolate import interpolation_matrix
from minivit.model import ViT, resize_pos_embed
from minivit.pretrained import from_pretrained
from minivit.evaluation import evaluate
from minivit.train import TrainConfig, train

from find_data import DATA_DIR, FAST, cifar10_or_digits  # chapters/find_data.py

plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80})
np.set_printoptions(precision=3, suppress=True, linewidth=110)
minivit.manual_seed(0)
rng = np.random.default_rng(0)
print("fast mode:", FAST)

# %% [markdown]
# ### Your turn: equation 1
#
# Write `embed_tokens(x, cls_token, pos_embed)`: the patch tokens `B N D`, the class token
# `1 1 D` (one learned vector, the same for every image) and the position embeddings `1 1+N D`
# (the class token's first) → $z_0$, `B 1+N D`. Three NumPy calls: give every image its copy of
# the class token, put it in front of the patch tokens, add the position embeddings. Return a
# NumPy array and leave `x` as it was. The check runs the cases of
# `python -m pytest --exercises -k embed_tokens` against the first steps of minivit's
# `ViT.forward_features` (a batch, one image of one patch, a width of one). Section 1 shows minivit's answer.

# %%
def embed_tokens(x, cls_token, pos_embed):
    """z0 = [x_class; x_1 E; ...; x_N E] + E_pos.
    x: (B N D), cls_token: (1 1 D), pos_embed: (1 1+N D) -> z0: (B 1+N D)."""
    raise NotImplementedError("exercise not done yet: write embed_tokens")


# %%
check("embed_tokens", embed_tokens)

# %% [markdown]
# ## 0. Data
#
# We use CIFAR-10 (32 × 32 colour images, 10 classes) when it is at hand: from the archive named
# by the environment variable `MINIVIT_CIFAR10_ARCHIVE`, or from `data/cifar-10-python.tar.gz`
# at the repository root (as `python -m minivit.train` finds it). Where there is none, the
# cell below downloads it (170 MB, MD5-checked) when the machine is online. Without it —
# and always in fast mode, which the tests use — the chapter falls back to scikit-learn's 8 × 8
# handwritten digits, which are always there, and says so below. The committed outputs came
# from a copy of CIFAR-10 rebuilt from JPEG files (its note says so when it finds
# one): accuracies on the official data differ by about a point.

# %%
DATASET, data = cifar10_or_digits(download=True)  # only with no copy at hand: 170 MB, MD5 checked
CIFAR = DATASET.startswith("cifar10")
C, S = data.train_images.shape[1:3]                       # channels, image side
PATCH = 4 if CIFAR else 2                                 # 32 px -> 8 x 8 grid, 8 px -> 4 x 4
print(f"{data.name}: train {data.train_images.shape}, test {data.test_images.shape} "
      f"(N C H W, uint8), classes {data.classes}")

# %% [markdown]
# ## 1. Without positions, the encoder sees a bag of patches
#
# Every piece of the encoder except attention acts on each token on its own: layernorm, the
# MLP, the residual additions. Attention mixes tokens, but symmetrically. Permute the tokens
# with a permutation matrix $\Pi$ (rows of $X$ reordered): queries, keys and values are
# permuted the same way, and
#
# $$\operatorname{softmax}\!\Bigl(\frac{(\Pi Q)(\Pi K)^\top}{\sqrt{D_h}}\Bigr)\,\Pi V
#   = \Pi\,\operatorname{softmax}\!\Bigl(\frac{Q K^\top}{\sqrt{D_h}}\Bigr)\,\Pi^\top \Pi V
#   = \Pi\,\operatorname{Attention}(Q, K, V),$$
#
# because softmax along a row does not care in which order the row's entries come, and
# $\Pi^\top \Pi = I$. So each block is **permutation-equivariant**: permuting its input
# permutes its output the same way. Now shuffle the *patches* only, leaving the class token
# first ($\Pi = \operatorname{diag}(1, \Pi_N)$): the class token's output does not change at
# all. A ViT without position embeddings classifies a shuffled picture exactly as the original.
#
# Let's check it. We shuffle an image's patches with `rearrange` — cut into patches, permute
# the patch axis, paste back — and compare the class token's output features.

# %%
def shuffle_patches(images, permutation, patch):
    """Move patch permutation[k] to position k, for every image.  (B C H W) -> (B C H W)."""
    g = images.shape[-1] // patch
    pieces = einops.rearrange(images, "b c (h p1) (w p2) -> b (h w) c p1 p2", p1=patch, p2=patch)
    assert pieces.shape[1] == g * g                                     # B N C P P
    return einops.rearrange(pieces[:, permutation], "b (h w) c p1 p2 -> b c (h p1) (w p2)", h=g)


def encode(model, images):
    """Every output token of the encoder: forward_features without picking the class token.
    images (B C H W) -> (B 1+N D)."""
    with minivit.no_grad():
        x = model.patch_embed(Tensor(images))                           # B N D
        cls = ops.broadcast_to(model.cls_token, (x.shape[0], 1, x.shape[2]))
        x = ops.concat([cls, x], axis=1) + model.pos_embed              # B 1+N D
        for block in model.blocks:
            x = block(x)
        return model.norm(x).data


images = next(batches(data.test_images[:4], data.test_labels[:4], 4, mean=data.mean, std=data.std))[0]
N = (S // PATCH) ** 2
permutation = rng.permutation(N)
shuffled = shuffle_patches(images, permutation, PATCH)
assert shuffled.shape == images.shape                                   # B C H W

model = ViT.from_config("C-micro/4", image_size=S, patch_size=PATCH, in_channels=C, num_classes=10)
model.eval()
with_positions = model.pos_embed.data.copy()
for label, pos in (("with position embeddings", with_positions),
                   ("pos_embed set to zero", np.zeros_like(with_positions))):
    model.pos_embed.data = pos
    original, permuted = encode(model, images), encode(model, shuffled)
    assert original.shape == (4, 1 + N, 64)                             # B 1+N D
    cls_change = np.abs(permuted[:, 0] - original[:, 0]).max()
    token_change = np.abs(permuted[:, 1:] - original[:, 1 + permutation]).max()
    print(f"{label:26s}: max |class token(shuffled) - class token(original)| = {cls_change:.2e}; "
          f"patch tokens, permuted back: {token_change:.2e}")
model.pos_embed.data = with_positions

# %% [markdown]
# `encode` above begins with equation 1 on Tensors: `ops.broadcast_to`, `ops.concat` along the
# token axis, `+ model.pos_embed`, as `ViT.forward_features` does. The reference solution of
# `embed_tokens` (`exercises/solutions/embed_tokens.py`) is the same on arrays; its check, then
# its code:

# %%
from exercises.solutions import embed_tokens as embed_tokens_solution

check("embed_tokens", embed_tokens_solution)
print(inspect.getsource(embed_tokens_solution.embed_tokens))

# %% [markdown]
# With the position embeddings zeroed, the class token comes out the same (up to float32
# rounding, ~$10^{-6}$ here), and every patch token comes out equal to the token of the patch that
# was moved there: the encoder is equivariant, its class-token summary invariant. With
# position embeddings, the same patch gets a different vector added at a different place, and
# the outputs change.
#
# Here is what "the same" means. To a ViT without position embeddings these two images are
# indistinguishable:

# %%
def show(ax, image, title=None):
    """A normalised (C H W) image back to [0, 1] for imshow; grey for one channel."""
    picture = image * np.array(data.std)[:, None, None] + np.array(data.mean)[:, None, None]
    picture = np.clip(einops.rearrange(picture, "c h w -> h w c"), 0, 1)
    ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", interpolation="nearest")
    ax.set_xticks([]); ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


fig, axes = plt.subplots(2, 4, figsize=(7, 3.8))
for k in range(4):
    show(axes[0, k], images[k], data.classes[int(data.test_labels[k])])
    show(axes[1, k], shuffled[k], "patches shuffled")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 2. Learned 1-D position embeddings
#
# The paper's answer is the simplest one: a table `pos_embed` of shape `(1, 1+N, D)` — one
# row per sequence position, the class token's first — initialised with small random numbers
# ($\mathcal{N}(0, 0.02^2)$) and learned like any other weight. It is **1-D**: row $n$ belongs
# to the $n$-th patch in reading order, and nothing in the table says that patch $n$ sits next
# to patch $n+1$, or above patch $n+g$. That has to be learned from the images.
# (Sinusoidal embeddings, 2-D embeddings and relative positions are the alternatives; the
# paper's Appendix D.4 finds them all about equally good, and clearly better than none;
# chapter 11 measures none, 1-D and 2-D at CIFAR scale.)
#
# At initialisation the rows are independent random vectors, so their cosine similarities are
# close to zero — no layout at all:

# %%
print("pos_embed:", model.pos_embed.shape, "(1 1+N D)")
g = S // PATCH
tiles_init = position_similarity(model.pos_embed.data, g)
assert tiles_init.shape == (g, g, g, g)                                 # g g g g
off_diagonal = tiles_init.reshape(N, N)[~np.eye(N, dtype=bool)]
print(f"initial cosine similarity between different positions: mean {off_diagonal.mean():+.3f}, "
      f"std {off_diagonal.std():.3f}")

# %% [markdown]
# Now take a trained ViT. With CIFAR-10 it is the repository's committed model,
# `results/cifar10-cpu-hour/model.npz`: the first run of `python -m minivit.train --preset
# cpu-hour` (`C-mini/4`: $D = 128$, 6 blocks of 4 heads, the same $8 \times 8$ grid of
# $4 \times 4$ patches, an hour of training on two cores; chapter 9 inspects it in depth).
# Without CIFAR-10 (and in fast mode) we train a small ViT on the digits for a minute with
# `minivit.train` instead — chapter 7 takes the training loop apart; here we only need its
# result. For the comparison, a fresh model of the same architecture stands for "at
# initialisation".

# %%
if CIFAR:
    CHECKPOINT = "../results/cifar10-cpu-hour/model.npz"
    trained = from_pretrained(CHECKPOINT)
    record = json.loads(Path("../results/cifar10-cpu-hour/summary.json").read_text())
    trained_for = f"{record['epochs']} epochs"
    print(f"{CHECKPOINT}: {trained.num_parameters():,} parameters, {trained_for}, test accuracy "
          f"{100 * record['final_test_accuracy']:.1f}% (its training record)")
else:  # the digits: 1,437 images, 23 steps an epoch
    run_dir = tempfile.mkdtemp(prefix="minivit-ch06-")
    config = TrainConfig(dataset="digits", model="C-micro/4", patch_size=2, epochs=2 if FAST else 30,
                         batch_size=64, lr=2e-3, warmup_epochs=1, augment="crop")
    summary = train(config, run_dir)
    trained = from_pretrained(os.path.join(run_dir, "last.npz"))
    trained_for = f"{config.epochs} epochs"
    print(f"test accuracy {100 * summary['final_test_accuracy']:.1f}% after {trained_for}")
assert trained.patch_embed.grid == g
initial = ViT(**trained.config)                       # the same architecture, untrained
tiles_init = position_similarity(initial.pos_embed.data, g)

# %% [markdown]
# ## 3. The learned embeddings know the grid
#
# For every patch $(r, c)$ of the grid, take its embedding's cosine similarity with the
# embeddings of all $N$ patches, and draw those $N$ numbers as a $g \times g$ tile at place
# $(r, c)$: `minivit.analysis.position_similarity` returns these tiles, `(g g g g)`, and this is
# the paper's Figure 7 (centre).

# %%
def similarity_mosaic(ax, tiles, title):
    """The (g g g g) tiles on the g x g grid, one cell of white between them."""
    g = tiles.shape[0]
    mosaic = np.full((g * (g + 1) - 1,) * 2, np.nan)
    for r in range(g):
        for c in range(g):
            mosaic[r * (g + 1):r * (g + 1) + g, c * (g + 1):c * (g + 1) + g] = tiles[r, c]
    image = ax.imshow(np.ma.masked_invalid(mosaic), cmap="viridis", vmin=-1, vmax=1,
                      interpolation="nearest")
    centres = np.arange(g) * (g + 1) + (g - 1) / 2
    ax.set_xticks(centres, range(1, g + 1)); ax.set_yticks(centres, range(1, g + 1))
    ax.tick_params(length=0, labelsize=8)
    ax.set(xlabel="input patch column", ylabel="input patch row", title=title)
    return image


tiles = position_similarity(trained.pos_embed.data, g)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
similarity_mosaic(axes[0], tiles_init, "at initialisation")
image = similarity_mosaic(axes[1], tiles, f"trained ({trained_for})")
fig.colorbar(image, ax=axes, fraction=0.025, label="cosine similarity")
plt.show()

# %% [markdown]
# At initialisation only the diagonal (each patch with itself) stands out. After training
# every tile is bright around its own patch and dark far from it: a patch's embedding is like
# its neighbours' and unlike those across the grid. The bright region is wider than it is tall —
# an embedding resembles its own row's further out than its own column's (the numbers below the
# curve). Nobody told the model that position 9 is below position 1 — the table is 1-D — the
# data did: neighbouring patches are correlated, and the model gains from knowing which
# patches are neighbours. One caveat about this model: it spent 30 of its 36 epochs on
# 16 × 16 images, a $4 \times 4$ grid, whose 16 learned embeddings were then interpolated to
# the $8 \times 8$ grid (as section 4 below does) and trained for 6 more epochs; part of the
# smoothness at the finer scale comes from that interpolation, the layout itself from the data.
#
# The same in one curve: the mean similarity of two positions against their distance on the
# grid, in patches, rounded to the nearest whole patch.

# %%
rows, cols = np.divmod(np.arange(N), g)
distance = np.hypot(rows[:, None] - rows[None], cols[:, None] - cols[None])      # N N
fig, ax = plt.subplots(figsize=(5.5, 3.4))
bins = np.round(distance)                                                          # N N
ds = np.unique(bins[distance > 0])
curves = {}
for label, t in (("initial", tiles_init), ("trained", tiles)):
    sim = t.reshape(N, N)
    curves[label] = [sim[(bins == d) & (distance > 0)].mean() for d in ds]
    ax.plot(ds, curves[label], "o-", ms=4, label=label)
ax.axhline(0, color="gray", lw=0.5)
ax.set(xlabel="distance between the two patches (in patches)", ylabel="mean cosine similarity",
       title="position embeddings: similarity against distance")
ax.legend(); plt.tight_layout(); plt.show()
by_distance = np.array(curves["trained"])
print("trained, mean similarity at distance", "  ".join(f"{d:.0f}: {c:+.2f}" for d, c in zip(ds, by_distance)))
assert by_distance.argmax() == 0             # the nearest neighbours are the most similar
if CIFAR:                                    # the committed model (not the digits' quick one):
    assert np.all(np.diff(by_distance[:4]) < 0)  # similarity falls over the first four patches
sim = tiles.reshape(N, N)
for k in (1, 2, 3):
    along_row = sim[(rows[:, None] == rows[None]) & (distance == k)].mean()
    along_column = sim[(cols[:, None] == cols[None]) & (distance == k)].mean()
    print(f"{k} patch{'es' if k > 1 else ''} apart: in the same row {along_row:+.2f}, "
          f"in the same column {along_column:+.2f}")

# %% [markdown]
# Similarity falls steeply over the first four patches of distance (asserted), from strongly
# positive for neighbours to negative beyond about four patches, and stays negative across the
# rest of the grid (the numbers printed above): near positions have similar embeddings, far ones
# dissimilar. Pairs in the same row stay similar further out than pairs in the same column
# (+0.48 against +0.15 three patches apart).

# %% [markdown]
# ## 4. A bigger grid: interpolating the embeddings
#
# The patch embedding $E$ does not care how many patches there are, and neither do the blocks —
# only `pos_embed` has a row per position. To fine-tune at a higher resolution (the paper goes
# from 224 to 384 px, keeping $P = 16$, so $14 \times 14 \to 24 \times 24$ patches), the paper
# treats the $g \times g$ rows as an image with $D$ channels and **resizes it bilinearly** to
# $G \times G$; the class token's row is kept as it is.
#
# ### Your turn: interpolate the position embeddings
#
# Before the details below: write `interpolate_pos_embed(pos_embed, new_grid)`, `1 1+g·g D` →
# `1 1+G·G D`, the class token's row unchanged and the $g \times g$ grid resized bilinearly to
# $G \times G$ with the corners aligned: output row $i$ samples the old grid at
# $x_i = i\,(g-1)/(G-1)$, weight $1 - f$ on $\lfloor x_i \rfloor$ and $f = x_i - \lfloor x_i \rfloor$ on
# the next one, the same along the columns (for $G = 1$ the one output samples position 0).
# The check runs the cases of `python -m pytest --exercises -k interpolate_pos_embed` against
# minivit's `resize_pos_embed` (a grid that grows, shrinks, stays, goes to one cell or grows from one). The rest of this
# section is the answer.

# %%
def interpolate_pos_embed(pos_embed, new_grid):
    """pos_embed: (1 1+g*g D) -> (1 1+G*G D), G = new_grid: row 0 kept, the g x g grid resized
    bilinearly, corners aligned."""
    raise NotImplementedError("exercise not done yet: write interpolate_pos_embed")


# %%
check("interpolate_pos_embed", interpolate_pos_embed)

# %% [markdown]
# With corners aligned, output row $i$ samples the old grid at $i\,(g - 1)/(G - 1)$, a
# weighted mix of two neighbours. As a matrix $M$ (`G g`), each row sums to one, and resizing
# is `M @ grid @ M.T` on each of the $D$ channels:

# %%
print("interpolation matrix, 4 -> 6:\n", interpolation_matrix(4, 6))

# %%
G = 2 * g - 1 if FAST else g + g // 2                    # CIFAR: 8 x 8 -> 12 x 12 (48 px images)
D = trained.pos_embed.shape[-1]
old = trained.pos_embed.data
new = resize_pos_embed(old, G)
assert old.shape == (1, 1 + g * g, D) and new.shape == (1, 1 + G * G, D)       # 1 1+N D
assert np.array_equal(new[:, 0], old[:, 0])                                    # class token kept
assert np.allclose(new[0, 1], old[0, 1]) and np.allclose(new[0, -1], old[0, -1])  # corners kept
print(f"pos_embed {old.shape} -> {new.shape}")

# %% [markdown]
# ### One solution
#
# The reference solution (`exercises/solutions/interpolate_pos_embed.py`) builds the same
# matrix $M$ and applies it along both grid axes; its check, then its code:

# %%
from exercises.solutions import interpolate_pos_embed as interpolate_solution

check("interpolate_pos_embed", interpolate_solution)
print(inspect.getsource(interpolate_solution.interpolation_matrix))
print(inspect.getsource(interpolate_solution.interpolate_pos_embed))

# %% [markdown]
# To *see* $D$-dimensional embeddings, project them on their first three principal components
# (computed on the $g \times g$ originals) and show those as red, green and blue. Left: the
# trained $g \times g$ grid; right: the interpolated $G \times G$ one, projected the same way.
# The colours vary smoothly across the grid — the 2-D layout again — and interpolation
# stretches the picture without changing it.

# %%
patches_old, patches_new = old[0, 1:], new[0, 1:]                               # N D, N' D
centre = patches_old.mean(axis=0)
_, _, vt = np.linalg.svd(patches_old - centre, full_matrices=False)
project = lambda p: (p - centre) @ vt[:3].T                                     # noqa: E731
low, high = project(patches_old).min(axis=0), project(patches_old).max(axis=0)
to_rgb = lambda p, side: np.clip((project(p) - low) / (high - low), 0, 1).reshape(side, side, 3)  # noqa: E731

tile_old = position_similarity(old, g)[g // 2, g // 2]
tile_new = position_similarity(new, G)[G // 2, G // 2]
fig, axes = plt.subplots(1, 4, figsize=(12, 3.3))
for ax, picture, title in ((axes[0], to_rgb(patches_old, g), f"{g}×{g} learned (3 principal comps.)"),
                           (axes[1], to_rgb(patches_new, G), f"interpolated to {G}×{G}"),
                           (axes[2], tile_old, f"similarity to patch ({g // 2}, {g // 2}), {g}×{g}"),
                           (axes[3], tile_new, f"similarity to patch ({G // 2}, {G // 2}), {G}×{G}")):
    ax.imshow(picture, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9); ax.set_xticks([]); ax.set_yticks([])
plt.tight_layout(); plt.show()

# %% [markdown]
# `ViT.resize(image_size)` does exactly this to a model. Let's feed the trained model
# upsampled test images with $G \times G$ patches, without any fine-tuning: the accuracy drops
# (the patches now show a magnified, blurrier world than in training) but stays far above
# chance — the interpolated embeddings still tell the model where each patch is. The paper
# fine-tunes for a few thousand steps at the new size to recover and then exceed the accuracy.

# %%
count = 360 if not CIFAR else 2000
test_x, test_y = data.test_images[:count], data.test_labels[:count]
_, accuracy_native, _ = evaluate(trained, test_x, test_y, data.mean, data.std)
trained.resize(G * PATCH)                                  # images are upsampled to this size
assert trained.pos_embed.shape == (1, 1 + G * G, D)
_, accuracy_resized, _ = evaluate(trained, test_x, test_y, data.mean, data.std)
print(f"{count} test images at {S} px ({g}x{g} patches): {100 * accuracy_native:.1f}%")
print(f"the same upsampled to {G * PATCH} px ({G}x{G} patches, embeddings interpolated): "
      f"{100 * accuracy_resized:.1f}%   (chance: 10%)")

# %% [markdown]
# ## Summary
#
# * Self-attention, layernorm and the MLP are permutation-equivariant; without position
#   embeddings a ViT's class token is invariant to shuffling the patches — checked above to
#   float32 rounding.
# * The class token is a learned extra token; attention lets it gather from all patches, and
#   its final state is the image's representation for the head.
# * ViT's position embeddings are a learned 1-D table `(1 1+N D)` added to the tokens. After
#   training, their similarities reveal the 2-D grid: near patches have similar embeddings.
# * For a new resolution, the $g \times g$ table is resized bilinearly to $G \times G$
#   (`resize_pos_embed`, `ViT.resize`); the class token's row stays.
#
# ## Exercises
#
# 1. Predict how much accuracy a ViT loses on CIFAR-10 with `pos_embed` fixed at zero, then
#    read chapter 11, which measures it (with three seeds, beside learned 2-D embeddings). Why
#    might the loss be smaller than you expect? (Hint: a patch's *content* already says
#    something about where it tends to be.)
# 2. Would the model *without* position embeddings still be invariant if it used `pool='gap'`,
#    the mean of the tokens, instead of the class token? If it had a convolutional patch
#    embedding with stride smaller than $P$ (overlapping patches)?
# 3. Replace the learned table with fixed 2-D sinusoidal embeddings: half of the $D$ channels
#    encode the row, half the column, with $\sin(r/10000^{2k/D'})$ and $\cos$. Draw their
#    similarity grid before any training. What does interpolation to a bigger grid do to them,
#    and what could you do instead?
# 4. `resize_pos_embed` aligns the corners. What does the alternative (pixel centres aligned,
#    as for images) do at the border of the grid? Which is more natural for positions?
# 5. The position embeddings get no weight decay (`minivit.optim.param_groups`). What would
#    decay pull them towards, and what would that do to the similarity picture?

# %% [markdown]
# ### What you can now do
#
# * Write equation 1 on arrays: give every image the class token, prepend it, add the position
#   embeddings.
# * Prove, and check numerically, that without position embeddings the class token's output
#   does not change when the patches are shuffled.
# * Read a position-similarity mosaic (the paper's Figure 7, centre) and see the 2-D layout
#   that a learned 1-D table picks up from the data.
# * Resize position embeddings bilinearly, corners aligned, to a bigger grid, as
#   $M\,E\,M^\top$ per feature, and run a trained model at a higher resolution with
#   `ViT.resize`.
#
# ### Further reading
#
# * Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929:
#   Section 3.1 (equation 1), Section 3.2 (the 2-D interpolation), Appendix D.4 (1-D, 2-D,
#   relative and no position embeddings compared) and Figure 7 (centre).
# * Jacob Devlin, Ming-Wei Chang, Kenton Lee, Kristina Toutanova, "BERT: Pre-training of Deep
#   Bidirectional Transformers for Language Understanding", NAACL 2019, arXiv:1810.04805: the
#   `[CLS]` token that the class token follows.
# * Ashish Vaswani et al., "Attention Is All You Need", NeurIPS 2017, arXiv:1706.03762,
#   Section 3.5: sinusoidal position encodings.
# * Peter Shaw, Jakob Uszkoreit, Ashish Vaswani, "Self-Attention with Relative Position
#   Representations", NAACL 2018, arXiv:1803.02155.
