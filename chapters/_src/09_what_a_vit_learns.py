# Source of chapters/09_what_a_vit_learns.ipynb; rebuild with `python chapters/_build.py 09`.

# %% [markdown]
# # Chapter 9 — What a trained ViT learns
#
# A ViT starts with almost no assumptions about images: patches are flattened into vectors,
# their positions are 65 learned vectors that know nothing of rows and columns, and every token
# may attend to every other from the first layer on. Section 4.5 of the paper ("Inspecting
# Vision Transformer") asks what training puts into those blank slots, with four pictures:
#
# 1. the **patch-embedding filters** — do they resemble a CNN's first layer?
# 2. the **position embeddings** — do they rediscover the 2-D grid?
# 3. the **mean attention distance** of every head — how far does a layer look?
# 4. **attention rollout** maps — which parts of an image reach the classifier?
#
# Each section states the paper's observation, computes the quantity with `minivit.analysis`,
# and compares a trained model with the same architecture at initialisation. The same four
# figures for any checkpoint, written to files, come from
#
# ```bash
# python -m minivit.inspect runs/RUN_DIR/best.npz --out figures
# ```

# %%
import inspect
import json
import os
import sys
import tempfile
import time
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
from minivit import analysis, from_pretrained
from minivit.checkpoint import load_arrays
from minivit.data import batches, load_dataset, resize
from minivit.model import ViT
from minivit.evaluation import evaluate
from minivit.train import TrainConfig, train

from find_data import DATA_DIR, FAST, find_cifar10  # chapters/find_data.py

plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80})
np.set_printoptions(precision=2, suppress=True, linewidth=110)
print("fast mode:", FAST)
START = time.perf_counter()

# %% [markdown]
# ## 1. A trained model
#
# The model we inspect is one of README's CIFAR-10 results, the first run of `python -m
# minivit.train --preset cpu-hour` (C-mini/4, 0.8 M parameters: about an hour on two CPU cores,
# 30 epochs at 16 × 16 pixels and 6 at 32 × 32 as the preset was then, 75.0% test accuracy).
# Its weights are in the repository,
# `results/cifar10-cpu-hour/model.npz`, so this chapter needs no training, only the CIFAR-10
# test images (see chapter 7 for where they are looked for). `MINIVIT_CHECKPOINT` names another
# checkpoint written by `minivit.train` (a `best.npz` or `last.npz`). Without CIFAR-10, and in
# the fast mode the tests use, the chapter trains a small ViT on the 8 × 8 digits instead, for
# a minute (fast mode: seconds); the figures of that model are coarser, but the same trends show.

# %%
CIFAR10, cifar10 = find_cifar10()                 # (None, None) without it or in fast mode
CHECKPOINT = os.environ.get("MINIVIT_CHECKPOINT")
if not CHECKPOINT and CIFAR10:
    CHECKPOINT = "../results/cifar10-cpu-hour/model.npz"

if CHECKPOINT:
    arrays = load_arrays(CHECKPOINT)
    trained_with = json.loads(str(arrays["config"]))
    model = from_pretrained(CHECKPOINT)           # a minivit.train checkpoint: architecture inside
    dataset = trained_with["dataset"]
    if dataset.partition(":")[0] == "cifar10":
        dataset = CIFAR10 or dataset              # the same data, wherever it is on this machine
    print(f"checkpoint {CHECKPOINT}: model {trained_with['model']}, "
          f"trained on {trained_with['dataset'].partition(':')[0]} for {int(arrays['epoch'])} epochs "
          f"({trained_with['low_res_epochs']} of them at {trained_with['low_res_size']}x"
          f"{trained_with['low_res_size']}), batch {trained_with['batch_size']}, "
          f"{trained_with['optimizer']} lr {trained_with['lr']}, augment {trained_with['augment']}")
else:
    print("=> training on the 8x8 DIGITS (P = 2, a 4 x 4 grid), not CIFAR-10: the figures "
          "below are for digits")
    dataset = "digits"
    config = TrainConfig(dataset="digits", model="custom", dim=64, depth=4, heads=4,
                         mlp_dim=128, patch_size=2, epochs=6 if FAST else 40, batch_size=64,
                         lr=2e-3, warmup_epochs=1 if FAST else 4, augment="none")
    with tempfile.TemporaryDirectory(prefix="minivit-ch09-") as run_dir:
        summary = train(config, run_dir)
        model = from_pretrained(os.path.join(run_dir, "last.npz"))

data = cifar10 if dataset == CIFAR10 else load_dataset(dataset, data_dir=DATA_DIR, download=False)
P, g = model.patch_embed.patch_size, model.patch_embed.grid
S, C = model.patch_embed.image_size, model.patch_embed.in_channels
D, L, H = model.config["dim"], len(model.blocks), model.blocks[0].attn.heads
CLS = int(model.pool == "cls")
assert data.test_images.shape[1] == C, "the model and the data do not fit"
print(f"{data.name}: {data.test_images.shape[2]}x{data.test_images.shape[3]}x{C} images; ViT at "
      f"{S}x{S} with P={P} ({g}x{g} grid), D={D}, {L} layers of {H} heads, "
      f"{model.num_parameters():,} parameters")

_, test_accuracy, predicted = evaluate(model, data.test_images, data.test_labels, data.mean, data.std)
print(f"test accuracy: {100 * test_accuracy:.1f}% on {len(data.test_labels):,} test images")

# the same architecture, untrained: what the figures look like before any learning
minivit.manual_seed(0)
untrained = ViT(**model.config)

# %% [markdown]
# ## 2. Embedding filters
#
# The patch embedding maps a flattened patch $x \in \mathbb{R}^{P^2C}$ to $xE$, with
# $E \in \mathbb{R}^{P^2C \times D}$: column $d$ of $E$ is a $P \times P \times C$ *filter*,
# and feature $d$ is its dot product with the patch — exactly a convolution kernel of the first
# layer of a CNN (chapter 5). $D$ filters are too many to look at, so the paper shows their
# principal components: treat the $D$ columns as $D$ samples, centre them, and take the SVD
#
# $$X = E^\top - \bar{E}^\top = U \Sigma V^\top, \qquad X \in \mathbb{R}^{D \times P^2C};$$
#
# the rows of $V^\top$, in order of decreasing singular value $\sigma_k$, are the directions of
# patch space the filters span most. Each is reshaped to $P \times P \times C$ and min-max
# scaled to be shown as a small image (`analysis.embedding_filters`).
#
# **The paper:** "The top principal components of the learned embedding filters ... resemble
# plausible basis functions for a low-dimensional representation of the fine structure within
# each patch" — smooth colour blobs, gradients and stripes of increasing frequency, like the
# first layer of a CNN.

# %%
def embedding(m):
    return m.patch_embed.proj.weight.numpy()                  # P*P*C D


filters = analysis.embedding_filters(embedding(model), P, C)  # k P P C in [0, 1]
assert filters.shape[1:] == (P, P, C) and filters.min() >= 0 and filters.max() <= 1
random_filters = analysis.embedding_filters(embedding(untrained), P, C)


def show_filters(ax_grid, filters, title):
    for k, ax in enumerate(ax_grid.flat):
        ax.set_axis_off()
        if k < len(filters):
            ax.imshow(filters[k].squeeze(), cmap="gray" if C == 1 else None, vmin=0, vmax=1,
                      interpolation="nearest")
    ax_grid[0, 0].set_title(title, fontsize=9, loc="left")


rows = int(np.ceil(len(filters) / 7))
fig, axes = plt.subplots(rows, 15, figsize=(11, 0.8 * rows + 0.5),
                         gridspec_kw=dict(width_ratios=[1] * 7 + [0.4] + [1] * 7), squeeze=False)
for ax in axes[:, 7]:
    ax.set_axis_off()
show_filters(axes[:, :7], filters, "trained: first principal components of E")
show_filters(axes[:, 8:], random_filters, "at initialisation")
plt.show()


# %% [markdown]
# Our components are much less tidy than the paper's. The first few show colour contrasts, but
# most look like the random filters on the right: the columns of $E$ are $D$ vectors in a space
# of only $P^2C$ dimensions (128 in 48 for the committed run's model), they start random, and
# an hour of training on 50,000 images (the paper: days on 300 million) moves them only part of
# the way. The PCA of the filters is dominated by what is left of the initialisation.
#
# A sharper question is *which patterns* $E$ responds to. The patterns the paper's filters
# resemble are the principal components of image patches themselves — the same
# `embedding_filters` applied to a matrix whose columns are patches instead of filters. Write
# $v_1, v_2, \dots$ for those components, in order of decreasing variance of the pixels, and
# measure the **gain** of the embedding along each, $\lVert v_k E \rVert$: how strongly a patch
# that looks like $v_k$ drives the $D$ features.

# %%
n = min(2000, len(data.train_labels))                                   # training images
x_patches, _ = next(batches(data.train_images[:n], data.train_labels[:n], n,
                            mean=data.mean, std=data.std))
x_patches = resize(x_patches, S)                                        # n C S S, normalised
patch_rows = einops.rearrange(x_patches, "b c (h p1) (w p2) -> (b h w) (p1 p2 c)", p1=P, p2=P)
assert patch_rows.shape == (n * g * g, P * P * C)
data_components = analysis.embedding_filters(patch_rows.T, P, C)        # the patches' own PCs
centred = patch_rows - patch_rows.mean(axis=0)
_, sv, v = np.linalg.svd(centred, full_matrices=False)                  # rows of v: v_1, v_2, ...
share = sv ** 2 / np.sum(sv ** 2)

fig = plt.figure(figsize=(11, 4.4))
top = fig.subfigures(2, 1, height_ratios=[1, 2.6])
strip = top[0].subplots(1, 14)
for k, ax in enumerate(strip):
    ax.set_axis_off()
    if k < len(data_components):
        ax.imshow(data_components[k].squeeze(), cmap="gray" if C == 1 else None, vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(f"$v_{{{k + 1}}}$: {100 * share[k]:.0f}%" if k < 4 else f"$v_{{{k + 1}}}$", fontsize=8)
top[0].suptitle("principal components of the image patches (share of the pixel variance)", fontsize=9)
ax = top[1].subplots()
for m, label in ((model, "trained"), (untrained, "at initialisation")):
    ax.plot(np.arange(1, len(v) + 1), np.linalg.norm(v @ embedding(m), axis=1), marker="o", ms=3, label=label)
ax.set(xlabel="principal component $k$ of the image patches (by decreasing variance)",
       ylabel=r"gain $\|v_k E\|$", title="How strongly the embedding responds to each pattern")
ax.grid(alpha=0.3); ax.legend(fontsize=8)
plt.show()
gain = np.linalg.norm(v @ embedding(model), axis=1)
print(f"v_1 carries {100 * share[0]:.0f}% of the pixel variance; gain on v_1: trained {gain[0]:.2f}, "
      f"at initialisation {np.linalg.norm(v[0] @ embedding(untrained)):.2f}; "
      f"largest trained gain on v_{gain.argmax() + 1} ({gain.max():.2f})")
gain0 = np.linalg.norm(v @ embedding(untrained), axis=1)
print(f"at initialisation the gains lie between {gain0.min():.2f} and {gain0.max():.2f}; "
      f"trained, between {gain.min():.2f} and {gain.max():.2f}")

# %% [markdown]
# The image patches' components are the smooth basis the paper describes: $v_1$ is the patch's
# overall brightness (three quarters of all pixel variance; its 48 entries all have one sign
# and nearly one size, and it looks green above only because the strip stretches each
# component to the full range, where its green entries are a little the largest), then gradients across the patch
# and colour contrasts, then finer checkerboards. At initialisation $E$ responds to all of them
# about equally (gains between 1.36 and 1.81, printed above). After training the picture is clear: the gain on $v_1$, the brightness, has
# been turned *down* to well under half; the gradients, edges and colour contrasts of the next
# two dozen components keep the largest gains (the largest of all on a blue–orange contrast);
# the finest patterns (the last components, little more than pixel noise) are turned down too. The embedding has learned to pass on the
# structure inside a patch and to discount what does not help to classify: a *band-pass*, low
# on the strongest component and on the weakest, high in between. (It is not a whitening, which
# would give each component a gain in inverse proportion to its spread, the weakest the most.)
# The paper's filters, trained far longer, show the same preference for the mid-range
# structure directly in their principal components.
#
# ## 3. Position embeddings
#
# Nothing tells the model that token 9 sits right below token 1 in an $8 \times 8$ grid: the
# position embeddings $p_1, \dots, p_N \in \mathbb{R}^D$ start as independent random vectors.
# The paper measures what they become with the cosine similarity
#
# $$S_{ij} = \frac{p_i \cdot p_j}{\|p_i\| \, \|p_j\|},$$
#
# drawn as one small $g \times g$ map per patch $i$ (its row of $S$ laid out on the grid), the
# maps themselves laid out on the grid (`analysis.position_similarity`).
#
# **The paper:** "the model learns to encode distance within the image in the similarity of
# position embeddings, i.e. closer patches tend to have more similar position embeddings.
# Further, the row-column structure appears; patches in the same row/column have similar
# embeddings."

# %%
def mosaic(tiles):
    """(g g g g) tiles -> one image with a one-cell (NaN) gap between tiles."""
    g = tiles.shape[0]
    out = np.full((g * (g + 1) - 1,) * 2, np.nan)
    for r in range(g):
        for c in range(g):
            out[r * (g + 1):r * (g + 1) + g, c * (g + 1):c * (g + 1) + g] = tiles[r, c]
    return out


tiles = analysis.position_similarity(model.pos_embed.numpy(), g, CLS)           # g g g g
random_tiles = analysis.position_similarity(untrained.pos_embed.numpy(), g, CLS)
assert tiles.shape == (g, g, g, g) and np.allclose(tiles[2, 3, 2, 3], 1)

fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, t, title in ((axes[0], tiles, "trained"), (axes[1], random_tiles, "at initialisation")):
    im = ax.imshow(mosaic(t), cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    centres = np.arange(g) * (g + 1) + (g - 1) / 2
    ax.set_xticks(centres, [str(i + 1) for i in range(g)]); ax.set_yticks(centres, [str(i + 1) for i in range(g)])
    ax.tick_params(length=0, labelsize=8)
    ax.set(xlabel="input patch column", ylabel="input patch row",
           title=f"position embedding similarity ({title})")
fig.colorbar(im, ax=axes, fraction=0.025, label="cosine similarity")
plt.show()

# %% [markdown]
# The left mosaic is the paper's figure in small: each tile has a bright spot at its own
# position that fades with distance. At initialisation, only the diagonal is 1 and everything
# else is near 0.
# The same in numbers: the mean similarity of two positions against their distance on the
# grid, separately for pairs in the same row or column and for the others:

# %%
distance = analysis.patch_distances(g, 1)                      # N N, in patches
row, col = np.divmod(np.arange(g * g), g)
aligned = np.equal.outer(row, row) | np.equal.outer(col, col)  # same row or same column
off = distance > 0
fig, ax = plt.subplots(figsize=(6, 3.4))
for t, label, colour in ((tiles, "trained", "C0"), (random_tiles, "at initialisation", "C1")):
    sim = t.reshape(g * g, g * g)
    for mask, marker, kind in ((aligned, "o", "same row or column"), (~aligned, "^", "other pairs")):
        d = np.unique(np.round(distance[mask & off], 6))
        ax.plot(d, [sim[mask & off & np.isclose(distance, b)].mean() for b in d], marker=marker,
                ms=4, ls="-" if kind == "other pairs" else "--", color=colour, label=f"{label}, {kind}")
    print(f"{label:17s}: correlation of similarity with distance "
          f"{np.corrcoef(sim[off], distance[off])[0, 1]:+.2f}")
sim = tiles.reshape(g * g, g * g)
for mask, kind in ((aligned, "same row or column"), (~aligned, "other pairs")):
    d = np.unique(np.round(distance[mask & off], 6))[:4]
    print(f"trained, {kind:18s}: mean similarity at distance "
          + "  ".join(f"{b:.2f}: {sim[mask & off & np.isclose(distance, b)].mean():+.2f}" for b in d))
ax.set(xlabel="distance between the two patches (in patches)", ylabel="mean cosine similarity",
       title="Closer positions, more similar embeddings")
ax.grid(alpha=0.3); ax.legend(fontsize=7)
plt.tight_layout(); plt.show()

# %% [markdown]
# Similarity falls with distance on the grid, and pairs in the same row or column are only a
# little more similar than other pairs at about the same distance (+0.31 three patches apart in
# a row or column, against +0.21 and +0.19 for other pairs 2.83 and 3.16 patches apart): a faint
# row-column structure on top of plain nearness. The 2-D topology of the image was learned from
# the data alone: no convolution, no coordinates. That is also why the paper found that
# hand-designed 2-D position embeddings bring little over learned 1-D ones (its Appendix D.4;
# chapter 11 measures it at CIFAR scale).
#
# ## 4. Mean attention distance
#
# How far does each head look? For head $h$ of a layer, with attention weights
# $A_{h,ij}$ from query patch $i$ to key patch $j$ (class token dropped, rows renormalised) and
# $d_{ij} = P\,\lVert \mathrm{grid}_i - \mathrm{grid}_j \rVert$ the distance of the two patches
# in pixels, the **mean attention distance** is
#
# $$\bar d_h = \frac{1}{N} \sum_i \sum_j A_{h,ij}\, d_{ij},$$
#
# averaged over images (the paper: 128). It is the analogue of a CNN's receptive field size: a
# head that attends only to its own patch has $\bar d_h = 0$; one that attends uniformly to all
# patches has the mean distance of all pairs.
#
# **The paper:** "Some heads attend to most of the image already in the lowest layers, showing
# that the ability to integrate information globally is indeed used by the model. Other
# attention heads have consistently small attention distances in the low layers ... the
# attention distance increases with network depth."

# %%
n_images = 128 if not FAST else 32
x, _ = next(batches(data.test_images[:n_images], data.test_labels[:n_images], n_images,
                    mean=data.mean, std=data.std))
x = resize(x, S)                                                         # B C S S, normalised
attentions = analysis.attention_weights(model, x, batch_size=64)        # L x (B H T T)
assert len(attentions) == L and attentions[0].shape == (n_images, H, CLS + g * g, CLS + g * g)
distances = analysis.mean_attention_distance(attentions, g, P, CLS)     # L H, pixels
random_distances = analysis.mean_attention_distance(
    analysis.attention_weights(untrained, x, batch_size=64), g, P, CLS)
uniform = analysis.patch_distances(g, P).mean()
print("mean attention distance (pixels), a row per layer, a column per head:\n", distances)
print(f"uniform attention: {uniform:.1f} px; untrained heads: {random_distances.min():.1f} to "
      f"{random_distances.max():.1f} px; trained heads above uniform: "
      + ", ".join(f"layer {l + 1} head {h + 1}" for l, h in zip(*np.nonzero(distances > uniform))))

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, dist, title in ((axes[0], distances, "trained"), (axes[1], random_distances, "at initialisation")):
    for h in range(H):
        ax.scatter(np.arange(1, L + 1), dist[:, h], s=22, label=f"head {h + 1}", zorder=3)
    ax.axhline(uniform, color="gray", ls=":", label="uniform attention")
    ax.set(xlabel="network depth (layer)", title=f"mean attention distance ({title})",
           xticks=np.arange(1, L + 1), ylim=(0, 1.15 * max(distances.max(), uniform)))
    ax.grid(alpha=0.3)
axes[0].set_ylabel("mean attention distance (pixels)")
axes[0].legend(fontsize=7, ncol=2)
plt.tight_layout(); plt.show()

# %% [markdown]
# An untrained model attends almost uniformly, so every head sits near the dotted line (15.7
# to 17.0 pixels against 16.5 for uniform attention, printed above). After training the heads
# move apart, but less than in the paper: for the committed run's model the most local heads
# are in layer 2, 2 to 5 pixels below uniform; the first layer is close to uniform, and the
# last two layers are near it, three heads above it (layer 5's first two and layer 6's second,
# up to 18.3 pixels: attending preferentially to *distant* patches). Two reasons. A $32 \times 32$ image is only 8 patches across, so "global" is
# 16 pixels and "local" cannot be much less than one patch; and this model spent 30 of its 36
# epochs at $16 \times 16$ pixels, a $4 \times 4$ grid on which every patch is a neighbour of
# every other — its attention patterns were learned where locality hardly exists, then
# stretched onto the larger grid. The paper's ViT-L/16 at 224 px has a $14 \times 14$ grid and
# shows the full range: heads at a few pixels and heads at over 100 in the very first layer.
# What both share is the point of the figure: nothing forces a ViT's first layer to be local;
# it learns how far to look, head by head.
#
# ## 5. Attention rollout
#
# Which patches does the classifier's token draw on? One layer's attention is not the answer:
# the residual connections carry every token forward too, and the layers compose. **Attention
# rollout** (Abnar & Zuidema, 2020) accounts for both: average the heads of layer $\ell$, add
# the identity for the residual path, renormalise the rows,
#
# $$\hat A_\ell = \operatorname{rownorm}\Big(\tfrac{1}{H}\textstyle\sum_h A_{\ell,h} + I\Big),
# \qquad R = \hat A_L \cdots \hat A_2 \hat A_1 ,$$
#
# and read row 0 of $R$ (the class token) at the patch columns, a $g \times g$ map, upsampled
# onto the image (`analysis.attention_rollout`, `analysis.upsample`).
#
# **The paper** (Figure 6): "the model attends to image regions that are semantically relevant
# for classification".
#
# ### Your turn: attention rollout
#
# Before the code below: write `attention_rollout(attentions)`, from the $L$ layers' attention
# weights (a list of `B H T T` arrays, the first layer's first, token 0 the class token) to the
# class token's map `B g g`: the equation above, then row 0 of $R$ at the patch columns,
# reshaped to the grid, each image's map min-max scaled to $[0, 1]$ (a constant map becomes
# zeros). The check runs the cases of `python -m pytest --exercises -k attention_rollout`
# against `analysis.attention_rollout` (three layers, one layer, one image with one head, one
# patch).

# %%
def attention_rollout(attentions):
    """attentions: L arrays (B H T T), T = 1 + g*g -> maps (B g g) in [0, 1]:
    R = rownorm(mean_h A_L + I) ... rownorm(mean_h A_1 + I), row 0 at the patches, min-max scaled."""
    raise NotImplementedError("exercise not done yet: write attention_rollout")


# %%
check("attention_rollout", attention_rollout)

# %% [markdown]
# ### One solution
#
# The reference solution (`exercises/solutions/attention_rollout.py`), checked, then its code;
# below, minivit's `analysis.attention_rollout` draws the maps of the trained model:

# %%
from exercises.solutions import attention_rollout as rollout_solution

check("attention_rollout", rollout_solution)
print(inspect.getsource(rollout_solution.attention_rollout))

# %%
maps = analysis.attention_rollout(attentions, CLS)                       # B g g, in [0, 1]
R = analysis.rollout(attentions)
assert maps.shape == (n_images, g, g) and np.allclose(R.sum(axis=-1), 1)
show = 8
overlay = analysis.upsample(maps[:show], data.test_images.shape[-1])     # show H W

fig, axes = plt.subplots(2, show, figsize=(1.4 * show, 3.3))
for k in range(show):
    picture = data.test_images[k].transpose(1, 2, 0).squeeze() / 255
    for ax in axes[:, k]:
        ax.imshow(picture, cmap="gray" if C == 1 else None, vmin=0, vmax=1)
        ax.set_xticks([]); ax.set_yticks([])
    axes[1, k].imshow(overlay[k], cmap="jet", alpha=0.5, vmin=0, vmax=1)
    truth, guess = data.classes[data.test_labels[k]], data.classes[predicted[k]]
    axes[0, k].set_title(f"{truth}" + ("" if guess == truth else f"\n(said {guess})"), fontsize=8)
axes[1, 0].set_ylabel("rollout", fontsize=9)
plt.tight_layout(); plt.show()

# %% [markdown]
# The maps are coarse — an $8 \times 8$ grid upsampled — and a small model trained for an hour
# is no JFT-trained ViT-L/16, but on most images the weight falls on the object rather than on
# the background: the class token gathers from the patches that carry the class.
#
# ## 6. The same from the command line
#
# `minivit.inspect` draws these four figures for any checkpoint written by `minivit.train`
# (with the mean attention distance over `--images` test images) and writes the numbers behind
# them to `summary.json`:
#
# ```bash
# python -m minivit.inspect runs/cifar10-C-mini-4-.../best.npz --out figures --images 128 --show 8
# ```
#
# and `minivit.analysis` has the functions used above, plus `plot_filters`,
# `plot_position_similarity`, `plot_attention_distance` and `plot_rollout`, which draw them to
# PNG files.

# %%
print(f"chapter run time: {time.perf_counter() - START:.0f} s")

# %% [markdown]
# ## Summary
#
# | figure | computed as | the paper | here |
# |---|---|---|---|
# | embedding filters | top principal components of the columns of $E$ | CNN-like basis functions | still close to random; but $E$ turns down patch brightness and keeps gradients and colour contrasts |
# | position embeddings | cosine similarity of $p_i$ and $p_j$ on the grid | 2-D topology, row-column structure | the same: similarity falls with grid distance (correlation -0.69); rows and columns stand out only faintly |
# | mean attention distance | $\frac1N\sum_{ij} A_{h,ij} d_{ij}$ per head | local and global heads in layer 1, distance grows with depth | a smaller spread: the most local heads in layer 2, deep layers global |
# | attention rollout | $R = \prod_\ell \operatorname{rownorm}(\bar A_\ell + I)$, row 0 | attends to the object | mostly on the object |
#
# ## Exercises
#
# 1. Recompute the mean attention distance with `renormalize=False` (the class column dropped
#    but the rows not rescaled). Which heads change most, and why? (Hint: look at the attention
#    they pay to the class token.)
# 2. Train the same model with `--pool gap` (no class token). Do the position embeddings and
#    the attention distances look different? Draw the rollout with `cls_tokens=0`.
# 3. Each row of $A$ sums to 1, so the rollout's $\operatorname{rownorm}(A + I)$ is
#    $\tfrac12 A + \tfrac12 I$: the residual weighs as much as attention. Try
#    $0.9 A + 0.1 I$, and $A$ alone (no identity): how do the maps change, and why does $A$
#    alone blur them?
# 4. Plot the similarity of the position embeddings of a model trained with
#    `--low-res-epochs` (16 × 16, then 32 × 32): can you see the interpolation in them?
# 5. For a checkpoint you fine-tuned in chapter 8, draw the four figures before and after
#    fine-tuning. Which of them change?

# %% [markdown]
# ### What you can now do
#
# * Compute the four analyses of the paper's Section 4.5 with `minivit.analysis`: the principal
#   components of the embedding filters, position-embedding similarity, mean attention
#   distance per head and depth, and attention rollout.
# * Measure how strongly the patch embedding responds to each principal component of the
#   image patches.
# * Write attention rollout from the layers' attention maps.
# * Compare a trained model with the same architecture at initialisation, and say where a
#   small CIFAR-10 model departs from the paper's figures, and why.
# * Draw the same figures for any checkpoint with `python -m minivit.inspect`.
#
# ### Further reading
#
# * Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929,
#   Section 4.5, Figures 6 and 7.
# * Samira Abnar, Willem Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020,
#   arXiv:2005.00928: attention rollout.
# * Maithra Raghu, Thomas Unterthiner, Simon Kornblith, Chiyuan Zhang, Alexey Dosovitskiy, "Do
#   Vision Transformers See Like Convolutional Neural Networks?", NeurIPS 2021,
#   arXiv:2108.08810: local and global heads, and how the representations compare with a
#   ResNet's.
