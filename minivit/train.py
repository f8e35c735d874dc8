"""Train a ViT:  python -m minivit.train --dataset digits   (or --preset cpu-hour, --device gpu).

Everything a run needs is one plain TrainConfig; a preset fills it in and any flag overrides it.
A run directory gets config.json, metrics.csv (a row an epoch), summary.json, last.npz and
best.npz (model, optimizer, epoch and config, written atomically) and curves.png.
`--resume RUN_DIR` continues a stopped run from its last finished epoch; on the CPU it ends with
exactly the weights an uninterrupted run would have, because every epoch's randomness is seeded
from (seed, epoch) and the number of threads a batch is split between is kept in the config.
"""
import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
import warnings

import numpy as np
from tqdm import tqdm

import minivit
from minivit import backend, ops, parallel
from minivit.checkpoint import load_arrays, save_arrays
from minivit.data import DataError, load_dataset, resize
from minivit.data.loader import batches
from minivit.model import CONFIGS, ViT
from minivit.optim import SGD, AdamW, clip_grad_norm, param_groups, warmup_cosine
from minivit.pretrained import from_pretrained, trained_normalization


@dataclasses.dataclass
class TrainConfig:
    dataset: str = "cifar10"
    data_dir: str = "data"
    model: str = "C-S/4"          # a name from minivit.CONFIGS (the fields below override it),
                                  # or "custom" with every field below given
    dim: int = None
    depth: int = None
    heads: int = None
    mlp_dim: int = None
    patch_size: int = None
    image_size: int = None        # default: the data set's own size
    pool: str = "cls"
    gelu: str = "tanh"
    dropout: float = 0.0
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 3
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    low_res_epochs: int = 0       # train the first epochs on downsampled images (cheaper) ...
    low_res_size: int = 16        # ... of this size, then interpolate the position embeddings
    augment: str = "basic"        # none | crop | basic (crop + flip) | strong (+ random erasing)
    normalize: str = "dataset"    # dataset (its channel mean and std) | half (to [-1, 1])
    seed: int = 0
    device: str = "cpu"
    threads: int = 0              # CPU threads that share each batch (0: every core)
    out: str = "runs"
    init: str = None              # start from these weights (fine-tuning; see minivit.finetune)


PRESETS = {
    # 8x8 digits, 2 px patches (16 tokens); dropout keeps 1,437 images from being memorised
    "digits": dict(dataset="digits", model="C-micro/4", dim=64, depth=4, heads=4, mlp_dim=128,
                   patch_size=2, epochs=60, batch_size=64, lr=2e-3, warmup_epochs=4,
                   dropout=0.1, augment="none"),
    # 34 epochs on 16 px images (17 tokens, ~4x cheaper), then 12 at 32 px: an hour on 2 cores
    "cpu-hour": dict(dataset="cifar10", model="C-mini/4", epochs=46, low_res_epochs=34,
                     low_res_size=16, batch_size=128, lr=1e-3, warmup_epochs=2, augment="basic"),
    "gpu": dict(dataset="cifar10", model="C-S/4", dim=384, depth=7, heads=12, mlp_dim=768,
                epochs=200, batch_size=128, lr=1e-3, augment="strong", device="gpu"),
}

HELP = {
    "dataset": "digits (offline, 8x8), cifar10, cifar100, or folder:PATH (PATH/train/CLASS/*.png)",
    "data_dir": "where data sets are downloaded and cached",
    "model": f"a named model: {', '.join(CONFIGS)}",
    "dim": "token width D (overrides the model's)", "depth": "number of encoder blocks",
    "heads": "attention heads", "mlp_dim": "hidden width of each MLP",
    "patch_size": "patch side P in pixels; must divide the image size",
    "image_size": "input side in pixels (default: the data set's)",
    "pool": "cls (classify the class token) or gap (average the tokens)",
    "gelu": "tanh (the paper's code) or erf (exact, as timm)",
    "init": "start from the weights of this checkpoint (head replaced, position embeddings "
    "interpolated): a minivit.train checkpoint, an official .npz or a timm .safetensors",
    "dropout": "dropout rate", "epochs": "passes over the training set",
    "batch_size": "images per step", "optimizer": "adamw or sgd (momentum 0.9)",
    "lr": "peak learning rate", "weight_decay": "decoupled weight decay (not on biases, norms, "
    "position embeddings, class token)", "warmup_epochs": "linear warmup, then cosine decay",
    "low_res_epochs": "train this many epochs first on images downsampled to --low-res-size "
    "(4x fewer tokens at half the size), then go on at full size with the position embeddings "
    "interpolated", "low_res_size": "image size of the low-resolution epochs",
    "label_smoothing": "label smoothing of the cross-entropy", "clip_norm": "clip gradients to "
    "this global norm (0: off)", "augment": "none, crop (random crop), basic (crop + flip) or strong "
    "(basic + random erasing)",
    "normalize": "dataset (each channel to mean 0, std 1) or half (pixels to [-1, 1] with mean "
    "and std 0.5, as the official and timm checkpoints were trained); with --init the default "
    "is what the checkpoint was trained with",
    "seed": "random seed (same seed and --threads, same run on the CPU)",
    "device": "cpu (NumPy) or gpu (CuPy)",
    "threads": "CPU threads; each batch is split between them (0: one for every core)",
    "out": "parent folder of the run directory",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m minivit.train", description="Train a Vision Transformer with minivit.")
    parser.add_argument("--preset", choices=PRESETS, help="a named set of defaults: "
                        "digits (under a minute on a CPU), cpu-hour (CIFAR-10, 2 CPU cores, 1 h), "
                        "gpu (CIFAR-10 on one GPU)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run")
    parser.add_argument("--name", help="run directory name (default: dataset-model-time)")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        kind = {int: int, float: float, str: str}[field.type]
        flag = "--" + field.name.replace("_", "-")
        choices = {"optimizer": ["adamw", "sgd"], "augment": ["none", "crop", "basic", "strong"],
                   "device": ["cpu", "gpu"], "pool": ["cls", "gap"],
                   "gelu": ["tanh", "erf"], "normalize": ["dataset", "half"]}.get(field.name)
        parser.add_argument(flag, type=kind, default=None, choices=choices,
                            help=f"{HELP[field.name]} (default {getattr(defaults, field.name)})")
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None and k in TrainConfig.__annotations__}
    if args.dataset == "digits" and args.preset is None and not args.resume:
        args.preset = "digits"  # the offline first run works with no other flag
    config = TrainConfig(**{**PRESETS.get(args.preset, {}), **given})
    return args, config


def build_model(config, in_channels, num_classes):
    fields = {k: getattr(config, k) for k in ("dim", "depth", "heads", "mlp_dim", "patch_size",
                                               "image_size") if getattr(config, k) is not None}
    options = dict(in_channels=in_channels, num_classes=num_classes, pool=config.pool,
                   gelu=config.gelu, dropout=config.dropout, **fields)
    if config.model == "custom":
        return ViT(**options)
    return ViT.from_config(config.model, **options)


def evaluate(model, images, labels, mean, std, threads=0):
    """Loss, accuracy and the predicted labels (NumPy) of a test set, the model in eval mode
    (and at its current resolution)."""
    model.eval()
    total_loss, predictions = 0.0, []
    with parallel.blas_per_thread(threads):  # predict records no graph
        for x, y in batches(images, labels, 256, mean=mean, std=std):
            logits = parallel.predict(model, resize(x, model.patch_embed.image_size), threads)
            total_loss += ops.cross_entropy(logits, y).item() * len(y)
            predictions.append(logits.argmax(axis=1))
    xp = backend.get_array_module(labels)
    predicted = xp.concatenate(predictions)
    correct = backend.to_device(predicted == labels, "cpu")
    return total_loss / len(labels), float(correct.mean()), backend.to_device(predicted, "cpu")


def save_checkpoint(path, model, optimizer, epoch, config, best_accuracy):
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer/{k}": v for k, v in optimizer.state_dict().items()})
    arrays.update(epoch=epoch, best_accuracy=best_accuracy, seed=config.seed,
                  image_size=model.patch_embed.image_size, model_config=json.dumps(model.config),
                  config=json.dumps(dataclasses.asdict(config)))
    save_arrays(path, arrays)


def load_checkpoint(path, model, optimizer=None):
    """Returns (epochs done, best accuracy). Model (and optimizer) state is loaded in place."""
    arrays = load_arrays(path)
    model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
    if optimizer is not None:
        optimizer.load_state_dict({k[10:]: v for k, v in arrays.items() if k.startswith("optimizer/")})
    return int(arrays["epoch"]), float(arrays["best_accuracy"])


def normalization(config, data):
    """The per-channel (mean, std) that batches are normalised with, in [0, 1] pixel units."""
    if config.normalize == "half":
        return (0.5,) * len(data.mean), (0.5,) * len(data.std)
    return data.mean, data.std


def plot_curves(rows, path):
    """Loss and accuracy against epoch, train and test, in one PNG."""
    from matplotlib.figure import Figure  # off-screen: leaves pyplot and notebooks alone
    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(10, 3.8))
    left, right = fig.subplots(1, 2)
    for key, label in (("train_loss", "train"), ("test_loss", "test")):
        left.plot(epochs, [r[key] for r in rows], label=label)
    for key, label in (("train_accuracy", "train"), ("test_accuracy", "test")):
        right.plot(epochs, [100 * r[key] for r in rows], label=label)
    left.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    right.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


def train(config, run_dir, resume=False, command=""):
    backend.check_device(config.device)
    folder = config.dataset.startswith("folder:")  # a folder's images are resized as they load
    data = load_dataset(config.dataset, data_dir=config.data_dir,
                        image_size=config.image_size if folder else None)
    image_size = config.image_size or data.train_images.shape[-1]  # batches are resized to it
    if config.threads < 0:
        raise ValueError(f"--threads must be 0 (one for every core) or more, not {config.threads}")
    # the number of shards decides the dropout masks and the order gradients are added in, so
    # it is fixed in the run's config: a run resumed on another machine stays the same run
    config = dataclasses.replace(config, image_size=image_size,
                                 threads=config.threads or parallel.cpu_count())
    backend.keep_freed_memory()
    last_path = os.path.join(run_dir, "last.npz")
    start_epoch = int(load_arrays(last_path)["epoch"]) if resume else 0
    low_res = config.low_res_epochs > 0 and start_epoch <= config.low_res_epochs
    minivit.manual_seed(config.seed)
    model = build_model(config if not low_res else
                        dataclasses.replace(config, image_size=config.low_res_size),
                        data.train_images.shape[1], len(data.classes))
    if config.init and not resume:
        source = from_pretrained(config.init, num_classes=len(data.classes),
                                 image_size=model.patch_embed.image_size)
        head = {f"head.{name}": p.data for name, p in model.head.named_parameters()}  # zeros
        model.load_state_dict({**source.state_dict(), **head})
    model.to(config.device)
    groups = param_groups(model, config.weight_decay)
    optimizer = (AdamW(groups, config.lr) if config.optimizer == "adamw"
                 else SGD(groups, config.lr, momentum=0.9))
    to_device = lambda a: backend.to_device(a, config.device)  # noqa: E731
    train_images, train_labels = to_device(data.train_images), to_device(data.train_labels)
    test_images, test_labels = to_device(data.test_images), to_device(data.test_labels)
    mean, std = normalization(config, data)
    loss_fn = lambda logits, y: ops.cross_entropy(logits, y, config.label_smoothing)  # noqa: E731

    os.makedirs(run_dir, exist_ok=True)
    metrics_path = os.path.join(run_dir, "metrics.csv")
    best_accuracy, rows = 0.0, []
    if resume:
        start_epoch, best_accuracy = load_checkpoint(last_path, model, optimizer)
        with open(metrics_path) as f:
            rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)][:start_epoch]
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)

    steps_per_epoch = math.ceil(len(data.train_labels) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)
    print(f"{data.name}: {len(data.train_labels)} train / {len(data.test_labels)} test images "
          f"{tuple(data.train_images.shape[1:])}, {len(data.classes)} classes | model "
          f"{model.num_parameters():,} parameters | {config.device} | run {run_dir}")
    train_seconds = sum(r["seconds"] for r in rows)
    last_plot = -math.inf
    blas = parallel.blas_per_thread(config.threads)  # from here to `finally` (see minivit.parallel)
    try:
        for epoch in range(start_epoch, config.epochs):
            # every epoch's randomness comes from (seed, epoch): a resumed run replays it exactly
            minivit.manual_seed(config.seed * 100_003 + epoch)
            rng = np.random.default_rng([config.seed, epoch])
            if epoch == config.low_res_epochs and model.patch_embed.image_size != image_size:
                model.resize(image_size)  # from here on at full resolution
                optimizer.forget(model.pos_embed)
            model.train()
            seen = correct = 0
            loss_sum = 0.0
            start = time.perf_counter()
            bar = tqdm(batches(train_images, train_labels, config.batch_size, shuffle=True, rng=rng,
                               augment=config.augment, mean=mean, std=std),
                       total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}",
                       leave=False, dynamic_ncols=True, file=sys.stdout, mininterval=0.5,
                       disable=not sys.stdout.isatty())  # a log file gets the epoch lines only
            for step, (x, y) in enumerate(bar, start=epoch * steps_per_epoch):
                optimizer.lr = warmup_cosine(step, total_steps, warmup_steps, config.lr)
                optimizer.zero_grad()
                loss, logits = parallel.loss_and_gradients(  # forward and backward, on every core
                    model, loss_fn, resize(x, model.patch_embed.image_size), y, config.threads)
                if not math.isfinite(loss):
                    raise Diverged(f"the loss became {loss} at epoch {epoch + 1}; the last good "
                                   f"checkpoint is {os.path.join(run_dir, 'last.npz')}: try a "
                                   "lower --lr")
                if config.clip_norm:
                    clip_grad_norm(model.parameters(), config.clip_norm)
                optimizer.step()
                seen += len(y)
                loss_sum += loss * len(y)
                correct += int((logits.argmax(axis=1) == y).sum())
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                                img_s=f"{seen / (time.perf_counter() - start):.0f}")
            seconds = time.perf_counter() - start
            test_loss, test_accuracy, _ = evaluate(model, test_images, test_labels, mean, std,
                                                   config.threads)
            rows.append(dict(epoch=epoch + 1, train_loss=loss_sum / seen, train_accuracy=correct / seen,
                             test_loss=test_loss, test_accuracy=test_accuracy, lr=optimizer.lr,
                             seconds=seconds, images_per_second=seen / seconds))
            train_seconds += seconds
            best = test_accuracy > best_accuracy
            best_accuracy = max(best_accuracy, test_accuracy)
            save_checkpoint(os.path.join(run_dir, "last.npz"), model, optimizer, epoch + 1, config,
                            best_accuracy)
            if best:
                save_checkpoint(os.path.join(run_dir, "best.npz"), model, optimizer, epoch + 1, config,
                                best_accuracy)
            write_metrics(metrics_path, rows)
            if time.perf_counter() - last_plot > 20:  # a plot costs ~0.3 s: not after every short epoch
                plot_curves(rows, os.path.join(run_dir, "curves.png"))
                last_plot = time.perf_counter()
            print(f"epoch {epoch + 1:3d}/{config.epochs} | train loss {rows[-1]['train_loss']:.4f} "
                  f"acc {100 * rows[-1]['train_accuracy']:5.2f}% | test loss {test_loss:.4f} "
                  f"acc {100 * test_accuracy:5.2f}% | {seconds:.1f}s, {seen / seconds:.0f} img/s")
    finally:  # finished, stopped or diverged: the curves show every finished epoch
        blas.restore_original_limits()
        if rows:
            plot_curves(rows, os.path.join(run_dir, "curves.png"))
    summary = dict(final_test_accuracy=rows[-1]["test_accuracy"], best_test_accuracy=best_accuracy,
                   epochs=config.epochs, train_seconds=train_seconds,
                   images_per_second=float(np.mean([r["images_per_second"] for r in rows])),
                   device=config.device, parameters=model.num_parameters(),
                   peak_memory_mib=round(backend.peak_memory_mib(config.device)), command=command)
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"test accuracy {100 * summary['final_test_accuracy']:.2f}% (best "
          f"{100 * best_accuracy:.2f}%) after {config.epochs} epochs, {train_seconds:.0f}s of "
          f"training, peak memory {summary['peak_memory_mib']} MiB | {run_dir}")
    return summary


def write_metrics(path, rows):
    temporary = path + ".tmp"
    with open(temporary, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def one_line_warnings():
    """Show warnings (e.g. a non-official archive) as one line, not with a source location."""
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"


def main(argv=None):
    args, config = parse_args(argv)
    one_line_warnings()
    run_dir = args.resume
    try:
        if args.resume:
            config_path = os.path.join(args.resume, "config.json")
            if not os.path.exists(os.path.join(args.resume, "last.npz")):
                raise FileNotFoundError(f"nothing to resume in {args.resume!r}: no last.npz there")
            with open(config_path) as f:
                config = TrainConfig(**json.load(f))
            run_dir = args.resume
        else:
            name = args.name or (f"{config.dataset.replace(':', '-').replace('/', '-')}-"
                                 f"{config.model.replace('/', '-')}-{time.strftime('%Y%m%d-%H%M%S')}")
            run_dir = os.path.join(config.out, name)
            if config.init and args.normalize is None:  # feed what the weights were trained on
                config = dataclasses.replace(config, normalize=trained_normalization(config.init))
        train(config, run_dir, resume=bool(args.resume),
              command=" ".join(["python -m minivit.train"] + sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(f"\nstopped; continue with: python -m minivit.train --resume {run_dir}")
    except (DataError, backend.DeviceError, minivit.CheckpointError, FileNotFoundError,
            Diverged, ValueError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
