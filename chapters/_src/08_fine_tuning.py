# Source of chapters/08_fine_tuning.ipynb; rebuild with `python chapters/_build.py 08`.

# %% [markdown]
# # Chapter 8 — Pre-training and fine-tuning
#
# The Vision Transformer paper's headline result is not an architecture but a *recipe*:
# pre-train a ViT on a very large data set (ImageNet-21k, JFT-300M), then **fine-tune** it on
# the task you care about, usually at a **higher resolution** than it was pre-trained at. A ViT
# trained from scratch on a small data set is mediocre (chapter 10 measures how much); the same
# ViT fine-tuned from pre-trained weights is excellent.
#
# This chapter runs the whole recipe in miniature on a CPU:
#
# 1. **pre-train** a small ViT on half of CIFAR-10's classes (airplane, automobile, bird, cat,
#    deer) at **16 × 16** pixels, where it is cheap (17 tokens instead of 65);
# 2. **fine-tune** it on the *other* five classes (dog, frog, horse, ship, truck) at **32 × 32**,
#    from only **100 labelled images per class**: a new zero-initialised head, the position
#    embeddings interpolated from a 4 × 4 to an 8 × 8 patch grid, SGD with momentum;
# 3. compare with the same ViT trained **from scratch** on those 500 images;
# 4. look at the position embeddings before and after the interpolation; and
# 5. (not run here) fine-tune the paper's real ViT-Ti/16 weights, which you download.
#
# The pre-training classes share no label with the fine-tuning ones: whatever helps must be
# generic visual knowledge — edges, colours, textures, where things are in an image.

# %%
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

import matplotlib.pyplot as plt
import numpy as np

from minivit import from_pretrained, ops, save_pretrained
from minivit.data import Dataset, batches, load_dataset, resize
from minivit.interpolate import interpolation_matrix
from minivit.linear_eval import sample_shots
from minivit.model import ViT, resize_pos_embed
from minivit.nn import Linear
from minivit.optim import SGD, AdamW, clip_grad_norm, param_groups, warmup_cosine

from find_data import FAST, find_cifar10  # chapters/find_data.py

plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80})
np.set_printoptions(precision=3, suppress=True, linewidth=110)
print("fast mode:", FAST)
START = time.perf_counter()

# %% [markdown]
# ## 1. The data
#
# CIFAR-10 comes from `$MINIVIT_CIFAR10_ARCHIVE` (a `cifar-10-python.tar.gz` anywhere) if that
# is set, else from `../data/` (where `python -m minivit.train` downloads it); it is unpacked and
# cached in `$MINIVIT_DATA_DIR` (default `../data/`). Without it the chapter falls back to
# scikit-learn's 8 × 8 digits, upsampled to 32 × 32 so that every shape below stays the same
# (the numbers are then of course different from the ones discussed in the text).

# %%
def load_cifar10_or_digits():
    """CIFAR-10 if we can find it, else the digits (upsampled to 32 x 32), saying so."""
    _, cifar10 = find_cifar10()
    if cifar10 is not None:
        return cifar10
    print("=> FALLING BACK TO THE 8x8 DIGITS, upsampled to 32x32: the results below are for "
          "digits, not CIFAR-10")
    digits = load_dataset("digits")
    up = lambda images: np.clip(np.rint(resize(images.astype(np.float32), 32)), 0, 255).astype(np.uint8)  # noqa: E731
    return Dataset("digits (upsampled to 32x32)", up(digits.train_images), digits.train_labels,
                   up(digits.test_images), digits.test_labels, digits.classes)


data = load_cifar10_or_digits()
CIFAR = data.name == "cifar10"
C = data.train_images.shape[1]
print(f"{data.name}: train {data.train_images.shape} {data.train_images.dtype}, "
      f"test {data.test_images.shape}; classes {data.classes}")
assert data.train_images.shape[2:] == (32, 32)

# %% [markdown]
# Two disjoint tasks. **Pre-training** (task A): every training image of classes 0–4.
# **Fine-tuning** (task B): classes 5–9, relabelled 0–4, with only `SHOTS` = 100 labelled
# images per class drawn at random (`sample_shots`, from `minivit.linear_eval`); the test set
# of task B is every test image of classes 5–9.

# %%
SHOTS = 100 if not FAST else 20
rng = np.random.default_rng(0)

a_train = data.train_labels < 5
a_test = data.test_labels < 5
A = dict(train=(data.train_images[a_train], data.train_labels[a_train]),
         test=(data.test_images[a_test], data.test_labels[a_test]))

b_pool = np.flatnonzero(data.train_labels >= 5)
b_pick = b_pool[sample_shots(data.train_labels[b_pool], SHOTS, rng)]
b_test = data.test_labels >= 5
B = dict(train=(data.train_images[b_pick], data.train_labels[b_pick] - 5),
         test=(data.test_images[b_test], data.test_labels[b_test] - 5))
if FAST:  # fewer images, to keep CI quick
    A["train"] = tuple(a[:2000] for a in A["train"])
    A["test"], B["test"] = (tuple(a[:300] for a in A["test"]), tuple(a[:300] for a in B["test"]))
MEAN, STD = data.mean, data.std  # per-channel statistics of the whole training set

for task, split in (("A", A), ("B", B)):
    for part, (images, labels) in split.items():
        print(f"task {task} {part:5s}: {images.shape} images, labels {np.bincount(labels)}")
assert len(B["train"][0]) == 5 * SHOTS and B["train"][0].shape[1:] == (C, 32, 32)

fig, axes = plt.subplots(2, 10, figsize=(10, 2.3))
for row, (task, split, names) in enumerate((("A", A, data.classes[:5]), ("B", B, data.classes[5:]))):
    images, labels = split["train"]
    for col in range(10):
        k = np.flatnonzero(labels == col // 2)[col % 2]
        ax = axes[row, col]
        ax.imshow(images[k].transpose(1, 2, 0).squeeze(), cmap="gray" if C == 1 else None)
        ax.set_xticks([]); ax.set_yticks([])
        if col % 2 == 0:
            ax.set_title(f"{task}: {names[col // 2]}", fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 2. A training loop
#
# `python -m minivit.train` (and `minivit.train.train`) train on a whole named data set; here we
# need subsets of classes and of labels, so we write the loop ourselves from minivit's pieces
# — the same ones `train` uses: `batches` (shuffle, augment, normalise), `resize` (bilinear,
# for the low-resolution phase), `cross_entropy`, an optimizer, `clip_grad_norm` and the
# warmup-then-cosine learning rate
#
# $$\eta_t = \begin{cases} \eta\,\frac{t+1}{T_w} & t < T_w \\
#   \tfrac{\eta}{2}\left(1 + \cos \pi\,\frac{t - T_w}{T - T_w}\right) & t \ge T_w .\end{cases}$$

# %%
def accuracy(model, images, labels, stats=(MEAN, STD), batch_size=500):
    """Test accuracy of `model` at its own resolution (images resized to it); `stats`: the
    per-channel mean and std to normalise with."""
    model.eval()
    correct = 0
    with minivit.no_grad():
        for x, y in batches(images, labels, batch_size, mean=stats[0], std=stats[1]):
            logits = model(resize(x, model.patch_embed.image_size))
            correct += int((logits.data.argmax(axis=1) == y).sum())
    model.train()
    return correct / len(labels)


def fit(model, optimizer, train_set, steps, batch_size, peak_lr, warmup, label_smoothing=0.0,
        eval_set=None, eval_every=None, stats=(MEAN, STD), seed=0):
    """`steps` optimizer steps on train_set. Returns the history, a list of (step, mean train
    loss since the last evaluation, accuracy on eval_set), and every step's accuracy on its
    (augmented) training batch."""
    images, labels = train_set
    rng = np.random.default_rng(seed)
    history, losses, batch_accuracy, step = [], [], [], 0
    model.train()
    while step < steps:
        for x, y in batches(images, labels, batch_size, mean=stats[0], std=stats[1], shuffle=True,
                            rng=rng, augment="basic", drop_last=True):
            optimizer.lr = warmup_cosine(step, steps, warmup, peak_lr)
            logits = model(resize(x, model.patch_embed.image_size))      # B K
            loss = ops.cross_entropy(logits, y, label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
            batch_accuracy.append(float((logits.data.argmax(axis=1) == y).mean()))
            step += 1
            if eval_set is not None and (step % eval_every == 0 or step == steps):
                history.append((step, float(np.mean(losses[-eval_every:])),
                                accuracy(model, *eval_set, stats=stats)))
            if step == steps:
                break
    return history, batch_accuracy

# %% [markdown]
# ## 3. Pre-training at 16 × 16
#
# The model: patch size $P = 4$, width $D = 96$, 4 blocks of 3 heads, MLP 192 — about 0.3 M
# parameters. At 16 × 16 pixels it sees a $4 \times 4$ grid of patches, $N = 16$ tokens plus
# the class token. Pre-training at low resolution and fine-tuning at a higher one is what the
# paper does too (224 → 384): attention costs grow as $N^2$, so the long phase runs on short
# sequences. Recipe: AdamW (lr $10^{-3}$, weight decay 0.05), batch 128, label smoothing 0.1,
# random crops and flips.

# %%
ARCH = dict(patch_size=4, in_channels=C, dim=96, depth=4, heads=3, mlp_dim=192)
PRE_STEPS = 1200 if not FAST else 20
minivit.manual_seed(0)
pre = ViT(image_size=16, num_classes=5, **ARCH)
print(f"pre-training model: {pre.num_parameters():,} parameters, pos_embed {pre.pos_embed.shape}")
assert pre.pos_embed.shape == (1, 1 + 4 * 4, 96)

start = time.perf_counter()
optimizer = AdamW(param_groups(pre, 0.05), lr=1e-3)
pre_history, _ = fit(pre, optimizer, A["train"], PRE_STEPS, 128, 1e-3, PRE_STEPS // 10,
                     label_smoothing=0.1, eval_set=A["test"], eval_every=max(PRE_STEPS // 4, 1))
pre_seconds = time.perf_counter() - start
for step, loss, acc in pre_history:
    print(f"step {step:4d}: train loss {loss:.3f}, task-A test accuracy {100 * acc:.1f}%")
print(f"pre-training: {PRE_STEPS} steps of 128 images "
      f"({PRE_STEPS * 128 / len(A['train'][1]):.1f} passes over task A) in {pre_seconds:.0f} s")

# %% [markdown]
# (Chance is 20%.) A few minutes on a CPU give a weak model by any standard — but it has seen
# 25,000 images, fifty times more than task B offers.
#
# ## 4. From a checkpoint to a fine-tuning model
#
# We save the pre-trained weights in the layout of the paper's checkpoints (`save_pretrained`)
# and load them back the way you would load the official ones, asking for 5 classes and
# 32 × 32 images:
#
# ```python
# model = from_pretrained(path, num_classes=5, image_size=32)
# ```
#
# Two things happen, both as in the paper's fine-tuning code:
#
# * **A new head.** The classifier of task A is thrown away and replaced by a zero-initialised
#   $D \times K$ layer: at step 0 every class has the same logit, and since the gradient
#   reaches the body *through* the head's weights, only the head learns at first — fine-tuning
#   begins as a linear classifier on the pre-trained features. (`from_pretrained` makes the new head when the
#   number of classes changes; tasks A and B both have five, so we replace it ourselves.)
# * **Position embeddings are interpolated.** The patch size stays $P = 4$, so 32 × 32 images
#   have an $8 \times 8$ grid: 64 patch tokens where the checkpoint has embeddings for 16. The
#   16 embeddings are a function sampled on a $4 \times 4$ grid; we resample it on an
#   $8 \times 8$ grid spanning the same square, by bilinear interpolation with the corners
#   aligned: new row $I \in \{0, \dots, G-1\}$ sits at old row
#   $i = I\,\frac{g-1}{G-1}$ and mixes rows $\lfloor i \rfloor$ and $\lfloor i \rfloor + 1$
#   with weights $1 - (i - \lfloor i \rfloor)$ and $i - \lfloor i \rfloor$. As a matrix
#   $M \in \mathbb{R}^{G \times g}$, the new grid is $E'_{:,:,d} = M\, E_{:,:,d}\, M^\top$ for
#   every feature $d$. The class token's embedding is not on the grid and is kept unchanged.

# %%
M = interpolation_matrix(4, 8)                               # G g = 8 4
print("M (8 x 4): row I mixes the old rows around I * 3/7\n", M)
assert np.allclose(M.sum(axis=1), 1)

old = pre.pos_embed.numpy()                                  # 1 17 D
grid = old[0, 1:].reshape(4, 4, -1)                          # g g D
by_hand = np.einsum("Ii,ijd,Jj->IJd", M, grid, M).reshape(1, 64, -1)
new = resize_pos_embed(old, 8)                               # 1 65 D
assert new.shape == (1, 1 + 8 * 8, 96)
assert np.allclose(new[:, 1:], by_hand, atol=1e-6) and np.array_equal(new[:, :1], old[:, :1])
assert np.allclose(new[0, 1:].reshape(8, 8, -1)[::7, ::7], grid[::3, ::3])   # the corners are kept

with tempfile.TemporaryDirectory(prefix="minivit-ch08-") as folder:
    path = Path(folder) / "pretrained.npz"
    save_pretrained(pre, path)                               # the official .npz layout
    model = from_pretrained(path, num_classes=5, image_size=32)
# from_pretrained gives a new zero head when the number of classes changes; task A had 5 classes
# as well, so we replace the task-A head ourselves (fine-tuning always starts from a new head)
model.head = Linear(model.config["dim"], 5, init="zeros")
print(f"loaded: image size {model.patch_embed.image_size}, pos_embed {model.pos_embed.shape}, "
      f"head {model.head.weight.shape}, head all zero: {not model.head.weight.numpy().any()}")
assert np.allclose(model.pos_embed.numpy(), new, atol=1e-6)
same = [name for name, p in model.named_parameters() if not name.startswith(("head", "pos_embed"))]
assert all(np.array_equal(p.numpy(), dict(pre.named_parameters())[n].numpy())
           for n, p in model.named_parameters() if n in same)
print(f"{len(same)} parameter tensors copied unchanged; pos_embed interpolated; head new")
start_weights = {name: array.copy() for name, array in model.state_dict().items()}  # for §5's seeds

# %% [markdown]
# What does the interpolation look like? Two pictures. **Similarity grids** (as in chapter 9):
# for each patch position, a small map of the cosine similarity of its embedding with every
# position's. **Principal components as colours**: project the 16 pre-trained embeddings onto
# their first three principal components and show them as an RGB image of the grid; the
# interpolated embeddings are projected onto the *same* components. Projection is linear, so
# projecting the interpolated embeddings equals interpolating the projected ones: the 8 × 8
# picture is the 4 × 4 picture resampled.

# %%
def similarity_mosaic(pos_embed, g):
    """(1, 1+g*g, D) -> a (g(g+1)-1)^2 mosaic: tile (r, c) = cosine similarity of patch (r, c)'s
    embedding with every position, on the g x g grid; NaN gaps between tiles."""
    p = pos_embed[0, 1:]
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    tiles = (p @ p.T).reshape(g, g, g, g)
    mosaic = np.full((g * (g + 1) - 1,) * 2, np.nan)
    for r in range(g):
        for c in range(g):
            mosaic[r * (g + 1):r * (g + 1) + g, c * (g + 1):c * (g + 1) + g] = tiles[r, c]
    return mosaic


def pca_image(pos_embed, g, basis):
    """Patch position embeddings projected on (mean, 3 components) -> a g x g x 3 image."""
    mean, components = basis
    return ((pos_embed[0, 1:] - mean) @ components.T).reshape(g, g, 3)


patches = old[0, 1:]
mean = patches.mean(axis=0)
_, _, vt = np.linalg.svd(patches - mean, full_matrices=False)
basis = (mean, vt[:3])
before, after = pca_image(old, 4, basis), pca_image(new, 8, basis)
assert np.allclose(after, np.einsum("Ii,ijc,Jj->IJc", M, before, M), atol=1e-5)  # linear: commutes
low, high = before.min(axis=(0, 1)), before.max(axis=(0, 1))
to_rgb = lambda image: np.clip((image - low) / (high - low), 0, 1)  # noqa: E731  same scale for both


def show_position_embeddings(panels, title):
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.3))
    for ax, (caption, image, kwargs) in zip(axes, panels):
        im = ax.imshow(image, interpolation="nearest", **kwargs)
        ax.set_title(caption, fontsize=9)
        ax.set_xticks([]); ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    plt.tight_layout(); plt.show()


sim = dict(cmap="viridis", vmin=-1, vmax=1)
show_position_embeddings([
    ("pre-trained, 4 × 4: similarity", similarity_mosaic(old, 4), sim),
    ("interpolated, 8 × 8: similarity", similarity_mosaic(new, 8), sim),
    ("pre-trained: 3 PCs as RGB", to_rgb(before), {}),
    ("interpolated: same PCs as RGB", to_rgb(after), {}),
], "Position embeddings before and after interpolation")

# %% [markdown]
# Each tile of the left picture is bright where positions have embeddings similar to its own
# patch's: after pre-training, neighbouring positions already have similar embeddings (the
# model has learned part of the image's 2-D layout; chapter 9 looks at this in a better-trained
# model). The interpolated grid keeps that layout at twice the resolution; its new rows and
# columns are averages, so they are smoother than learned ones would be — fine-tuning will
# adjust them.
#
# ## 5. Fine-tuning against training from scratch
#
# **Fine-tuning** follows the paper: SGD with momentum 0.9 and learning rate 0.03, no weight
# decay, gradients clipped at global norm 1, a short warmup then cosine decay, no label
# smoothing. **From scratch**: the
# same ViT at 32 × 32, freshly initialised, with the recipe that suits training from scratch
# (AdamW, lr $10^{-3}$, weight decay 0.05, label smoothing 0.1). Two recipes would confound
# the optimiser with the pre-training, so a third run trains from scratch with the fine-tuning's
# own recipe (SGD): the gain is measured against the better of the two. All get the same 500
# images, the same augmentation, and the same number of steps of the same batch size; we
# measure the test accuracy of task B along the way (on 1,000 test images; all 5,000 at the
# end).

# %%
STEPS, BATCH = (300, 50) if not FAST else (20, 25)
EVERY = max(STEPS // 12, 1)
curve_set = tuple(a[:1000] for a in B["test"])
runs = {}

start = time.perf_counter()
optimizer = SGD(model.parameters(), lr=0.03, momentum=0.9)              # no weight decay
runs["fine-tuned"] = fit(model, optimizer, B["train"], STEPS, BATCH, 0.03, STEPS // 10,
                         eval_set=curve_set, eval_every=EVERY)
print(f"fine-tuning: {time.perf_counter() - start:.0f} s")

start = time.perf_counter()
minivit.manual_seed(1)
scratch = ViT(image_size=32, num_classes=5, **ARCH)
optimizer = AdamW(param_groups(scratch, 0.05), lr=1e-3)
runs["from scratch"] = fit(scratch, optimizer, B["train"], STEPS, BATCH, 1e-3, STEPS // 10,
                           label_smoothing=0.1, eval_set=curve_set, eval_every=EVERY)
print(f"from scratch: {time.perf_counter() - start:.0f} s")

# the optimiser alone: from scratch again, with the fine-tuning's own recipe (SGD, no smoothing)
minivit.manual_seed(1)
scratch_sgd = ViT(image_size=32, num_classes=5, **ARCH)
optimizer = SGD(scratch_sgd.parameters(), lr=0.03, momentum=0.9)
runs["from scratch, SGD"] = fit(scratch_sgd, optimizer, B["train"], STEPS, BATCH, 0.03, STEPS // 10,
                                eval_set=curve_set, eval_every=EVERY)

final = {name: accuracy(m, *B["test"]) for name, m in (
    ("fine-tuned", model), ("from scratch", scratch), ("from scratch, SGD", scratch_sgd))}
for name, acc in final.items():
    print(f"{name:17s}: task-B test accuracy {100 * acc:.1f}% on {len(B['test'][1])} test images")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
for name, (history, batch_accuracy) in runs.items():
    steps, _, accs = zip(*history)
    line, = right.plot(steps, 100 * np.array(accs), marker="o", ms=3, label=name)
    smooth = np.convolve(batch_accuracy, np.ones(10) / 10, mode="valid")
    left.plot(np.arange(len(smooth)) + 10, 100 * smooth, color=line.get_color(), label=name)
for ax in (left, right):
    ax.axhline(20, color="gray", ls=":", label="chance")
left.set(xlabel="step", ylabel="accuracy (%, running mean of 10)",
         title="accuracy on the training batches (augmented)")
right.set(xlabel="step", ylabel="accuracy (%)",
          title=f"task B test accuracy ({SHOTS} labels per class)")
for ax in (left, right):
    ax.grid(alpha=0.3); ax.legend(fontsize=8)
plt.tight_layout(); plt.show()
best_scratch = max(final["from scratch"], final["from scratch, SGD"])
gain = 100 * (final["fine-tuned"] - best_scratch)
print(f"what pre-training bought, against the better from-scratch run: {gain:+.1f} percentage points; "
      f"the same SGD recipe from scratch: {100 * (final['fine-tuned'] - final['from scratch, SGD']):+.1f}")

# %% [markdown]
# One seed is one draw: a different initialisation of the from-scratch models and a different
# order of batches (and crops and flips) could move each number by a point or two. So the same
# three arms again, with two more seeds (the scratch models initialised from seeds 2 and 3, the
# batches drawn from seeds 1 and 2; the fine-tuned arm starts from the same pre-trained weights
# each time, its new head zero), without the curves:

# %%
def three_arms(init_seed, data_seed):
    """Final task-B test accuracy of the three arms of §5 for one pair of seeds."""
    tuned = ViT(image_size=32, num_classes=5, **ARCH)
    tuned.load_state_dict(start_weights)
    minivit.manual_seed(init_seed)
    adamw_model = ViT(image_size=32, num_classes=5, **ARCH)
    minivit.manual_seed(init_seed)
    sgd_model = ViT(image_size=32, num_classes=5, **ARCH)
    fit(tuned, SGD(tuned.parameters(), lr=0.03, momentum=0.9), B["train"], STEPS, BATCH, 0.03,
        STEPS // 10, seed=data_seed)
    fit(adamw_model, AdamW(param_groups(adamw_model, 0.05), lr=1e-3), B["train"], STEPS, BATCH,
        1e-3, STEPS // 10, label_smoothing=0.1, seed=data_seed)
    fit(sgd_model, SGD(sgd_model.parameters(), lr=0.03, momentum=0.9), B["train"], STEPS, BATCH,
        0.03, STEPS // 10, seed=data_seed)
    return [accuracy(m, *B["test"]) for m in (tuned, adamw_model, sgd_model)]


start = time.perf_counter()
seeds = {(1, 0): list(final.values())}                  # the run above
for init_seed, data_seed in ((2, 1), (3, 2))[:1 if FAST else 2]:  # fast mode: one more
    seeds[init_seed, data_seed] = three_arms(init_seed, data_seed)
table = 100 * np.array(list(seeds.values()))            # seeds x arms, in %
print(f"{'seeds (init, data)':20s}" + "".join(f"{name:>20s}" for name in final))
for key, row in zip(seeds, table):
    print(f"{str(key):20s}" + "".join(f"{a:19.1f}%" for a in row))
mean, spread = table.mean(axis=0), table.max(axis=0) - table.min(axis=0)
print(f"{'mean (max - min)':20s}" + "".join(f"{m:12.1f}% ({s:4.1f})" for m, s in zip(mean, spread)))
gains = table[:, 0] - table[:, 1:].max(axis=1)          # fine-tuned minus the better scratch run
print(f"gain of fine-tuning over the better from-scratch run, per seed: "
      f"{', '.join(f'{g:+.1f}' for g in gains)} points ({time.perf_counter() - start:.0f} s)")
if not FAST:
    assert gains.min() > spread.max(), "the gain is not larger than the seed-to-seed spread"

# %% [markdown]
# What pre-training bought, read off the plot and the table:
#
# * **A head start.** At the first evaluation the fine-tuned model is already well ahead: its
#   features separate dogs from trucks before the new head has learned much. It passes the
#   from-scratch models' final test accuracy by step 50 of the 300.
# * **A higher ceiling.** It ends several points above both models trained from scratch on
#   the same 500 images, with the same number of steps, in each of the three seeds, and by
#   more than any arm's result moves from seed to seed.
# * **Faster fitting, and a gap all the same.** The fine-tuned model also fits its training
#   batches faster (left), and both do markedly better there than on the test set: 500 images
#   are too few for either to generalise well. Pre-training does not remove the gap; it moves
#   the model to a better starting point, features learned from 25,000 other images, and with
#   it to a better one of the many functions that fit 500 images.
#
# The gain is modest because our pre-training is: 25,000 images at 16 × 16, a few minutes of
# CPU, a model that reaches only about 64 % on its own five classes. The paper pre-trains on
# 1.3 M, 14 M or 300 M images, and there the same comparison is a difference of tens of points.
#
# **Did the position embeddings move?** Below, the interpolated embeddings (projected on the
# pre-trained components, as before) next to the fine-tuned ones.

# %%
tuned = model.pos_embed.numpy()
moved = np.linalg.norm(tuned - new) / np.linalg.norm(new)
print(f"relative change of the position embeddings during fine-tuning: {moved:.3f}")
show_position_embeddings([
    ("interpolated: similarity", similarity_mosaic(new, 8), sim),
    ("fine-tuned: similarity", similarity_mosaic(tuned, 8), sim),
    ("interpolated: RGB", to_rgb(after), {}),
    ("fine-tuned: RGB", to_rgb(pca_image(tuned, 8, basis)), {}),
], "Position embeddings after fine-tuning at 32 × 32")

# %% [markdown]
# In 300 SGD steps they change by about 8 per cent (the 0.084 printed above) and keep their
# layout: the interpolated embeddings were good enough to start from, which is the point of
# interpolating them (a random 8 × 8 grid would have to be learned again from 500 images).
#
# ## 6. Fine-tuning the paper's ViT-Ti/16
#
# The same recipe works on real pre-trained weights, which you download yourself (this cell
# does nothing unless `MINIVIT_VIT_WEIGHTS` names the file, and is not run when the book is
# built). Two sources, both readable by `from_pretrained`:
#
# * the official JAX checkpoints (`.npz`), e.g. ViT-Ti/16 pre-trained on ImageNet-21k
#   (AugReg, Steiner et al. 2021):
#
#   ```bash
#   curl -o ViT-Ti_16.npz https://storage.googleapis.com/vit_models/augreg/Ti_16-i21k-300ep-lr_0.001-aug_none-wd_0.03-do_0.0-sd_0.0.npz
#   ```
# * timm's weights on the Hugging Face hub (`.safetensors`), e.g. the `model.safetensors` file
#   of `timm/vit_tiny_patch16_224.augreg_in21k`.
#
# Both were trained on pixels mapped to $[-1, 1]$, i.e. mean 0.5 and standard deviation 0.5 per
# channel, so we normalise that way. The paper fine-tunes at 384 × 384; on a CPU we take
# 96 × 96 (a 6 × 6 grid of 16-pixel patches, 37 tokens — the 14 × 14 grid of 224 px is
# interpolated *down*), which upsamples CIFAR's 32 × 32 images threefold. About 0.4 GFLOP per
# image forward and 1.2 per training image: expect ten minutes or so on two cores for the
# 300 steps of 50 images and the evaluations.

# %%
VIT_WEIGHTS = os.environ.get("MINIVIT_VIT_WEIGHTS")  # e.g. ViT-Ti_16.npz or model.safetensors
if not VIT_WEIGHTS:
    print("MINIVIT_VIT_WEIGHTS is not set: skipping the ViT-Ti/16 fine-tuning "
          "(set it to a downloaded .npz or .safetensors file to run it)")
elif C != 3:
    print("ViT-Ti/16 takes RGB images: this needs CIFAR-10, not the digits fallback")
else:
    vit_ti = from_pretrained(VIT_WEIGHTS, num_classes=5, image_size=96)
    print(f"ViT-Ti/16: {vit_ti.num_parameters():,} parameters, pos_embed {vit_ti.pos_embed.shape}")
    assert vit_ti.pos_embed.shape == (1, 1 + 6 * 6, 192)
    minus_one_to_one = ((0.5,) * 3, (0.5,) * 3)          # the checkpoints' normalisation: [-1, 1]
    start = time.perf_counter()
    optimizer = SGD(vit_ti.parameters(), lr=0.03, momentum=0.9)
    ti_history, _ = fit(vit_ti, optimizer, B["train"], STEPS, BATCH, 0.03, STEPS // 10,
                        eval_set=curve_set, eval_every=EVERY, stats=minus_one_to_one)
    ti_accuracy = accuracy(vit_ti, *B["test"], stats=minus_one_to_one)
    print(f"ViT-Ti/16 fine-tuned in {time.perf_counter() - start:.0f} s: task-B test accuracy "
          f"{100 * ti_accuracy:.1f}% (our small pre-trained ViT: {100 * final['fine-tuned']:.1f}%)")

# %% [markdown]
# On a whole data set, `python -m minivit.finetune` does all of this (it is `minivit.train`
# with `--init CHECKPOINT` and the fine-tuning defaults: SGD, momentum 0.9, no weight decay,
# clipping at 1, warmup then cosine, a new zero head, position embeddings interpolated to
# `--image-size`); it writes a run directory with curves and checkpoints like `minivit.train`:
#
# ```bash
# python -m minivit.finetune ViT-Ti_16.npz --dataset cifar10 --image-size 96 --epochs 2 --lr 0.01
# python -m minivit.finetune runs/RUN_DIR/best.npz --dataset cifar100        # your own model
# python -m minivit.finetune --resume runs/finetune-cifar10-...              # continue
# ```
#
# It normalises the images as the checkpoint's were: to $[-1, 1]$ for the official and timm
# weights, with the data set's channel statistics for a `minivit.train` checkpoint (as trained);
# `--normalize` overrides it.

# %%
print(f"chapter run time: {time.perf_counter() - START:.0f} s")

# %% [markdown]
# ## Summary
#
# * Fine-tuning = pre-trained weights + a **new zero-initialised head** + (at a new resolution)
#   **interpolated position embeddings**, trained with SGD with momentum, clipping and
#   warmup + cosine. `from_pretrained(path, num_classes=K, image_size=S)` does the first two.
# * Same patch size at a higher resolution means a larger grid, $N = (S/P)^2$; the position
#   embeddings, a function on the grid, are resampled bilinearly with the corners aligned,
#   $E' = M E M^\top$ per feature; the class token's is kept.
# * Pre-training on *other* classes at a *lower* resolution, with 50× more images, beat training
#   from scratch on 100 labels per class in each of three seeds, by more than the seeds move
#   any from-scratch result (the table in §5), against the better of the two from-scratch
#   recipes: the optimiser does not explain the gain. That is the transfer the paper scales up
#   to 300 M images.
#
# ## Exercises
#
# 1. Vary `SHOTS` (10, 25, 100, 500 labels per class) and plot the final accuracy of both
#    models against it. Where do the curves meet, if they do?
# 2. Fine-tune with AdamW instead of SGD, and with the pre-training recipe's label smoothing.
#    Does the paper's choice of SGD matter here?
# 3. Replace the interpolated position embeddings by fresh random ones (`normal(0.02)`) before
#    fine-tuning. How much accuracy does the interpolation save? And by zero embeddings?
# 4. Interpolate with `align_corners=False` (`interpolation_matrix(4, 8, align_corners=False)`):
#    how far are the two grids apart, and does it change the fine-tuned accuracy?
# 5. Fine-tune at 16 × 16 instead (no interpolation, 4× cheaper). What does the higher
#    resolution buy, and what does it cost per step?
# 6. Freeze everything but the head (a linear probe: optimise `model.head.parameters()` only).
#    How close does it get to full fine-tuning?

# %% [markdown]
# ### What you can now do
#
# * Write a training loop from minivit's pieces: `batches`, `resize`, `cross_entropy`, an
#   optimizer, `clip_grad_norm` and warmup then cosine.
# * Turn a checkpoint into a model for a new task and resolution, with a new zero-initialised
#   head and position embeddings interpolated as $E' = M E M^\top$
#   (`from_pretrained(path, num_classes=K, image_size=S)`).
# * Fine-tune with the paper's recipe (SGD with momentum, no weight decay, clipping, warmup and
#   cosine) and compare it with training from scratch on the same images and number of steps.
# * Fine-tune released ViT-Ti/16 weights (official `.npz` or timm `.safetensors`), or run the
#   whole recipe on a data set with `python -m minivit.finetune`.
#
# ### Further reading
#
# * Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, arXiv:2010.11929,
#   Section 3.2 (fine-tuning at a higher resolution) and Section 4.1 (the fine-tuning setup).
# * Alexander Kolesnikov et al., "Big Transfer (BiT): General Visual Representation Learning",
#   ECCV 2020, arXiv:1912.11370: pre-training on large data sets, then transfer with few labels.
# * Andreas Steiner et al., "How to train your ViT? Data, Augmentation, and Regularization in
#   Vision Transformers", 2021, arXiv:2106.10270: the AugReg checkpoints of section 6, and
#   pre-training against training from scratch.
# * Hugo Touvron, Andrea Vedaldi, Matthijs Douze, Hervé Jégou, "Fixing the train-test
#   resolution discrepancy", NeurIPS 2019, arXiv:1906.06423: why testing or fine-tuning at a
#   higher resolution helps.
