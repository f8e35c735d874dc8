"""The hybrid (the paper's CNN features as tokens) through `python -m minivit.train --stem`: it
learns, its checkpoints work everywhere a ViT's do (evaluate, inspect, resume, fine-tuning, the
GPU code path, MPI), and its FLOPs count its stem."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minivit import backend, cost
from minivit import train as train_module
from minivit.checkpoint import load_arrays, read_training
from minivit.cnn import HybridViT
from minivit.data import load_dataset
from minivit.evaluate import report
from minivit.inspect import inspect
from minivit.model import ViT
from minivit.pretrained import from_pretrained, from_training_checkpoint, save_pretrained
from minivit.train import PRESETS, TrainConfig, make_optimizer, parse_args, train, train_epoch
from test_distributed import launch, needs_mpi
from test_train import model_arrays, stop_in_epoch_two_and_resume

ROOT = Path(__file__).resolve().parent.parent
# one stem stage of 8 channels on 8x8 digits: 4 x 4 tokens of 2 x 2 pixels, as the digits ViT's
TINY = dict(dataset="digits", model="C-micro/4", stem="8", dim=16, depth=1, heads=2, mlp_dim=32,
            epochs=3, batch_size=128, lr=3e-3, warmup_epochs=1, augment="none", dropout=0.1)


def test_a_hybrid_trains_on_digits_and_its_loss_falls(tmp_path):
    """Four epochs of a 2,946-parameter hybrid: the training loss falls every epoch, from the
    chance level ln 10 = 2.30 to about 1.63, and the test accuracy climbs from chance to ~57%."""
    config = TrainConfig(**{**TINY, "epochs": 4, "batch_size": 32, "dropout": 0.0, "threads": 1})
    summary = train(config, tmp_path / "run")
    rows = train_module.read_metrics(tmp_path / "run" / "metrics.csv", 99)
    losses = [row["train_loss"] for row in rows]
    assert abs(losses[0] - np.log(10)) < 0.05
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    assert losses[-1] < 1.8 and summary["final_test_accuracy"] > 0.45, (losses, summary)
    checkpoint = read_training(tmp_path / "run" / "last.npz")
    assert checkpoint.model_config["stem_widths"] == [8] and "patch_size" not in checkpoint.model_config
    assert "patch_embed.stem.0.layers.0.conv.weight" in checkpoint.model
    model = from_training_checkpoint(checkpoint)
    assert isinstance(model, HybridViT) and model.patch_embed.patch_size == 2
    assert summary["parameters"] == model.num_parameters() == 2946


def test_evaluate_and_inspect_read_a_hybrid_checkpoint(tmp_path):
    """minivit.evaluate gives best.npz the test accuracy the run recorded for its epoch;
    minivit.inspect draws every figure, the filters being the stem's first 3x3 convolution's."""
    summary = train(TrainConfig(**TINY), tmp_path / "run")
    accuracy = report(tmp_path / "run" / "best.npz")
    assert accuracy == summary["best_test_accuracy"] and 0.1 < accuracy <= 1
    paths = inspect(tmp_path / "run" / "best.npz", tmp_path / "figures", images=16, show=4)
    assert all(os.path.getsize(path) > 0 for path in paths.values())
    record = json.loads((tmp_path / "figures" / "summary.json").read_text())
    assert (record["patch_size"], record["grid"], record["layers"]) == (2, 4, 1)
    assert record["filters_of"] == "the first stem convolution (3x3)"
    assert record["filter_components"] == 8  # min(28, 8 filters, 3 x 3 x 1 pixels)
    assert np.array(record["mean_attention_distance"]).shape == (1, 2)


@pytest.mark.parametrize("low_res_epochs", [0, 1])
def test_a_resumed_hybrid_run_ends_with_the_same_weights(tmp_path, monkeypatch, low_res_epochs):
    """As test_train's resume test for the ViT: stopped at the start of epoch 2's evaluation and
    resumed, the run ends with the weights and optimizer state of an uninterrupted one, bit for
    bit, each batch split between two threads (GroupNorm is per image: shards stay exact). With
    low_res_epochs=1 it resumes right where it moves from 4 px images (2 x 2 tokens) to 8 px
    (4 x 4), the grid following the image size."""
    config = TrainConfig(**{**TINY, "low_res_epochs": low_res_epochs, "low_res_size": 4,
                            "threads": 2})
    grids = []
    real_evaluate = train_module.evaluate

    def recording_evaluate(model, *args, **kwargs):
        grids.append((model.image_size, model.patch_embed.grid, model.pos_embed.shape[1]))
        return real_evaluate(model, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", recording_evaluate)
    train(config, tmp_path / "straight")
    full = (8, 4, 1 + 16)
    assert grids[::2] == ([(4, 2, 1 + 4)] + [full] * 2 if low_res_epochs else [full] * 3)

    monkeypatch.setattr(train_module, "evaluate", real_evaluate)
    stop_in_epoch_two_and_resume(config, tmp_path / "stopped", monkeypatch)

    straight, resumed = (model_arrays(tmp_path / d / "last.npz") for d in ("straight", "stopped"))
    assert straight.keys() == resumed.keys()
    assert "model/patch_embed.stem.0.layers.0.norm.weight" in straight
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)


def test_a_hybrid_checkpoint_fine_tunes_at_a_higher_resolution(tmp_path):
    """--init with a hybrid's checkpoint (no --stem: the architecture comes from it): the stem's
    weights are kept, the head starts at zero, the position embeddings follow the 8 x 8 grid of
    16 px images. The official and timm layouts, with no place for a stem, refuse it."""
    from minivit.finetune import main as finetune
    train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path / "pre")
    pre = from_pretrained(tmp_path / "pre" / "last.npz")
    finetune([str(tmp_path / "pre" / "last.npz"), "--dataset", "digits", "--image-size", "16",
              "--epochs", "1", "--lr", "0", "--out", str(tmp_path), "--name", "fine"])
    tuned = from_pretrained(tmp_path / "fine" / "last.npz")
    assert isinstance(tuned, HybridViT) and tuned.pos_embed.shape == (1, 1 + 8 * 8, 16)
    stem = "patch_embed.stem.0.layers.0.conv.weight"
    np.testing.assert_array_equal(tuned.state_dict()[stem], pre.state_dict()[stem])
    assert pre.head.weight.data.any() and not tuned.head.weight.data.any()
    with pytest.raises(ValueError, match="no place for a hybrid's CNN stem"):
        save_pretrained(pre, tmp_path / "official.npz")


def test_the_stem_flops_are_the_convolutions_gemms(monkeypatch):
    """stem_flops against a count made during a forward pass: each conv is one GEMM of im2col's
    (B H' W', k k C_in) columns by the (k k C_in, C_out) kernel, 2 M K N FLOPs; and against a
    hand count: 8 px, 1 channel, stages of 4 and 8 channels, 2 convs each."""
    from minivit.ops.conv import Conv2d
    gemms = []
    real_forward = Conv2d.forward

    def counting_forward(self, x, weight, bias=None):
        out = real_forward(self, x, weight, bias)
        gemms.append(2 * self.cols.shape[0] * self.cols.shape[1] * weight.shape[0] / len(x))
        return out

    monkeypatch.setattr(Conv2d, "forward", counting_forward)
    for config in (dict(image_size=8, in_channels=1, stem_widths=(4, 8), stem_depth=2),
                   dict(image_size=32, in_channels=3, stem_widths=(32, 64), stem_depth=1),
                   dict(image_size=16, in_channels=3, stem_widths=(8, 16, 8), stem_depth=3)):
        gemms.clear()
        model = HybridViT(**config, dim=8, depth=1, heads=2, mlp_dim=16)
        model(np.zeros((2, config["in_channels"], config["image_size"], config["image_size"]),
                       np.float32))
        assert len(gemms) == len(config["stem_widths"]) * config["stem_depth"]
        assert cost.stem_flops(model.config) == sum(gemms), config
    hand = 2 * 9 * (1 * 4 * 64 + 4 * 4 * 64 + 4 * 8 * 16 + 8 * 8 * 16)
    assert hand == 50_688 == cost.stem_flops(
        dict(image_size=8, in_channels=1, stem_widths=[4, 8], stem_depth=2))


def test_a_hybrids_forward_flops_are_its_stem_and_its_transformer():
    """The transformer after the stem is a ViT of 4 px patches on the same 8 x 8 grid whose
    embedding takes C' = 64 features instead of P P C = 48; the stem adds 11.2 MFLOP at 32 px
    (the figure minivit.cnn quotes), 2.8 at 16."""
    vit = ViT.from_config("C-mini/4", num_classes=10)
    hybrid = HybridViT.from_config("C-mini/4", num_classes=10, stem_widths=(32, 64))
    stem = 2 * 9 * (3 * 32 * 32 * 32 + 32 * 64 * 16 * 16)
    embedding = 2 * 64 * 128 * (64 - 48)
    assert stem == 11_206_656 == cost.stem_flops(hybrid.config)
    assert cost.forward_flops(hybrid.config) == cost.model_flops(vit.config) + stem + embedding
    assert cost.forward_flops(vit.config) == cost.model_flops(vit.config)
    small = {**hybrid.config, "image_size": 16}
    assert cost.stem_flops(small) == stem / 4


def test_summary_train_gflop_counts_the_stem(tmp_path):
    summary = train(TrainConfig(**{**TINY, "epochs": 2, "low_res_epochs": 1, "low_res_size": 4}),
                    tmp_path / "run")
    model = from_training_checkpoint(read_training(tmp_path / "run" / "last.npz"))
    images = len(load_dataset("digits").hold_out(0.02)[0].train_labels)  # trained on
    assert images == 1437 - 29
    per_image = sum(cost.forward_flops({**model.config, "image_size": size}) for size in (4, 8))
    assert summary["train_gflop"] == round(3 * per_image * images / 1e9)
    assert train_module.train_gflop(TrainConfig(**{**TINY, "epochs": 2, "low_res_epochs": 1,
                                                   "low_res_size": 4}), model, images) * 1e9 == (
        pytest.approx(3 * per_image * images))


def test_the_hybrid_preset_costs_no_more_training_flops_than_cpu_hour():
    """The preset (a first guess, not tuned) scales cpu-hour's epochs to its FLOPs: 30 epochs at
    16 px and 11 at 32 against 34 and 12, within 1% of cpu-hour's 344 TFLOP and not above it."""
    _, hybrid = parse_args(["--preset", "hybrid"])
    _, vit = parse_args(["--preset", "cpu-hour"])
    assert hybrid.stem == "32,64" and hybrid.model == vit.model == "C-mini/4"
    assert hybrid.patch_size is None and hybrid.low_res_size == vit.low_res_size == 16
    models = (HybridViT.from_config("C-mini/4", num_classes=10, stem_widths=(32, 64)),
              ViT.from_config("C-mini/4", num_classes=10))
    flops = [train_module.train_gflop(config, model, 49_000)
             for config, model in zip((hybrid, vit), models)]
    assert round(flops[1]) == 343_704 and 0.99 * flops[1] < flops[0] <= flops[1], flops


def test_a_stem_replaces_the_presets_patch_size_but_not_a_given_one():
    """--dataset digits takes the digits preset, whose patch size 2 a stem sets instead; a
    --patch-size given beside --stem is kept, for setup to refuse, naming both."""
    _, config = parse_args(["--dataset", "digits", "--stem", "16"])
    assert config.patch_size is None and config.stem == "16" and config.dim == 64
    _, config = parse_args(["--dataset", "digits", "--stem", "16", "--patch-size", "2"])
    with pytest.raises(train_module.ConfigError, match="--patch-size and --stem cannot be given"):
        train_module.setup(config, "unused", False, train_module.distributed.World())


STRICT_CUPY = ROOT / "tests" / "strict_cupy"


def test_a_hybrid_trains_resumes_and_is_read_on_the_gpu_code_path(tmp_path):
    """train (with a low-resolution epoch), resume, evaluate and inspect with --device gpu on the
    strict CuPy stand-in, where any implicit copy of a device array to the host raises."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(STRICT_CUPY), str(ROOT)])}

    def run(module, *args):
        result = subprocess.run([sys.executable, "-m", f"minivit.{module}", *map(str, args)],
                                capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        return result.stdout

    flags = ["--dataset", "digits", "--stem", "8", "--dim", "16", "--depth", "1", "--heads", "2",
             "--mlp-dim", "32", "--batch-size", "128", "--low-res-epochs", "1",
             "--low-res-size", "4", "--device", "gpu", "--out", tmp_path, "--name", "run"]
    first = run("train", *flags, "--epochs", "2")
    resumed = run("train", "--resume", tmp_path / "run", "--epochs", "3")
    assert "| gpu |" in first and "epoch   2/2" in first and "epoch   3/3" in resumed
    assert "(epoch 3) on digits test" in run("evaluate", tmp_path / "run" / "last.npz",
                                             "--device", "gpu")
    run("inspect", tmp_path / "run" / "last.npz", "--device", "gpu", "--out", tmp_path / "fig",
        "--images", "16", "--show", "4")
    assert json.loads((tmp_path / "fig" / "summary.json").read_text())["grid"] == 4


def test_a_hybrid_epoch_on_the_stand_in_reads_the_device_once(strict_cupy):
    """Three steps of a hybrid on the strict CuPy stand-in: the convolutions, GroupNorm and
    max-pool add no sync (one read at the epoch's end, as for the ViT) and no copy but a batch's."""
    config = TrainConfig(**{**TINY, "batch_size": 8, "threads": 1, "device": "gpu"})
    rng = np.random.default_rng(0)
    images = backend.to_device(rng.integers(0, 17, (24, 1, 8, 8)).astype(np.float32), "gpu")
    labels = backend.to_device(rng.integers(0, 10, 24), "gpu")
    model = HybridViT(image_size=8, in_channels=1, stem_widths=(8,), dim=16, depth=1, heads=2,
                      mlp_dim=32).to("gpu")
    optimizer = make_optimizer(config, model)
    train_epoch(model, optimizer, images, labels, (8.0,), (6.0,), config, epoch=0)
    strict_cupy.counts.reset()
    train_epoch(model, optimizer, images, labels, (8.0,), (6.0,), config, epoch=1)
    totals = strict_cupy.counts.totals()
    assert totals["syncs"] == 1 and totals["copies"] <= 3, totals


@needs_mpi
def test_two_processes_train_a_hybrid_bitwise_as_one_process_with_two_threads(tmp_path):
    """As test_distributed's ViT case: 1 thread on each of 2 ranks against 2 threads in one
    process, the same float32 weights, stem included, bit for bit."""
    tiny = ["--dataset", "digits", "--stem", "8", "--dim", "16", "--depth", "1", "--heads", "2",
            "--mlp-dim", "32", "--epochs", "2", "--batch-size", "128"]
    mpi = launch(2, "-m", "minivit.train", *tiny, "--threads", "1", "--out", tmp_path, "--name", "mpi")
    one = launch(1, "-m", "minivit.train", *tiny, "--threads", "2", "--out", tmp_path, "--name", "one")
    assert mpi.returncode == 0 and one.returncode == 0, mpi.stderr + one.stderr
    a, b = (read_training(tmp_path / name / "last.npz").model for name in ("mpi", "one"))
    assert "patch_embed.stem.0.layers.0.conv.weight" in a and a.keys() == b.keys()
    assert all(np.array_equal(a[name], b[name]) for name in a)
