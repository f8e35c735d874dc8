"""What one training step asks of a GPU, counted on the strict CuPy stand-in and pinned.

A GPU step of the `gpu` preset does ~8 ms of arithmetic; launched op by op, with the host
waiting on the device now and then, it would take many times that. So the budgets: at most one
device-to-host sync per step (none when no progress bar is drawn: one at the end of the epoch),
at most one host-to-device copy per batch, and under 1,000 array operations per step, the
optimizer one fused operation per parameter. The counts are deterministic (operations and
their call sites, not times), so a change that adds a sync or a copy fails here. These are
counts of what the code asks of a device, made on NumPy: not a GPU measurement.
"""
import dataclasses
import io

import numpy as np
import pytest

from minivit import backend
from minivit.evaluation import evaluate
from minivit.model import ViT
from minivit import train as train_module
from minivit.train import PRESETS, TrainConfig, make_optimizer, train_epoch

STEPS = 3      # batches in the counted epoch
BATCH = 8      # the counts do not depend on the batch size; the time does


@pytest.fixture
def gpu_preset(strict_cupy):
    """The gpu preset's model, optimizer and a small data set of STEPS batches on the device."""
    config = TrainConfig(**{**PRESETS["gpu"], "batch_size": BATCH, "threads": 1})
    rng = np.random.default_rng(0)
    images = backend.to_device(rng.integers(0, 256, (STEPS * BATCH, 3, 32, 32), dtype=np.uint8),
                               "gpu")
    labels = backend.to_device(rng.integers(0, 10, STEPS * BATCH), "gpu")
    model = ViT.from_config(config.model, num_classes=10).to("gpu")
    optimizer = make_optimizer(config, model)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    train_epoch(model, optimizer, images, labels, mean, std, config, epoch=0)  # state built
    strict_cupy.counts.reset()
    return strict_cupy.counts, config, model, optimizer, images, labels, mean, std


def report(counts, what):
    totals = counts.totals()
    print(f"\n{what}: {totals}\n  ops by line: {counts.ops.most_common(6)}"
          f"\n  syncs: {dict(counts.syncs)}\n  copies: {dict(counts.copies)}")
    return totals


def test_a_training_step_of_the_gpu_preset_stays_within_its_budget(gpu_preset, capsys):
    counts, config, model, optimizer, images, labels, mean, std = gpu_preset
    train_epoch(model, optimizer, images, labels, mean, std, config, epoch=1)
    with capsys.disabled():
        totals = report(counts, f"one epoch of {STEPS} steps (gpu preset, strong augmentation)")
    assert totals["syncs"] == 1            # the loss and accuracy, read once at the epoch's end
    assert totals["copies"] <= STEPS       # at most one host-to-device copy a batch
    assert totals["ops"] / STEPS < 1000
    blocks, norms = len(model.blocks), 2 * len(model.blocks) + 1
    assert counts.kernels == {                     # fused kernels (backend.fused), per step:
        "adamw_update": STEPS * len(model.parameters()),   # one per parameter
        "tanh_gelu": STEPS * blocks, "tanh_gelu_backward": STEPS * blocks,
        "normalize": STEPS * norms, "layernorm_backward": STEPS * norms,
        "softmax_backward_formula": STEPS * blocks}


def test_an_evaluation_batch_stays_within_its_budget(gpu_preset, capsys):
    counts, config, model, optimizer, images, labels, mean, std = gpu_preset
    evaluate(model, images, labels, mean, std, batch_size=len(images))
    with capsys.disabled():
        totals = report(counts, "one evaluation batch")
    assert totals["syncs"] == 2            # loss and accuracy, then the predictions, at the end
    assert totals["copies"] <= 1
    assert totals["ops"] < 450


def test_mixup_and_cutmix_add_no_sync_and_only_their_two_weights(gpu_preset):
    """The partner of each image is the batch reversed (no permutation sent); what is sent is
    lam and 1 - lam, the two losses' weights (two 0-d arrays a step; the host draws lam, since
    CutMix's box is cut on the host)."""
    counts, config, model, optimizer, images, labels, mean, std = gpu_preset
    config = dataclasses.replace(config, mixup=0.8, cutmix=1.0)  # each batch one or the other
    train_epoch(model, optimizer, images, labels, mean, std, config, epoch=1)
    totals = counts.totals()
    assert totals["syncs"] == 1 and totals["copies"] <= 3 * STEPS
    assert sum(n for line, n in counts.copies.items() if "loader" not in line) == 2 * STEPS


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_with_a_progress_bar_the_loss_is_read_every_read_every_steps(gpu_preset, monkeypatch):
    """The bar (drawn on a terminal only) reads the running loss every READ_EVERY steps: a sync
    each, and the one at the epoch's end."""
    counts, config, model, optimizer, images, labels, mean, std = gpu_preset
    monkeypatch.setattr(train_module.sys, "stdout", Terminal())
    monkeypatch.setattr(train_module, "READ_EVERY", 2)
    train_epoch(model, optimizer, images, labels, mean, std, config, epoch=1)
    assert counts.totals()["syncs"] == STEPS // 2 + 1
