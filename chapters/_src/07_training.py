# Source of chapters/07_training.ipynb; rebuild with `python chapters/_build.py 07`.

# %% [markdown]
# # Chapter 7 — Training a ViT
#
# We have every piece of the model. This chapter trains one on CIFAR-10 and looks at the
# result. The model is only half of the recipe: transformers have little built-in knowledge of
# images (no convolution's locality, no translation equivariance), so on a data set as small
# as CIFAR-10 they depend on the training recipe more than CNNs do. In order:
#
# 1. the data pipeline, and augmentation — random crops and flips — seen on real images;
# 2. the optimizer, AdamW, and its learning-rate schedule, linear warmup then cosine decay;
# 3. label smoothing: what it does to the targets, and why the loss can no longer reach zero;
# 4. a real training run with `minivit.train`, its loss and accuracy curves;
# 5. what the trained model gets wrong: a confusion matrix and misclassified examples.
#
# Shapes: `B` images in a batch, `C H W` channels and pixels, `K` classes.

# %%
import csv
import inspect
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
from minivit import Tensor, ops, parallel
from minivit.engine import Function
from minivit.data import batches, horizontal_flip, random_crop, random_erasing, resize, standardize
from minivit.model import ViT
from minivit.optim import AdamW, param_groups, warmup_cosine
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
# ## 1. The data
#
# CIFAR-10: 50,000 training and 10,000 test images of 32 × 32 pixels in 10 classes. We use it
# when it is at hand: from the archive named by the environment variable
# `MINIVIT_CIFAR10_ARCHIVE`, or from `data/cifar-10-python.tar.gz` at the repository root (as
# `python -m minivit.train` finds it), or downloaded by chapter 6's data cell. Without
# it — and always in fast mode, which the tests use — it falls back to scikit-learn's 8 × 8
# handwritten digits, and says so below. The committed outputs came from a copy rebuilt from
# JPEG files (the note below says so), within about a point of the official data.

# %%
DATASET, data = cifar10_or_digits()
CIFAR = DATASET.startswith("cifar10")
K = len(data.classes)
print(f"{data.name}: train {data.train_images.shape} {data.train_images.dtype}, "
      f"test {data.test_images.shape} (N C H W)")
print("classes:", data.classes)
print("per-channel mean:", np.round(data.mean, 4), "std:", np.round(data.std, 4), "(pixels in [0, 1])")

# %% [markdown]
# **The pipeline.** The images stay as `uint8` — CIFAR-10's training set is 150 MB that way,
# four times less than as float32 — on the device that trains (CPU or GPU). For each step,
# `minivit.data.batches` picks a batch of indices, gathers those images, augments them, and only
# then converts them to float and normalises every channel $c$ to mean 0 and variance 1 over
# the training set:
#
# $$x \leftarrow \frac{x/255 - \mu_c}{\sigma_c}.$$
#
# Augmentation works on the whole batch at once (one indexing operation, no loop over
# images), and every random choice comes from one seeded generator, so the same seed gives the
# same batches. A batch without augmentation, to check the normalisation:

# %%
B = 256
x, y = next(batches(data.train_images, data.train_labels, B, mean=data.mean, std=data.std,
                    shuffle=True, rng=np.random.default_rng(0)))
C, S = x.shape[1], x.shape[2]
assert x.shape == (B, C, S, S) and x.dtype == np.float32 and y.shape == (B,)   # B C H W, B
print("batch:", x.shape, x.dtype, "| labels:", y.shape, y.dtype)
print("per-channel mean of the batch:", einops.reduce(x, "b c h w -> c", "mean"),
      "std:", x.transpose(1, 0, 2, 3).reshape(C, -1).std(axis=1))

# %% [markdown]
# **Augmentation.** Every epoch shows the model each image once; augmentation makes each
# showing a little different, so the model cannot memorise pixels. minivit's `basic`
# augmentation, the standard one for CIFAR, has two parts:
#
# * **random crop**: pad the image with $s/8$ black pixels on each side (4 for 32 px) and cut a
#   window of the original size at a random offset: a shift of up to 4 pixels each way;
# * **horizontal flip** with probability ½: a mirrored car is still a car. (Not for digits: a
#   mirrored 2 is no longer a 2; there minivit uses the crop alone.)
#
# `strong` adds **random erasing**: a random rectangle of the (normalised) image set to 0. The
# grid shows the same images, one row for each transformation.

# %%
def picture(image):
    """A (C H W) image, uint8 or normalised floats, as something imshow draws (H W 3 or H W)."""
    if image.dtype != np.uint8:
        image = image * np.array(data.std)[:, None, None] + np.array(data.mean)[:, None, None]
    else:
        image = image / 255
    image = np.clip(einops.rearrange(image, "c h w -> h w c"), 0, 1)
    return image[..., 0] if image.shape[-1] == 1 else image


sample = data.train_images[:8]                                           # 8 C H W, uint8
aug_rng = np.random.default_rng(1)
normalised = standardize(sample, data.mean, data.std)
rows = [("original", sample),
        ("random crop", random_crop(sample, S // 8, aug_rng)),
        ("random crop", random_crop(sample, S // 8, aug_rng)),
        ("flip (p = 1)", horizontal_flip(sample, aug_rng, p=1.0)),
        ("crop + flip", horizontal_flip(random_crop(sample, S // 8, aug_rng), aug_rng)),
        ("+ erasing (p = 1)", random_erasing(standardize(horizontal_flip(random_crop(
            sample, S // 8, aug_rng), aug_rng), data.mean, data.std), aug_rng, p=1.0))]
fig, axes = plt.subplots(len(rows), len(sample), figsize=(1.05 * len(sample) + 1, 1.1 * len(rows)))
for (label, batch), row in zip(rows, axes):
    assert batch.shape == sample.shape                                   # 8 C H W
    for image, ax in zip(batch, row):
        ax.imshow(picture(image), cmap="gray", interpolation="nearest")
        ax.set_xticks([]); ax.set_yticks([])
    row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
for ax, label in zip(axes[0], data.train_labels[:8]):
    ax.set_title(data.classes[int(label)], fontsize=9)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 2. AdamW, warmup and cosine decay
#
# **AdamW** (Loshchilov & Hutter) keeps two running averages per parameter, of the gradient
# $g_t$ and of its square, and steps by their ratio — so every parameter moves about $\eta$ per
# step, whatever the scale of its gradient:
#
# $$m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,$$
# $$\theta_t = \theta_{t-1} - \eta_t \Bigl(\frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
#   + \lambda\,\theta_{t-1}\Bigr),$$
#
# with $\beta_1 = 0.9$, $\beta_2 = 0.999$. The divisions by $1 - \beta^t$ undo the averages'
# bias towards their initial zeros. The **weight decay** $\lambda\theta$ is *decoupled*: it
# shrinks the weights directly instead of being added to the gradient (where Adam's division
# would rescale it). minivit applies it to the weight matrices only — not to biases,
# layernorm gains, the class token or the position embeddings (`param_groups`):

# %%
model = ViT.from_config("C-mini/4", image_size=S, in_channels=C, num_classes=K,
                        **({} if CIFAR else dict(patch_size=2)))
groups = param_groups(model, weight_decay=0.05)
names = {id(p): name for name, p in model.named_parameters()}
for group in groups:
    count = sum(p.size for p in group["params"])
    examples = ", ".join(names[id(p)] for p in group["params"][:4])
    print(f"weight decay {group['weight_decay']}: {len(group['params'])} tensors, {count:,} numbers "
          f"(e.g. {examples}, ...)")
optimizer = AdamW(groups, lr=1e-3)

# %% [markdown]
# ### Your turn: one AdamW step
#
# The two equations above are one AdamW step: write it on NumPy arrays,
# `adamw_step(p, g, m, v, t, lr, betas, eps, weight_decay)` → the new `(p, m, v)`, for one
# parameter `p` with its gradient `g` and running averages `m`, `v` (zeros before step 1), `t`
# the step's number counted from 1. Mind which $\theta$ the decay multiplies. The check runs
# the cases of `python -m pytest --exercises -k adamw_step`: four steps in a row against
# `minivit.optim.AdamW` (without decay, with it, odd betas and a large eps, one entry).

# %%
def adamw_step(p, g, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """One AdamW step for one parameter; p, g, m, v: arrays of its shape, t: 1, 2, ...
    Returns the new (p, m, v)."""
    raise NotImplementedError("exercise not done yet: write adamw_step")


# %%
check("adamw_step", adamw_step)

# %% [markdown]
# ### One solution
#
# The reference solution (`exercises/solutions/adamw_step.py`), checked, then its code;
# `minivit.optim.AdamW.step` does the same for every parameter, in place:

# %%
from exercises.solutions import adamw_step as adamw_solution

check("adamw_step", adamw_solution)
print(inspect.getsource(adamw_solution.adamw_step))

# %% [markdown]
# **The learning rate** $\eta_t$ rises linearly from 0 to its peak over the first steps
# (**warmup**) and then falls along half a cosine to 0:
#
# $$\eta_t = \begin{cases} \eta_\text{max}\,\dfrac{t + 1}{t_w} & t < t_w \\[1ex]
#   \dfrac{\eta_\text{max}}{2}\Bigl(1 + \cos\bigl(\pi\,\frac{t - t_w}{T - t_w}\bigr)\Bigr) & t \ge t_w \end{cases}$$
#
# Warmup matters for transformers with Adam: at the start $v_t$ has seen few gradients, its
# estimate is noisy and some steps come out far too large; with a small learning rate at
# first, the early, large gradients do no damage. The cosine then anneals: large steps while
# the loss falls fast, small ones at the end to settle in a minimum. The schedules of this
# chapter's run and of the `cpu-hour` preset:

# %%
fig, ax = plt.subplots(figsize=(6.5, 3))
for label, epochs, warmup in (("this chapter's run: 3 epochs, warmup 0.5", 3, 0.5),
                              ("cpu-hour preset: 46 epochs, warmup 2", 46, 2)):
    steps_per_epoch = 391                                  # ceil(50000 / 128)
    total = epochs * steps_per_epoch
    t = np.arange(total)
    lr = [warmup_cosine(step, total, int(warmup * steps_per_epoch), 1e-3) for step in t]
    ax.plot(t / steps_per_epoch, lr, label=label)
ax.set(xlabel="epoch", ylabel="learning rate", title="linear warmup, then cosine decay")
ax.legend(fontsize=8); ax.grid(alpha=0.3); plt.tight_layout(); plt.show()

# %% [markdown]
# ## 3. Label smoothing
#
# Cross-entropy with a one-hot target asks for probability 1 on the true class — logits that
# grow without bound, and a model that is overconfident on what it gets wrong. **Label
# smoothing** (Szegedy et al., 2016) mixes the one-hot target with the uniform distribution:
#
# $$q_k = (1 - \varepsilon)\,[k = y] + \frac{\varepsilon}{K}, \qquad
#   \mathcal{L} = -\sum_k q_k \log p_k .$$
#
# With $\varepsilon = 0.1$ and $K = 10$ the true class gets $0.91$ and every other $0.01$:

# %%
eps = 0.1
target = np.full(K, eps / K)
target[3] += 1 - eps
print("one-hot target for class 3:", np.eye(K)[3])
print("smoothed target          :", target, "sum", target.sum())

# %% [markdown]
# ### Your turn: the loss's backward
#
# Below is minivit's cross-entropy as one op on logits `B K`, with its forward written: a
# stable log-softmax, the smoothed targets $q$, the mean of $-\sum_k q_k \log p_k$. It keeps
# $p$ (`self.probs`) and $q$ (`self.targets`) for the backward. Write `backward`: given the
# scalar $\bar{\mathcal L}$ (`grad`), return `(dlogits,)`, `B K`. Derive
# $\partial \log p_k / \partial x_j$ first, then ask what $\sum_k q_k$ is. The check runs
# `gradcheck` and minivit's op on the cases of `python -m pytest --exercises -k cross_entropy`
# (no smoothing, smoothing, a batch of one); exercise 3 at the end asks what the answer means.

# %%
class CrossEntropy(Function):
    """Mean cross-entropy of integer self.labels (B) under logits (B K), label smoothing
    self.label_smoothing: q = (1 - eps) onehot + eps/K, loss = -(1/B) sum q log p."""

    def forward(self, logits):
        B, K = logits.shape
        self.targets = np.full((B, K), self.label_smoothing / K, dtype=logits.dtype)  # q: (B K)
        self.targets[np.arange(B), self.labels] += 1 - self.label_smoothing
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.probs = np.exp(log_probs)                                                 # p: (B K)
        return -(self.targets * log_probs).sum() / B

    def backward(self, grad):
        """grad: dL/dloss, a scalar -> (dlogits,), dlogits: (B K)."""
        raise NotImplementedError("exercise not done yet: write CrossEntropy.backward")


# %%
check("cross_entropy", CrossEntropy)

# %% [markdown]
# **The loss floor.** $\mathcal{L} = H(q) + \operatorname{KL}(q \,\|\, p)$ is smallest for
# $p = q$, where it equals the entropy of the target:
#
# $$\mathcal{L}_\text{min} = H(q) = -\Bigl(1 - \varepsilon + \tfrac{\varepsilon}{K}\Bigr)
#   \log\Bigl(1 - \varepsilon + \tfrac{\varepsilon}{K}\Bigr)
#   - (K - 1)\,\frac{\varepsilon}{K}\,\log\frac{\varepsilon}{K},$$
#
# about $0.50$ for $\varepsilon = 0.1$, $K = 10$ — the *training* loss never goes below it.
# And beyond that point, more confidence costs: take logits $m$ for the true class and $0$ for
# the others. With $\varepsilon = 0$ the loss falls towards 0 as $m \to \infty$; with
# $\varepsilon = 0.1$ it has a minimum at $m^* = \log(q_y / q_{k \ne y}) = \log 91 \approx 4.5$
# and grows again, linearly, beyond it: the model is asked for a finite margin.

# %%
floor = -(target * np.log(target)).sum()
margins = np.linspace(0, 12, 241)
logits = np.zeros((len(margins), K), np.float32)
logits[:, 3] = margins                                                   # B K, true class 3
labels = np.full(len(margins), 3)
curves = {}
for e in (0.0, eps):
    curves[e] = [ops.cross_entropy(Tensor(logits[i:i + 1]), labels[i:i + 1], e).item()
                 for i in range(len(margins))]
best = margins[np.argmin(curves[eps])]
at_target = ops.cross_entropy(Tensor(np.log(target)[None].astype(np.float32)), labels[:1], eps).item()
print(f"H(q) = {floor:.4f}; the loss at p = q: {at_target:.4f}; "
      f"best margin {best:.2f} (log 91 = {np.log(91):.2f})")
assert abs(at_target - floor) < 1e-4 and abs(best - np.log(91)) < 0.05

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(margins, curves[0.0], label="ε = 0 (one-hot)")
ax.plot(margins, curves[eps], label=f"ε = {eps}")
ax.axhline(floor, color="gray", ls="--", lw=1, label=f"H(q) = {floor:.3f}")
ax.axvline(np.log(91), color="gray", ls=":", lw=1)
ax.set(xlabel="logit margin m of the true class", ylabel="cross-entropy", ylim=(0, 2.5),
       title="label smoothing: a finite best margin, a loss floor")
ax.legend(fontsize=8); ax.grid(alpha=0.3); plt.tight_layout(); plt.show()

# %% [markdown]
# ### One solution
#
# For one row, $\partial \log p_k / \partial x_j = [k = j] - p_j$, so
# $\partial \mathcal L / \partial x_j = -\frac1B \sum_k q_k ([k = j] - p_j) = \frac1B (p_j - q_j)$,
# since $\sum_k q_k = 1$ for any $\varepsilon$: the gradient is $p - q$, and it vanishes where
# $p = q$, the floor above. The reference solution (`exercises/solutions/cross_entropy.py`),
# checked, then its backward:

# %%
from exercises.solutions import cross_entropy as cross_entropy_solution

check("cross_entropy", cross_entropy_solution)
print(inspect.getsource(cross_entropy_solution.CrossEntropy.backward))

# %% [markdown]
# ## 4. A training run
#
# `minivit.train.train(config, run_dir)` puts it all together. One step is
#
# ```
# lr = warmup_cosine(step, ...)          # the schedule
# logits = model(x)                      # B K
# loss = cross_entropy(logits, y, 0.1)   # label smoothing
# loss.backward()                        # chapter 1's engine, chapters 2-5's backward passes
# clip_grad_norm(params, 1.0)            # all gradients together at most norm 1
# optimizer.step()                       # AdamW
# ```
#
# (`train` gives the clipping to the optimizer, `AdamW(..., clip_norm=1.0)`, which scales the
# gradients inside its update: the same arithmetic, with nothing read back from a GPU; and
# `parallel.loss_and_gradients` runs the forward, loss and backward lines on every CPU core
# at once: see "Every core" below). After each epoch it evaluates on a validation split (2% of
# the training images, held out) and on the test set, writes a row to `metrics.csv`, and saves
# `last.npz` (and `best.npz` when the *validation* accuracy improved: the test set never
# chooses) into the run directory.
#
# The model is `C-mini/4` ($D = 128$, 6 blocks, 4 heads, 0.8 M parameters). To fit in a few
# minutes on two CPU cores we train it on CIFAR-10 **downsampled to 16 × 16** — a grid of
# $4 \times 4$ patches, 17 tokens instead of 65, about four times cheaper — for just 3 epochs
# (about 2 minutes on two cores). That is the beginning of the `cpu-hour` preset's first
# phase (which then switches to 32 px with the position embeddings interpolated, as in
# chapter 6). In fast mode: a tiny model, two epochs on the digits.

# %%
run_dir = tempfile.mkdtemp(prefix="minivit-ch07-")
if CIFAR:
    config = TrainConfig(dataset=DATASET, data_dir=DATA_DIR, model="C-mini/4", image_size=16,
                         epochs=3, batch_size=128, lr=1e-3, warmup_epochs=0.5, weight_decay=0.05,
                         label_smoothing=0.1, augment="basic")
else:  # the digits: 1,437 training images, 23 steps an epoch
    config = TrainConfig(dataset="digits", model="C-micro/4", patch_size=2, depth=2 if FAST else 4,
                         heads=4, epochs=2 if FAST else 30, batch_size=64, lr=2e-3, warmup_epochs=1,
                         label_smoothing=0.1, augment="crop")
print(config)
summary = train(config, run_dir)
print({k: v for k, v in summary.items() if k != "command"})

# %% [markdown]
# **The curves**, read back from the run's `metrics.csv` (one row per epoch):

# %%
with open(os.path.join(run_dir, "metrics.csv")) as f:
    metrics = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
print("columns:", list(metrics[0]))
epochs = [m["epoch"] for m in metrics]
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
for key, label in (("train_loss", "train (smoothed, augmented)"), ("test_loss", "test")):
    left.plot(epochs, [m[key] for m in metrics], "o-", label=label)
left.axhline(floor, color="gray", ls="--", lw=1, label="smoothing's floor")
for key, label in (("train_accuracy", "train (augmented)"), ("test_accuracy", "test")):
    right.plot(epochs, [100 * m[key] for m in metrics], "o-", label=label)
left.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
right.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
for ax in (left, right):
    ax.grid(alpha=0.3); ax.legend(fontsize=8); ax.set_xticks(epochs)
plt.tight_layout(); plt.show()

# %% [markdown]
# Two things to read off the curves. The training loss is *above* the test loss although the
# model has seen the training images: it is measured with label smoothing (whose floor is the
# dashed line) on augmented images, while the test loss is the plain cross-entropy on clean
# ones; and it is the mean over the epoch's steps, most of them taken by a worse model than
# the one the test set sees at the epoch's end (early in training the gap from this alone is
# large). And after a few epochs the test accuracy is still climbing — this run is far from
# finished; it stops because our time budget does.
#
# **The full run.** `python -m minivit.train --preset cpu-hour` trains the same `C-mini/4` for
# 46 epochs (34 at 16 px, 12 at 32 px) in about an hour on two cores (the README has its
# figures). `--preset gpu` trains a wider model for 200 epochs on a GPU.

# %% [markdown]
# ### Every core: data parallelism
#
# NumPy runs each elementwise operation (GELU, layernorm, softmax) and each of attention's
# many small matrix products on **one core**. `train` uses them all by *data parallelism*,
# what multi-GPU training does across GPUs: the samples of a batch never meet in a ViT (there
# is no batch norm), so the batch is cut into one shard per core and each shard goes through
# forward and backward in its own thread — NumPy lets go of Python's lock (the GIL) while it
# computes, so the threads really run at once. The loss is the mean over all $B$ samples,
# $\mathcal{L} = \sum_s \frac{n_s}{B}\,\mathcal{L}_s$ for shards of $n_s$ samples with mean
# losses $\mathcal{L}_s$, so the gradient is the same weighted sum of the shards' gradients
# (the "all-reduce"):
#
# $$\frac{\partial \mathcal{L}}{\partial W} = \sum_s \frac{n_s}{B}\,\frac{\partial \mathcal{L}_s}{\partial W}.$$
#
# The threads share one model: each computes its gradients with `leaf_gradients`, which
# returns them instead of writing `.grad`. `minivit.parallel.loss_and_gradients` is the whole
# of it. Its gradients equal those of the batch in one piece, up to float32 rounding:

# %%
trained = from_pretrained(os.path.join(run_dir, "last.npz"))  # trained: every gradient is non-zero
x, y = next(batches(data.train_images, data.train_labels, 128, mean=data.mean, std=data.std))
x = resize(x, trained.patch_embed.image_size)
loss_fn = lambda logits, labels: ops.cross_entropy(logits, labels, 0.1)  # noqa: E731
gradients, seconds = {}, {}
for threads in (1, 2):
    times = []
    for _ in range(5):
        trained.zero_grad()
        start = time.perf_counter()
        parallel.loss_and_gradients(trained, loss_fn, x, y, threads)
        times.append(time.perf_counter() - start)
    gradients[threads] = {name: p.grad.copy() for name, p in trained.named_parameters()}
    seconds[threads] = np.median(times)
shard_error = max(np.abs(gradients[2][n] - gradients[1][n]).max() / np.abs(gradients[1][n]).max()
                  for n in gradients[1])
assert shard_error < 1e-3                                                 # float32 rounding
print(f"2 shards vs 1 piece: largest difference {shard_error:.1e} of a gradient's largest entry")
print(f"forward + backward of {len(x)} images: {1e3 * seconds[1]:.0f} ms in one thread, "
      f"{1e3 * seconds[2]:.0f} ms in two ({seconds[1] / seconds[2]:.2f}x); "
      f"this machine has {parallel.cpu_count()} cores")

# %% [markdown]
# Each thread's matrix products are then limited to one core (`threadpoolctl`), since the
# threads already fill them all. `python -m minivit.bench` measures the whole training step
# against PyTorch's; the README has its table.

# %% [markdown]
# ### Every machine: processes and one all-reduce
#
# Threads share one model in one memory. Across machines (or GPUs) each process — a *rank* —
# holds its own copy, and the gradients must travel. `minivit.distributed` does what
# `parallel` does, one level up, with MPI (`mpiexec -n 2 python -m minivit.train ...`):
# every rank draws the same batch, cuts it into $N \times T$ shards ($N$ ranks of $T$
# threads) and computes $\sum_s \frac{n_s}{B}\,\partial\mathcal{L}_s/\partial W$ over its
# own $T$; an **all-reduce** then sums these partial gradients over the ranks, so that every
# rank holds the whole batch's gradient, takes the same AdamW step, and keeps weights
# identical to the others' without ever sending them.
#
# Sending costs a *latency* per message (tens of microseconds over a network) plus bytes over
# *bandwidth*. `C-mini/4` has 92 parameter arrays: one message each would pay 92 latencies,
# so all gradients go into **one flat buffer** and one `Allreduce` a step.
#
# How an all-reduce sums $N$ buffers without any rank receiving all of them: the **ring**.
# Each buffer is cut into $N$ chunks. In $N - 1$ steps of a *reduce-scatter*, every rank sends
# one chunk to its right neighbour, which adds it to its own; afterwards rank $r$ holds the
# complete sum of chunk $r + 1$. In $N - 1$ steps of an *all-gather* the finished chunks go
# round the ring once more. Here it is on $N$ simulated ranks, with the bytes counted:

# %%
def ring_allreduce(buffers):
    """What each of N ranks holds after a ring all-reduce of their buffers, and the bytes sent."""
    N = len(buffers)
    chunks = [np.array_split(b.copy(), N) for b in buffers]       # rank r: N chunks
    sent_bytes = 0
    for step in range(N - 1):                                       # reduce-scatter
        sent = [chunks[r][(r - step) % N].copy() for r in range(N)]  # to rank r + 1
        for r in range(N):
            right = (r + 1) % N
            chunks[right][(r - step) % N] = chunks[right][(r - step) % N] + sent[r]
        sent_bytes += sum(chunk.nbytes for chunk in sent)
    for step in range(N - 1):                                       # all-gather
        sent = [chunks[r][(r + 1 - step) % N].copy() for r in range(N)]
        for r in range(N):
            chunks[(r + 1) % N][(r + 1 - step) % N] = sent[r]
        sent_bytes += sum(chunk.nbytes for chunk in sent)
    return [np.concatenate(c) for c in chunks], sent_bytes


rng = np.random.default_rng(0)
for N in (2, 4, 8):
    buffers = [rng.standard_normal(1_000) for _ in range(N)]
    results, sent_bytes = ring_allreduce(buffers)
    error = max(np.abs(r - sum(buffers)).max() for r in results)
    assert error < 1e-12
    print(f"N = {N}: every rank holds the sum (error {error:.0e}); each rank sent "
          f"{sent_bytes / N / buffers[0].nbytes:.3f} buffers, 2(N-1)/N = {2 * (N - 1) / N:.3f}")

# %% [markdown]
# Each rank sends just under two buffers whatever $N$ is, so the time is about
# $2\frac{N-1}{N}\frac{n}{\text{bandwidth}} + 2(N-1)\,\text{latency}$
# (`minivit.distributed.ring_allreduce_seconds`). For this chapter's model and for ViT-B/16,
# on a 10 Gbit/s network with 30 µs of latency:

# %%
from minivit.distributed import ring_allreduce_seconds

for name in ("C-mini/4", "B/16"):
    nbytes = 4 * ViT.from_config(name, num_classes=10).num_parameters()   # float32 gradients
    times = [ring_allreduce_seconds(nbytes, N, 1.25e9, 30e-6) for N in (2, 8, 64)]
    print(f"{name:>9}: {nbytes / 1e6:6.1f} MB of gradients, all-reduce over 2 / 8 / 64 hosts: "
          + " / ".join(f"{1e3 * t:.1f} ms" for t in times))

# %% [markdown]
# Against this chapter's step (forward and backward of 128 images at 16 px, timed above: about
# a tenth of a second on two cores), that is a few percent on 2 hosts and under a tenth at 64:
# until each host's share of the batch gets small, the network is not what limits the scaling.
# The real thing, live: two processes under `mpiexec`, each
# computing half of a float64 batch, against one process on the whole batch (it needs
# `pip install mpi4py mpich`, and says so without them):

# %%
import shutil
import subprocess

mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", ""))
check = os.path.join("..", "tests", "mpi_gradient_check.py")
try:
    import mpi4py  # noqa: F401
except ImportError:
    mpiexec = None
if mpiexec is None:
    print("mpi4py or mpiexec is not installed here: pip install mpi4py mpich")
else:
    for threads in (1, 2):
        result = subprocess.run([mpiexec, "-n", "2", sys.executable, check, str(threads)],
                                capture_output=True, text=True, timeout=120,
                                env={**os.environ, "PYTHONPATH": os.path.abspath("..")})
        assert result.returncode == 0, result.stderr
        print(result.stdout.strip())
        assert float(result.stdout.split()[-1]) < 1e-12

# %% [markdown]
# ## 5. What the model gets wrong
#
# Our three epochs at 16 px are far from a finished model; to study mistakes we take one that
# is. With CIFAR-10 it is the repository's committed model,
# `results/cifar10-cpu-hour/model.npz`: the first run of `--preset cpu-hour` as the preset then
# was (the same `C-mini/4`, an hour on two cores: 30 epochs at 16 px, then 6 at 32 px; chapter 9
# looks inside it). With the digits, the best checkpoint of the run above. `from_pretrained`
# reads a `minivit.train` checkpoint back as a `ViT`, and `evaluate` returns the test loss, the
# accuracy and every prediction. The **confusion matrix** counts, for each true class (row), how
# often each class was predicted (column); the diagonal holds the correct predictions.

# %%
CHECKPOINT = "../results/cifar10-cpu-hour/model.npz" if CIFAR else os.path.join(run_dir, "best.npz")
inspected = from_pretrained(CHECKPOINT)
test_loss, test_accuracy, predicted = evaluate(inspected, data.test_images, data.test_labels,
                                               data.mean, data.std)
assert predicted.shape == data.test_labels.shape                         # M
print(f"{CHECKPOINT} ({inspected.image_size} px input): test loss {test_loss:.3f}, "
      f"accuracy {100 * test_accuracy:.2f}% on {len(predicted):,} test images")
confusion = np.zeros((K, K), int)
np.add.at(confusion, (data.test_labels, predicted), 1)                  # K K: [true, predicted]
per_class = confusion.diagonal() / confusion.sum(axis=1)
for k in np.argsort(per_class):
    print(f"  {data.classes[k]:>10s}: {100 * per_class[k]:5.1f}%")
mistakes = confusion * (1 - np.eye(K, dtype=int))                       # K K, diagonal zeroed
print("most frequent confusions (true -> predicted):")
for flat in np.argsort(-mistakes, axis=None)[:6]:
    i, j = np.unravel_index(flat, mistakes.shape)
    print(f"  {data.classes[i]:>10s} -> {data.classes[j]:<10s} {mistakes[i, j]:4d}")

# %%
fig, ax = plt.subplots(figsize=(6.2, 5.2))
share = confusion / confusion.sum(axis=1, keepdims=True)
ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
for i in range(K):
    for j in range(K):
        ax.text(j, i, confusion[i, j], ha="center", va="center", fontsize=7,
                color="white" if share[i, j] > 0.5 else "black")
ax.set_xticks(range(K), data.classes, rotation=45, ha="right", fontsize=8)
ax.set_yticks(range(K), data.classes, fontsize=8)
ax.set(xlabel="predicted", ylabel="true", title=f"confusion matrix ({100 * test_accuracy:.1f}% correct)")
plt.tight_layout(); plt.show()

# %% [markdown]
# The mistakes are not random: on CIFAR-10 the animals are confused with each other — cats
# with dogs above all, both ways (the most frequent confusions, printed above) — and the
# vehicles with each other (automobiles with trucks; planes most often with ships, 69 in the
# matrix: the blue background of sky and sea). Here are the test images the model got wrong
# with the *most* confidence, with the true label and the prediction (and its probability):

# %%
with minivit.no_grad():
    x_all, _ = next(batches(data.test_images, data.test_labels, len(data.test_labels),
                            mean=data.mean, std=data.std))
    probs = []
    for start in range(0, len(x_all), 1000):
        logits = inspected(resize(x_all[start:start + 1000], inspected.image_size))
        probs.append(ops.softmax(logits, axis=-1).data)
probs = np.concatenate(probs)                                            # M K
assert np.array_equal(probs.argmax(axis=1), predicted)
wrong = np.flatnonzero(predicted != data.test_labels)
worst = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:16]
fig, axes = plt.subplots(2, 8, figsize=(11, 4.2))
for ax, i in zip(axes.flat, worst):
    ax.imshow(picture(data.test_images[i]), cmap="gray", interpolation="nearest")
    ax.set_title(f"{data.classes[data.test_labels[i]]}\n→ {data.classes[predicted[i]]} "
                 f"{100 * probs[i, predicted[i]]:.0f}%", fontsize=8)
    ax.set_xticks([]); ax.set_yticks([])
fig.suptitle("most confident mistakes (true → predicted, probability)", fontsize=10)
plt.tight_layout(); plt.show()

# %% [markdown]
# The weakest classes are the animals whose differences are finest (cat, bird, dog, deer: the
# bottom of the per-class list), the best the vehicles, whose shapes and backgrounds differ
# more. This model saw 16 × 16 images for 30 of its 36 epochs, where much of what tells a cat
# from a dog is gone. What was tried to go further, and what each change gave, negative
# results included, is in `results/LEVERS.md`.
#
# ## Summary
#
# * The images stay as `uint8` on the device; each batch is gathered, augmented (random crop,
#   flip; random erasing for `strong`) and normalised there.
# * AdamW: Adam's per-parameter step, plus weight decay applied directly to the weight
#   matrices only. The learning rate warms up linearly and decays along a cosine.
# * Label smoothing targets $1 - \varepsilon + \varepsilon/K$ for the true class and
#   $\varepsilon/K$ for the others: a finite best margin, and a loss floor $H(q) \approx 0.50$.
# * Data parallelism: the batch's shards go through forward and backward on every core (threads)
#   and every machine (MPI ranks); their weighted gradients are summed by an all-reduce, in one
#   flat buffer, and the ring all-reduce sends each rank just under two buffers whatever the
#   number of ranks.
# * `train(TrainConfig(...), run_dir)` runs it all and writes `metrics.csv`, `curves.png`,
#   `last.npz` and `best.npz`; `from_pretrained` and `evaluate` read the result back.
#
# ## Exercises
#
# 1. Retrain with `augment="none"` and then `label_smoothing=0`. What happens to the gap
#    between training and test accuracy, and to the test loss?
# 2. Set `warmup_epochs=0` and raise `lr` to `3e-3`. Does the run still train? Watch the loss
#    of the first few hundred steps.
# 3. The gradient of the smoothed loss is $(p - q)/B$ (section 3). Show that it vanishes at the
#    margin $m^* = \log\bigl((1 - \varepsilon + \varepsilon/K) / (\varepsilon/K)\bigr)$. What is
#    the floor for CIFAR-100 ($K = 100$) with $\varepsilon = 0.1$?
# 4. Why does `param_groups` exempt the position embeddings and the class token from weight
#    decay? Train once with decay on everything and compare.
# 5. `minivit.data.mixup` blends two images and their labels. Add it to a copy of the training
#    loop: what does it do to the training loss curve and to the confident mistakes above?

# %% [markdown]
# ### What you can now do
#
# * Build a data pipeline that keeps `uint8` images on the device and crops, flips (and
#   erases) whole batches at once before normalising them.
# * Write one AdamW step, with bias correction and decoupled weight decay, and the learning
#   rate's linear warmup and cosine decay.
# * Derive the gradient of the label-smoothed cross-entropy, $(p - q)/B$, and its floor, the
#   entropy $H(q)$ of the smoothed targets.
# * Run `minivit.train.train` and read its curves, a confusion matrix and the most confident
#   mistakes.
# * Explain data parallelism over threads and over processes, and estimate what a ring
#   all-reduce costs against a training step.
#
# ### Further reading
#
# * Ilya Loshchilov, Frank Hutter, "Decoupled Weight Decay Regularization", ICLR 2019,
#   arXiv:1711.05101: AdamW.
# * Christian Szegedy, Vincent Vanhoucke, Sergey Ioffe, Jonathon Shlens, Zbigniew Wojna,
#   "Rethinking the Inception Architecture for Computer Vision", CVPR 2016, arXiv:1512.00567:
#   label smoothing.
# * Andreas Steiner et al., "How to train your ViT? Data, Augmentation, and Regularization in
#   Vision Transformers", 2021, arXiv:2106.10270: which recipe choices matter for ViTs, and how
#   much.
# * Alexander Sergeev, Mike Del Balso, "Horovod: fast and easy distributed deep learning in
#   TensorFlow", 2018, arXiv:1802.05799: the ring all-reduce in data-parallel training.
