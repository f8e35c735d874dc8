"""The training CLI: a run directory with everything in it, exact resume, clear errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from minivit import parallel
from minivit import train as train_module
from minivit.checkpoint import load_arrays
from minivit.data import load_dataset
from minivit.train import TrainConfig, train

TINY = dict(dataset="digits", model="C-micro/4", dim=16, depth=1, heads=2, mlp_dim=32,
            patch_size=4, epochs=3, batch_size=256, lr=3e-3, warmup_epochs=1, augment="none",
            dropout=0.1)


def model_arrays(path):
    return {k: v for k, v in load_arrays(path).items() if k.startswith(("model/", "optimizer/"))}


def test_a_run_writes_its_directory(tmp_path):
    summary = train(TrainConfig(**TINY), tmp_path / "run")
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "metrics.csv", "summary.json", "last.npz", "best.npz", "curves.png"} <= files
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["threads"] == parallel.cpu_count()  # 0 (every core) is recorded as a number
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert lines[0] == ("epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,"
                        "test_loss,test_accuracy,lr,seconds,images_per_second") and len(lines) == 1 + 3
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 3
    assert 0.1 < summary["best_test_accuracy"] <= 1


def stop_in_epoch_two_and_resume(config, run_dir, monkeypatch):
    """Train `config` into run_dir, stopped (as Ctrl-C would) at the first evaluation of epoch
    2, after epoch 1's checkpoint; then resume it to the end."""
    calls = []
    real_evaluate = train_module.evaluate

    per_epoch = 2 if config.validation else 1  # the test set, and the validation split

    def interrupted_evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == per_epoch + 1:  # the first evaluation of epoch 2
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", interrupted_evaluate)
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir)
    assert int(load_arrays(run_dir / "last.npz")["epoch"]) == 1
    monkeypatch.setattr(train_module, "evaluate", real_evaluate)
    train(config, run_dir, resume=True)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("low_res_epochs", [0, 1])
def test_a_resumed_run_ends_with_the_same_weights(tmp_path, monkeypatch, low_res_epochs, threads):
    """Stop a run in its second epoch (as Ctrl-C would), resume it: the final weights and
    optimizer state equal those of an uninterrupted run, bit for bit, in one thread or with each
    batch split between two. With low_res_epochs=1 the run is resumed right where it moves from
    4 px to 8 px images."""
    config = TrainConfig(**{**TINY, "patch_size": 2, "low_res_epochs": low_res_epochs,
                            "low_res_size": 4, "threads": threads})
    train(config, tmp_path / "straight")

    stop_in_epoch_two_and_resume(config, tmp_path / "stopped", monkeypatch)

    straight, resumed = (model_arrays(tmp_path / d / "last.npz") for d in ("straight", "stopped"))
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)


def poison_after(steps, monkeypatch):
    """Training steps after the first `steps` report a NaN loss (their gradients are real)."""
    real = train_module.parallel.loss_and_gradients
    calls = []

    def poisoned(*args):
        calls.append(1)
        loss, logits = real(*args)
        return (float("nan") if len(calls) > steps else loss), logits

    monkeypatch.setattr(train_module.parallel, "loss_and_gradients", poisoned)


def test_a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    poison_after(6, monkeypatch)  # epoch 1 has 6 steps
    with pytest.raises(train_module.Diverged, match="the loss became nan at epoch 2"):
        train(TrainConfig(**TINY), tmp_path / "run")
    assert int(load_arrays(tmp_path / "run" / "last.npz")["epoch"]) == 1


def test_a_stopped_run_leaves_curves_of_every_finished_epoch(tmp_path, monkeypatch):
    """Curves are redrawn at most every 20 s while training, and once more however it ends."""
    plotted = []
    poison_after(12, monkeypatch)
    monkeypatch.setattr(train_module, "plot_curves", lambda rows, path: plotted.append(len(rows)))
    with pytest.raises(train_module.Diverged, match="at epoch 3"):
        train(TrainConfig(**TINY), tmp_path / "run")
    assert plotted == [1, 2]  # after epoch 1, then (within 20 s of it) only when the run stopped


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "minivit.train", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "mnist"], "error: unknown data set 'mnist'"),
    (["--dataset", "digits", "--model", "Z/3"], "error: unknown config 'Z/3'"),
    (["--dataset", "digits", "--patch-size", "3"], "error: image size 8 is not divisible by patch size 3"),
    (["--resume", "no/such/run"], "error: nothing to resume in 'no/such/run'"),
    (["--dataset", "digits", "--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
    (["--dataset", "digits", "--threads", "-1"], "error: --threads must be at least 0, not -1"),
])
def test_wrong_arguments_end_with_one_line_and_no_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_gpu_without_a_gpu_is_one_line(tmp_path):
    import minivit
    if minivit.gpu_available():
        pytest.skip("this machine has a GPU")
    result = run_cli("--dataset", "digits", "--device", "gpu", "--out", str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: device 'gpu' needs")


def test_fine_tuning_at_a_higher_resolution(tmp_path):
    """Pre-train at 8 px, fine-tune at 16 px with the same patch size: the position embeddings
    are interpolated to the 8 x 8 grid, the head starts at zero, SGD with clipping runs."""
    from minivit.finetune import main as finetune
    from minivit.pretrained import from_pretrained
    train(TrainConfig(**{**TINY, "patch_size": 2, "epochs": 1}), tmp_path / "pre")
    summary = finetune([str(tmp_path / "pre" / "last.npz"), "--dataset", "digits",
                        "--image-size", "16", "--epochs", "1", "--out", str(tmp_path),
                        "--name", "fine"])
    config = json.loads((tmp_path / "fine" / "config.json").read_text())
    assert config["optimizer"] == "sgd" and config["clip_norm"] == 1.0 and config["image_size"] == 16
    model = from_pretrained(tmp_path / "fine" / "last.npz")
    assert model.pos_embed.shape == (1, 1 + 8 * 8, 16) and summary["epochs"] == 1


def test_fine_tuning_normalises_as_the_checkpoint_was_trained(tmp_path, monkeypatch):
    """Official and timm weights saw pixels in [-1, 1] (mean = std = 0.5): fine-tuning them feeds
    the same; a minivit.train checkpoint keeps its own normalisation."""
    from minivit.finetune import main as finetune
    from minivit.pretrained import from_pretrained, save_pretrained
    train(TrainConfig(**{**TINY, "patch_size": 2, "epochs": 1}), tmp_path / "pre")
    save_pretrained(from_pretrained(tmp_path / "pre" / "last.npz"), tmp_path / "official.npz")
    seen = []
    real_evaluate = train_module.evaluate
    monkeypatch.setattr(train_module, "evaluate",
                        lambda model, images, labels, mean, std, threads, **kwargs: seen.append(
                            (mean, std)) or real_evaluate(model, images, labels, mean, std, threads))
    for source, name in ((tmp_path / "official.npz", "official"), (tmp_path / "pre" / "last.npz", "own")):
        finetune([str(source), "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path),
                  "--name", name])
    train_module.main(["--dataset", "digits", "--model", "custom", "--dim", "16", "--depth", "1",
                       "--heads", "2", "--mlp-dim", "32", "--patch-size", "2", "--epochs", "1",
                       "--init", str(tmp_path / "official.npz"), "--out", str(tmp_path),
                       "--name", "init"])
    config = {name: json.loads((tmp_path / name / "config.json").read_text())
              for name in ("official", "own", "init")}
    assert config["official"]["normalize"] == "half" and config["own"]["normalize"] == "dataset"
    assert config["init"]["normalize"] == "half"                 # minivit.train --init does the same
    # two evaluations a run (the validation split and the test set), digits: one channel
    assert seen[0] == seen[1] == ((0.5,), (0.5,))
    digits = load_dataset("digits")
    assert seen[2] == seen[3] == (digits.mean, digits.std) and digits.std[0] != 0.5


def test_fine_tuning_starts_from_the_pretrained_weights_with_a_zero_head(tmp_path, monkeypatch):
    from minivit.pretrained import from_pretrained
    train(TrainConfig(**{**TINY, "patch_size": 2, "epochs": 1}), tmp_path / "pre")
    pre = from_pretrained(tmp_path / "pre" / "last.npz")
    seen = {}
    real_evaluate = train_module.evaluate

    def first_evaluate(model, *args, **kwargs):
        seen.setdefault("blocks", model.blocks[0].attn.qkv.weight.data.copy())
        seen.setdefault("head", model.head.weight.data.copy())
        return real_evaluate(model, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", first_evaluate)
    config = TrainConfig(**{**TINY, "model": "custom", "patch_size": 2, "epochs": 1, "lr": 0.0,
                            "init": str(tmp_path / "pre" / "last.npz")})
    train(config, tmp_path / "fine")
    np.testing.assert_array_equal(seen["blocks"], pre.blocks[0].attn.qkv.weight.data)
    assert pre.head.weight.data.any() and not seen["head"].any()


def test_a_crash_between_the_checkpoint_and_metrics_csv_is_repaired_on_resume(tmp_path, monkeypatch):
    """Killed after epoch 2's checkpoint was written but before metrics.csv was, with a
    half-written checkpoint beside it: the resumed run takes epoch 2's row from the checkpoint,
    deletes the temporary file, and ends as an uninterrupted run does."""
    config = TrainConfig(**TINY)  # 3 epochs
    train(config, tmp_path / "straight")
    real_write_metrics = train_module.write_metrics
    calls = []

    def crash_on_the_second(path, rows):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_write_metrics(path, rows)

    monkeypatch.setattr(train_module, "write_metrics", crash_on_the_second)
    run = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        train(config, run)
    monkeypatch.setattr(train_module, "write_metrics", real_write_metrics)
    assert int(load_arrays(run / "last.npz")["epoch"]) == 2
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 1  # epoch 2's row lost
    (run / "last.npz.tmp-123").write_bytes(b"PK\x03\x04 half a checkpoint")
    train(config, run, resume=True)

    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]
    rows = {d: train_module.read_metrics(tmp_path / d / "metrics.csv", 99) for d in ("straight", "crashed")}
    assert [r["epoch"] for r in rows["crashed"]] == [1, 2, 3]
    for straight, resumed in zip(rows["straight"], rows["crashed"]):
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"):
            assert straight[key] == resumed[key], (straight["epoch"], key)
    straight, resumed = (model_arrays(tmp_path / d / "last.npz") for d in ("straight", "crashed"))
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_run_directory(tmp_path, monkeypatch):
    """Refused while setting up, or diverged in its first epoch: nothing to resume, so no folder
    that a later run of the same name would be refused for; a folder that was there stays."""
    with pytest.raises(train_module.ConfigError, match="not divisible by patch size 3"):
        train(TrainConfig(**{**TINY, "patch_size": 3}), tmp_path / "runs" / "refused")
    assert not (tmp_path / "runs").exists()
    poison_after(0, monkeypatch)
    (tmp_path / "mine").mkdir()
    for run_dir in (tmp_path / "runs" / "diverged", tmp_path / "mine"):
        with pytest.raises(train_module.Diverged, match="at epoch 1: try a lower --lr$"):
            train(TrainConfig(**TINY), run_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_best_is_chosen_on_a_validation_split_never_on_the_test_set(tmp_path):
    """2% of the training images are held out (the same ones in every run); best.npz is the
    epoch with the best validation accuracy, and the summary reports the final model's test
    accuracy and best.npz's, saying what chose it."""
    data = load_dataset("digits")
    rest, (images, labels) = data.hold_out(0.1)
    assert len(labels) == 144 and len(rest.train_labels) == len(data.train_labels) - 144
    assert (rest.mean, rest.std) == (data.mean, data.std)  # as minivit.evaluate will normalise
    again = data.hold_out(0.1)[1][0]
    np.testing.assert_array_equal(images, again)
    summary = train(TrainConfig(**{**TINY, "epochs": 4, "validation": 0.1}), tmp_path / "run")
    rows = train_module.read_metrics(tmp_path / "run" / "metrics.csv", 99)
    best = max(rows, key=lambda row: (row["validation_accuracy"], -row["validation_loss"]))
    assert summary["best_chosen_on"] == "validation" and summary["best_epoch"] == best["epoch"]
    assert summary["best_test_accuracy"] == best["test_accuracy"]
    assert summary["final_test_accuracy"] == rows[-1]["test_accuracy"]
    assert int(load_arrays(tmp_path / "run" / "best.npz")["epoch"]) == best["epoch"]
    none = train(TrainConfig(**{**TINY, "validation": 0.0}), tmp_path / "none")
    assert none["best_chosen_on"] == "test" and none["best_validation_accuracy"] is None


@pytest.mark.parametrize("option", [dict(mixup=0.4), dict(cutmix=1.0), dict(mixup=0.4, cutmix=1.0)],
                         ids=["mixup", "cutmix", "either"])
def test_mixup_and_cutmix_blend_two_images_and_their_two_losses_by_the_same_lam(option):
    from minivit import Tensor, ops

    config = TrainConfig(**{**TINY, "label_smoothing": 0.1, **option})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 1, 8, 8))
    y = np.arange(6)                                      # label i is image i: the pairs show
    for seed in range(5):
        mixed, targets, loss_fn = train_module.training_targets(x, y, config, np.random.default_rng(seed))
        assert targets.shape == (6, 2) and np.array_equal(targets[:, 0], y)
        partner = targets[:, 1]
        assert sorted(partner) == list(y)                 # a permutation of the batch
        other = x[partner]
        moved = partner != y
        if not moved.any():
            continue
        lam = ((mixed[moved] - other[moved]) / (x[moved] - other[moved])).mean()
        if not np.allclose(mixed, lam * x + (1 - lam) * other):  # not mixup (one lam, every pixel):
            # CutMix: each pixel from its own image or from its partner's, in one box for the batch
            pasted = np.isclose(mixed, other) & ~np.isclose(mixed, x)
            assert np.all(np.isclose(mixed, x) | pasted)
            assert (pasted[moved] == pasted[moved][:1]).all()
            lam = 1 - pasted[moved][0].mean()
        logits = Tensor(rng.standard_normal((6, 10)))
        expected = (lam * ops.cross_entropy(logits, y, 0.1).item()
                    + (1 - lam) * ops.cross_entropy(logits, partner, 0.1).item())
        assert loss_fn(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_a_run_with_mixup_and_cutmix_learns(tmp_path):
    summary = train(TrainConfig(**{**TINY, "epochs": 4, "mixup": 0.2, "cutmix": 1.0}), tmp_path / "run")
    assert summary["final_test_accuracy"] > 0.3                       # ten classes: chance is 0.1
