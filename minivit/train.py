"""Train a ViT:  python -m minivit.train --dataset digits   (or --preset cpu-hour, --device gpu).

Everything a run needs is one plain TrainConfig, each option declared once below (its type,
default, choices and help); a preset fills some in and any flag overrides them. A run directory
gets config.json, metrics.csv (a row an epoch), summary.json, curves.png, and last.npz and
best.npz (training checkpoints, minivit.checkpoint). `--resume RUN_DIR` continues a stopped run
from its last finished epoch; on the CPU it ends with exactly the weights an uninterrupted run
would have, because every epoch's randomness is seeded from (seed, epoch) and the number of
threads a batch is split between is kept in the config. Fine-tuning is training that starts
from other weights: `--init CHECKPOINT --preset finetune`. `--stem 32,64` (or `--preset hybrid`)
trains the paper's hybrid instead, the ViT on the feature map of a small CNN (minivit.cnn).
"""
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
from minivit import backend, cli, distributed, memory, ops, parallel
from minivit.cost import forward_flops, matmul_peak
from minivit.checkpoint import ROW_KEYS, TrainingCheckpoint, read_training, write_training
from minivit.cnn import GROUPS, HybridViT
from minivit.data import batches, cutmix, load_dataset, mixup
from minivit.data.dataset import NORMALIZATIONS
from minivit.data.loader import AUGMENTATIONS
from minivit.errors import CheckpointError, ConfigError, Diverged, Error, MissingFile
from minivit.evaluation import evaluate
from minivit.model import CONFIGS, ViT
from minivit.optim import SGD, AdamW, param_groups, warmup_cosine
from minivit.pretrained import (from_pretrained, from_training_checkpoint,
                                trained_normalization)
from minivit.run_dir import created_folders, open_run_dir, remove_run_files, remove_unfinished


def option(default, help, choices=None, minimum=None, below=None, flag=True, check=None):
    """A TrainConfig field with its command-line help, its allowed values or range: at least
    `minimum` and (if given) below `below`; `check`, for a value of a form of its own: a
    function of the value that says what it should be, if it is not (None when it is fine).
    flag=False: recorded in the config, not a flag."""
    return dataclasses.field(default=default, metadata=dict(
        help=help, choices=choices, minimum=minimum, below=below, flag=flag, check=check))


def stem_widths(stem):
    """--stem '32,64' -> (32, 64): the channels of each stage of a hybrid's CNN stem."""
    return tuple(int(width) for width in stem.split(","))


def stem_problem(stem):
    """What --stem should be, if `stem` is not that (None when it is fine)."""
    try:
        widths = stem_widths(stem)
    except ValueError:
        widths = [0]
    if not all(width >= 1 for width in widths):
        return "the channels of each stem stage, positive integers separated by commas (e.g. 32,64)"
    if any(width % min(GROUPS, width) for width in widths):
        return (f"channels that GroupNorm's {GROUPS} groups split evenly (multiples of {GROUPS}, "
                f"or below {GROUPS})")
    return None


@dataclasses.dataclass
class TrainConfig:
    dataset: str = option("cifar10", "digits (offline, 8x8), cifar10, cifar100, cifar10:ARCHIVE "
                          "or folder:PATH (PATH/train/CLASS/*.png)")
    data_dir: str = option("data", "where data sets are downloaded and cached")
    model: str = option("C-S/4", f"a named model ({', '.join(CONFIGS)}; the options below "
                        "override it), or custom with each of them given")
    dim: int = option(None, "token width D", minimum=1)
    depth: int = option(None, "number of encoder blocks", minimum=1)
    heads: int = option(None, "attention heads", minimum=1)
    mlp_dim: int = option(None, "hidden width of each MLP", minimum=1)
    patch_size: int = option(None, "patch side P in pixels; must divide the image size", minimum=1)
    stem: str = option(None, "a hybrid (the paper's CNN features as tokens): the CNN stem's "
                       "channels per stage, comma-separated, e.g. 32,64; each stage (3x3 conv, "
                       "GroupNorm, ReLU, 2x2 max-pool) halves the resolution, and the tokens are "
                       "the positions of the last one's feature map: patch size 2^stages, so "
                       "--patch-size is not given (default: none, the plain ViT's linear patch "
                       "embedding)", check=stem_problem)
    stem_depth: int = option(1, "3x3 conv layers in each stage of the --stem", minimum=1)
    image_size: int = option(None, "input side in pixels (default: the data set's)", minimum=1)
    pool: str = option("cls", "classify the class token, or the average of the tokens",
                       choices=["cls", "gap"])
    gelu: str = option("tanh", "tanh (the paper's code) or erf (exact, as timm)",
                       choices=["tanh", "erf"])
    dropout: float = option(0.0, "dropout rate", minimum=0.0, below=1.0)
    init: str = option(None, "start from these weights (fine-tuning: a new zero head, position "
                       "embeddings interpolated): a minivit.train checkpoint, an official .npz or "
                       "a timm .safetensors")
    epochs: int = option(30, "passes over the training set", minimum=1)
    batch_size: int = option(128, "images per step", minimum=1)
    optimizer: str = option("adamw", "adamw, or sgd with momentum 0.9", choices=["adamw", "sgd"])
    lr: float = option(1e-3, "peak learning rate", minimum=0.0)
    weight_decay: float = option(0.05, "decoupled weight decay (not on biases, norms, position "
                                 "embeddings, class token)", minimum=0.0)
    warmup_epochs: float = option(3, "linear warmup, then cosine decay", minimum=0.0)
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy", minimum=0.0,
                                    below=1.0)
    clip_norm: float = option(1.0, "clip gradients to this global norm (0: off)", minimum=0.0)
    low_res_epochs: int = option(0, "train this many epochs first on images downsampled to "
                                 "--low-res-size (4x fewer tokens at half the size), then go on "
                                 "at full size with the position embeddings interpolated",
                                 minimum=0)
    low_res_size: int = option(16, "image size of the low-resolution epochs", minimum=1)
    validation: float = option(0.02, "fraction of the training images held out to choose "
                               "best.npz on (the test set never chooses; 0: no split, best.npz "
                               "chosen on the test set)", minimum=0.0, below=1.0)
    augment: str = option("basic", "none, crop (random crop), basic (crop + flip), strong "
                          "(basic + random erasing) or trivial (basic + TrivialAugment)",
                          choices=list(AUGMENTATIONS))
    mixup: float = option(0.0, "mixup's Beta(a, a) parameter a (0: off)", minimum=0.0)
    cutmix: float = option(0.0, "CutMix's Beta(a, a) parameter a (0: off; with --mixup, one of "
                           "the two at random for each batch)", minimum=0.0)
    normalize: str = option("dataset", "dataset (each channel to mean 0, std 1) or half (pixels "
                            "to [-1, 1], as the official and timm weights were trained); with "
                            "--init the default is what the checkpoint was trained with",
                            choices=list(NORMALIZATIONS))
    seed: int = option(0, "random seed (same seed and --threads, same run on the CPU)",
                       minimum=0)
    device: str = option("cpu", cli.DEVICE_HELP, choices=list(backend.DEVICES))
    threads: int = option(0, "CPU threads; each batch is split between them (0: one for every "
                          "core, shared by the processes on a machine)", minimum=0)
    out: str = option("runs", "parent folder of the run directory")
    processes: int = option(1, "processes training together (mpiexec -n N; see "
                            "minivit.distributed)", flag=False)


ARCHITECTURE = ("dim", "depth", "heads", "mlp_dim", "patch_size")
TRANSFORMER = ARCHITECTURE[:-1]  # what a hybrid takes of them: its stem sets the patch size
# options added since the first runs, as those runs had them (a resumed old run keeps them)
BEFORE = dict(validation=0.0, mixup=0.0, cutmix=0.0, processes=1)
# what a resumed run may change: it stays the same run, only longer, elsewhere or on another device
RESUMABLE = ("epochs", "data_dir", "device")

PRESETS = {
    # 8x8 digits, 2 px patches (16 tokens); dropout keeps 1,437 images from being memorised
    "digits": dict(dataset="digits", model="C-micro/4", dim=64, depth=4, heads=4, mlp_dim=128,
                   patch_size=2, epochs=60, batch_size=64, lr=2e-3, warmup_epochs=4,
                   dropout=0.1, augment="none"),
    # 34 epochs on 16 px images (17 tokens, ~4x cheaper), then 12 at 32 px: an hour on 2 cores
    "cpu-hour": dict(dataset="cifar10", model="C-mini/4", epochs=46, low_res_epochs=34,
                     low_res_size=16, batch_size=128, lr=1e-3, warmup_epochs=2, augment="basic"),
    # the paper's hybrid on 2 cores: cpu-hour's transformer on the tokens of a 32,64 CNN stem
    # (8 x 8 of them at 32 px, 4 x 4 at 16, as cpu-hour's patches). NOT TUNED YET: a first
    # guess, cpu-hour's settings with its epochs scaled down to cpu-hour's training FLOPs.
    # Forward MFLOP per image (minivit.cost.forward_flops): C-mini/4 116.0 at 32 px, 27.8 at 16;
    # the hybrid 127.5 and 30.7, its stem 11.2 and 2.8 of them. Per image over the run:
    # 30 x 30.7 + 11 x 127.5 = 2,323 MFLOP, against cpu-hour's 34 x 27.8 + 12 x 116.0 = 2,338;
    # x 3 (forward and backward) x 49,000 images: 341.5 against 343.7 TFLOP (99.4%). The
    # convolutions run slower per FLOP than the matmuls (im2col's copies): expect more than
    # cpu-hour's hour until it is timed.
    "hybrid": dict(dataset="cifar10", model="C-mini/4", stem="32,64", epochs=41,
                   low_res_epochs=30, low_res_size=16, batch_size=128, lr=1e-3, warmup_epochs=2,
                   augment="basic"),
    "gpu": dict(dataset="cifar10", model="C-M/4", epochs=200, batch_size=128, lr=1e-3, augment="strong", device="gpu"),
    # the paper's fine-tuning: SGD with momentum, no weight decay, clipping at 1 (with --init)
    "finetune": dict(optimizer="sgd", lr=0.01, weight_decay=0.0, clip_norm=1.0, epochs=10,
                     warmup_epochs=1, batch_size=128, label_smoothing=0.0, augment="basic"),
}


# --- the options --------------------------------------------------------------------------------

def parse_args(argv=None):
    """(args, TrainConfig): the preset's values, overridden by the flags given."""
    presets = "; ".join(f"{name}: " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in values.items())
                        for name, values in PRESETS.items())
    parser = cli.ArgumentParser(
        prog="python -m minivit.train", description="Train a Vision Transformer with minivit.",
        epilog=f"A preset replaces the defaults above with its own values ({presets}). "
               "--dataset digits with no --preset takes the digits preset.")
    parser.add_argument("--preset", choices=PRESETS, help="a named set of defaults: digits "
                        "(under a minute on a CPU), cpu-hour (CIFAR-10, 2 CPU cores, 1 h), hybrid "
                        "(cpu-hour's transformer on a CNN stem's features, not tuned yet), gpu "
                        "(CIFAR-10 on one GPU), finetune (the paper's fine-tuning, with --init)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run")
    parser.add_argument("--name", help="run directory name (default: dataset-model-time)")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        if not field.metadata["flag"]:
            continue
        help, choices = field.metadata["help"], field.metadata["choices"]
        default = getattr(defaults, field.name)
        parser.add_argument("--" + field.name.replace("_", "-"), type=field.type, default=None,
                            choices=choices, metavar=None if choices else field.name.upper(),
                            help=help if default is None else f"{help} (default: {default})")
    parser.add_argument("--overwrite", action="store_true",
                        help="train into a run directory that holds an earlier run, replacing it")
    args = parser.parse_args(argv)
    args.given = {k: v for k, v in vars(args).items()
                  if v is not None and k in TrainConfig.__annotations__}
    for name, value in args.given.items():
        if (problem := out_of_range(name, value)):
            shown = repr(value) if isinstance(value, str) else value
            parser.error(f"--{name.replace('_', '-')} must be {problem}, not {shown}")
    if args.dataset == "digits" and args.preset is None and not args.resume:
        args.preset = "digits"  # the offline first run works with no other flag
    preset = PRESETS.get(args.preset, {})
    if args.given.get("stem", preset.get("stem")):  # the stem sets the patch size, not a preset
        preset = {k: v for k, v in preset.items() if k != "patch_size"}
    config = TrainConfig(**{**preset, **args.given})
    return args, config


def out_of_range(name, value):
    """What an option's value should be, if it is not (None when it is fine)."""
    minimum, below, check = (TrainConfig.__dataclass_fields__[name].metadata[k]
                             for k in ("minimum", "below", "check"))
    if check is not None:
        return check(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "a finite number"
    if minimum is not None and value < minimum:
        return f"at least {minimum}" + (f" and below {below}" if below is not None else "")
    if below is not None and value >= below:
        return f"below {below}"
    return None


def config_from(record, source):
    """A TrainConfig from a dict read back from a run (config.json, a checkpoint): unknown keys
    or wrong types raise ConfigError naming `source`."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = [key for key in record if key not in fields]
    if unknown:
        raise ConfigError(f"{source} has an option {unknown[0]!r} that minivit.train does not "
                          f"know: it was written by another version, or edited")
    for key, value in record.items():
        kind, choices = fields[key].type, fields[key].metadata["choices"]
        if value is None:
            continue
        if not (isinstance(value, kind) or kind is float and isinstance(value, int)) or (
                kind is int and isinstance(value, bool)):
            raise ConfigError(f"{source}: option {key!r} should be "
                              f"{'an int' if kind is int else 'a ' + kind.__name__}, not {value!r}")
        problem = (f"one of {', '.join(choices)}" if choices and value not in choices
                   else out_of_range(key, value))
        if problem:
            raise ConfigError(f"{source}: option {key!r} must be {problem}, not {value!r}")
    return TrainConfig(**{**BEFORE, **record})


# --- setting up: data, model, optimizer ------------------------------------------------------

def build_model(config, in_channels, num_classes, image_size):
    """A new ViT for `config` (with --stem a HybridViT: the named --model's transformer, or a
    custom one, on a CNN stem), or with --init the weights of a checkpoint under a new zero
    head."""
    if config.init:
        try:
            source = from_pretrained(config.init, num_classes=num_classes, image_size=image_size)
        except (TypeError, ValueError) as error:  # a model_config that builds no ViT
            if isinstance(error, Error):
                raise
            raise CheckpointError(f"--init {config.init}: its model_config cannot build a ViT "
                                  f"({error})") from None
        built = {**source.config, "patch_size": source.patch_embed.patch_size}  # a hybrid's too
        for name in ARCHITECTURE:
            if getattr(config, name) not in (None, built[name]):
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(config, name)} does not "
                                  f"match the --init checkpoint's {built[name]}: leave "
                                  "the architecture options out when fine-tuning")
        # ViT or HybridViT, as from_pretrained built it from the checkpoint
        model = type(source)(**{**source.config, "dropout": config.dropout})
        zero_head = {f"head.{name}": p.data for name, p in model.head.named_parameters()}
        return model.load_state_dict({**source.state_dict(), **zero_head})
    kind = HybridViT if config.stem else ViT
    fields = {k: getattr(config, k) for k in (TRANSFORMER if config.stem else ARCHITECTURE)
              if getattr(config, k) is not None}
    options = dict(in_channels=in_channels, num_classes=num_classes, image_size=image_size,
                   pool=config.pool, gelu=config.gelu, dropout=config.dropout, **fields)
    if config.stem:
        options.update(stem_widths=stem_widths(config.stem), stem_depth=config.stem_depth)
    try:
        if config.model == "custom":
            return kind(**options)
        return kind.from_config(config.model, **options)
    except (TypeError, ValueError) as error:  # a missing field of a custom model, P not dividing
        raise ConfigError(str(error)) from None


def make_optimizer(config, model):
    groups, clip_norm = param_groups(model, config.weight_decay), config.clip_norm or None
    if config.optimizer == "sgd":
        return SGD(groups, config.lr, momentum=0.9, clip_norm=clip_norm)
    return AdamW(groups, config.lr, clip_norm=clip_norm)  # clips the gradients, on the device


def setup(config, run_dir, resume, world):
    """(config completed, data set, (validation images, labels) or None, model, optimizer,
    checkpoint to resume from or None)."""
    backend.check_device(config.device)
    if config.stem and not resume:
        for other in ("patch_size", "init"):
            if getattr(config, other) is not None:
                why = ("the stem sets the patch size (2^stages)" if other == "patch_size" else
                       "the architecture, a hybrid's stem with it, comes from the checkpoint")
                raise ConfigError(f"--{other.replace('_', '-')} and --stem cannot be given "
                                  f"together: {why}; leave one out")
    if config.stem_depth != 1 and not config.stem:
        raise ConfigError(f"--stem-depth {config.stem_depth} needs --stem (the conv layers of "
                          "each stage of a hybrid's CNN stem)")
    needed = TRANSFORMER if config.stem else ARCHITECTURE
    missing = [f"--{k.replace('_', '-')}" for k in needed if getattr(config, k) is None]
    if config.model == "custom" and not config.init and missing and not resume:
        raise ConfigError(f"--model custom needs {', '.join(missing)} (or a named --model)")
    folder = config.dataset.startswith("folder:")  # a folder's images are resized as they load
    data = world.first_rank_first(lambda: load_dataset(  # rank 0 downloads, unpacks, caches
        config.dataset, data_dir=config.data_dir, image_size=config.image_size if folder else None))
    data, validation = data.hold_out(config.validation)
    # the number of shards decides the dropout masks and the order gradients are added in, so
    # it is fixed in the run's config: a run resumed on another machine stays the same run
    config = dataclasses.replace(config, image_size=config.image_size or data.train_images.shape[-1],
                                 threads=config.threads or parallel.cores_per_rank(world),
                                 processes=world.size)
    if config.low_res_epochs and config.low_res_size > config.image_size:
        raise ConfigError(f"--low-res-size {config.low_res_size} is larger than the image size "
                          f"{config.image_size}: it must be smaller")
    checkpoint = read_training(os.path.join(run_dir, "last.npz")) if resume else None
    trained_by = checkpoint.config.get("processes", 1) if checkpoint else world.size
    if trained_by != world.size:  # the processes decide the shards, and so the run
        raise ConfigError(f"{run_dir} was trained by {trained_by} process(es), not {world.size}: "
                          f"resume it with `{resume_command(run_dir, trained_by)}`")
    minivit.manual_seed(config.seed)
    if checkpoint:  # at the resolution it was saved at
        model = from_training_checkpoint(checkpoint)
    else:
        low_res = config.low_res_epochs > 0
        model = build_model(config, data.train_images.shape[1], len(data.classes),
                            config.low_res_size if low_res else config.image_size)
        patch = model.patch_embed.patch_size  # a hybrid's: its stem's stride
        if low_res and config.image_size % patch:  # refused now, not when the run gets there
            raise ConfigError(f"image size {config.image_size} is not divisible by the patch "
                              f"size {patch}, which the epochs after --low-res-epochs need")
    if config.device == "gpu" and world.size > 1:
        backend.cupy.cuda.Device(world.gpu()).use()
    model.to(config.device)
    world.check_same("minivit, configuration, data set or initial model", fingerprint(
        config, data, model))
    optimizer = make_optimizer(config, model)
    if checkpoint:
        optimizer.load_state_dict(checkpoint.optimizer)
    return config, data, validation, model, optimizer, checkpoint


# --- one epoch -----------------------------------------------------------------------------------

def fingerprint(config, data, model):
    """What every process of a run must agree on: minivit's source, the options, the data set,
    the initial weights (a short hash of each)."""
    record = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("out", "data_dir")}
    first = next(iter(model.parameters())).data
    parts = [distributed.source_hash(), json.dumps(record, sort_keys=True), data.name,
             str(data.train_images.shape), str(int(np.asarray(data.train_labels).sum())),
             str(float(backend.to_device(first, "cpu").astype(np.float64).sum()))]
    return "|".join(parts)


def train_epoch(model, optimizer, images, labels, mean, std, config, epoch, world=None):
    """One pass over the training set, a step per batch. Returns (mean loss, accuracy, images).

    The loss and the number of right answers are summed on the device, and read back (a sync on
    the GPU) only when the progress bar is redrawn, every READ_EVERY steps there, and at the end.
    world: the processes that train together (minivit.distributed), by default this one alone."""
    world = world or distributed.World()
    minivit.manual_seed(config.seed * 100_003 + epoch)  # every epoch's randomness comes from
    rng = np.random.default_rng([config.seed, epoch])   # (seed, epoch): a resume replays it
    steps_per_epoch = math.ceil(len(labels) / config.batch_size)
    total_steps, warmup_steps = steps_per_epoch * config.epochs, int(config.warmup_epochs * steps_per_epoch)
    xp = backend.get_array_module(images)
    # a read costs a CPU process nothing (check each step), but a GPU a sync and an MPI job a
    # second all-reduce: on the CPU an MPI job reads every READ_EVERY steps, a GPU only while a
    # progress bar is drawn (then every READ_EVERY steps), and each at the epoch's end
    read_every = 1 if xp is np and world.size == 1 else READ_EVERY
    model.train()
    seen, sums, start = 0, None, time.perf_counter()
    bar = tqdm(batches(images, labels, config.batch_size, shuffle=True, rng=rng, mean=mean, std=std,
                       augment=config.augment, size=model.image_size),
               total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
               dynamic_ncols=True, file=sys.stdout, mininterval=0.5,
               disable=world.rank > 0 or not sys.stdout.isatty())  # a log: epoch lines only
    for i, (x, y) in enumerate(bar):
        step = epoch * steps_per_epoch + i
        optimizer.lr = warmup_cosine(step, total_steps, warmup_steps, config.lr)
        optimizer.zero_grad()
        x, targets, loss_fn = training_targets(x, y, config, rng)
        # forward and backward, each batch split between the CPU's cores
        loss, logits = parallel.loss_and_gradients(model, loss_fn, x, targets, config.threads,
                                                   world)
        optimizer.step()  # clipping included
        if xp is not np:
            memory.note_gpu_pool()  # its size now: the pool can shrink before the run ends
        seen += len(y)
        # the loss is the whole batch's on every process; the right answers, this one's rows'
        mine = y[parallel.rank_rows(len(y), parallel.shard_threads(x, config.threads), world)]
        batch_sums = xp.stack([loss * len(y) * (world.rank == 0), (logits.argmax(axis=1) == mine).sum()])
        sums = batch_sums if sums is None else sums + batch_sums
        # a read is a collective under MPI: every process must decide it alike (no tty test)
        if (i + 1) % read_every == 0 and (xp is np or world.size == 1 and not bar.disable):
            loss_sum, correct = read_sums(world.sum(sums), epoch)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                            img_s=f"{seen / (time.perf_counter() - start):.0f}")
    loss_sum, correct = read_sums(world.sum(sums), epoch)
    return loss_sum / seen, correct / seen, seen


READ_EVERY = 25  # GPU steps between two reads of the running loss for the progress bar


def read_sums(sums, epoch):
    """(loss sum, right answers) read back to the host (one sync); a NaN or infinite loss stops
    the run."""
    loss_sum, correct = backend.to_device(sums, "cpu").tolist()
    if not math.isfinite(loss_sum):
        raise Diverged(f"the loss became {loss_sum} at epoch {epoch + 1}")
    return loss_sum, int(correct)


def training_targets(x, y, config, rng):
    """(images, targets, loss function of (logits, targets)): the labels with label smoothing,
    or with --mixup / --cutmix a blend of two images and the same blend of their two losses."""
    smoothing = config.label_smoothing
    if not (config.mixup or config.cutmix):
        return x, y, lambda logits, t: ops.cross_entropy(logits, t, smoothing)
    use_cutmix = config.cutmix > 0 and (config.mixup == 0 or rng.random() < 0.5)
    x, y, y_other, lam = (cutmix(x, y, rng, config.cutmix) if use_cutmix
                          else mixup(x, y, rng, config.mixup))
    targets = backend.get_array_module(y).stack([y, y_other], axis=1)   # B 2

    def mixed_loss(logits, t):
        return (lam * ops.cross_entropy(logits, t[:, 0], smoothing)
                + (1 - lam) * ops.cross_entropy(logits, t[:, 1], smoothing))
    return x, targets, mixed_loss


# --- the run's record: metrics, curves, checkpoints, summary -------------------------------------

def write_metrics(path, rows):
    """metrics.csv, a row an epoch, replaced atomically."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def read_metrics(path, epochs):
    """The first `epochs` rows of metrics.csv (a resumed run goes on from its checkpoint): the
    record of a checkpoint written before checkpoints carried their own rows (2026-12)."""
    try:
        with open(path) as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)][:epochs]
    except (OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"the checkpoint keeps no record of its epochs, and {path} cannot "
                              f"be read ({error}): this run cannot be resumed") from None
    if not all(set(ROW_KEYS) <= set(row) for row in rows):
        raise CheckpointError(f"the checkpoint keeps no record of its epochs, and {path} lacks "
                              f"some of {', '.join(ROW_KEYS)}: this run cannot be resumed")
    return rows


def plot_curves(rows, path):
    """Loss and accuracy against epoch, train and test, in one PNG."""
    from matplotlib.figure import Figure  # off-screen: leaves pyplot and notebooks alone
    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(10, 3.8))
    left, right = fig.subplots(1, 2)
    for key, label in (("train_loss", "train"), ("test_loss", "test")):
        left.plot(epochs, [r[key] for r in rows], label=label)
    for key, label in (("train_accuracy", "train"), ("validation_accuracy", "validation"),
                       ("test_accuracy", "test")):
        if key in rows[0]:
            right.plot(epochs, [100 * r[key] for r in rows], label=label)
    left.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    right.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def save_checkpoint(path, model, optimizer, config, best_accuracy, rows):
    write_training(path, TrainingCheckpoint(
        model=model.state_dict(), optimizer=optimizer.state_dict(), epoch=len(rows),
        best_accuracy=best_accuracy, config=dataclasses.asdict(config),
        model_config=model.config, metrics=rows))


def choice(row):
    """What best.npz is chosen by: the validation accuracy, a tie going to the lower validation
    loss (a small split often ties at 100%); without a split, the test accuracy (older runs).
    None: below any epoch."""
    if row is None:
        return (-math.inf, -math.inf)
    split = "validation" if "validation_accuracy" in row else "test"
    return (row[f"{split}_accuracy"], -row[f"{split}_loss"])


def train_gflop(config, model, images):
    """The run's training arithmetic: 3 x the forward FLOPs (the backward pass costs two
    forwards) of `images` images an epoch, at the low resolution for the first epochs; a
    hybrid's forward counts its CNN stem too (minivit.cost.forward_flops)."""
    low = min(config.low_res_epochs, config.epochs) if config.low_res_size != model.image_size else 0
    at = lambda size: 3 * forward_flops({**model.config, "image_size": size}) * images  # noqa: E731
    return (low * at(config.low_res_size) + (config.epochs - low) * at(model.image_size)) / 1e9


def write_summary(run_dir, rows, config, model, command, images, started):
    """summary.json: the final model's test accuracy (the figure to report), and best.npz's
    epoch, chosen on the validation set (or, without one, the test set), with its accuracies;
    the training seconds, the wall seconds of this invocation (setup, evaluation and records
    too), the training GFLOP, and the machine's float32 matmul peak measured now, which a time
    is read against (machines differ)."""
    chosen_on = "validation" if "validation_accuracy" in rows[-1] else "test"
    best = max(rows, key=choice)
    summary = dict(final_test_accuracy=rows[-1]["test_accuracy"], best_epoch=int(best["epoch"]),
                   best_chosen_on=chosen_on, best_test_accuracy=best["test_accuracy"],
                   best_validation_accuracy=best.get("validation_accuracy"),
                   epochs=config.epochs, train_seconds=sum(r["seconds"] for r in rows),
                   wall_seconds=time.perf_counter() - started,
                   train_gflop=round(train_gflop(config, model, images)),
                   matmul_peak_gflops=round(matmul_peak(backend.get_array_module(
                       model.parameters()[0].data)) / 1e9),
                   images_per_second=float(np.mean([r["images_per_second"] for r in rows])),
                   device=config.device, parameters=model.num_parameters(),
                   peak_memory_mib=round(memory.peak_memory_mib(config.device)), command=command)
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


# --- the run ---------------------------------------------------------------------------------------

def train(config, run_dir, resume=False, command="", overwrite=False):
    """Train as `config` says, writing everything into `run_dir`; with resume=True, go on from
    run_dir/last.npz (overwrite=True: replace a run already in run_dir). Returns the summary
    (also in summary.json). Started by `mpiexec -n N`, the N processes train together
    (minivit.distributed): rank 0 alone prints and writes the run directory."""
    world = distributed.world()
    if world.rank > 0:
        return train_into(config, run_dir, resume, command, overwrite, world)
    new_folders = created_folders(run_dir)
    with open_run_dir(run_dir, resume, overwrite):
        try:
            return train_into(config, run_dir, resume, command, overwrite, world)
        except BaseException:  # refused, stopped or diverged before its first epoch ended
            if new_folders:
                remove_unfinished(new_folders)
            raise


def train_into(config, run_dir, resume, command, overwrite, world):
    started = time.perf_counter()
    config, data, validation, model, optimizer, checkpoint = setup(config, run_dir, resume, world)
    memory.keep_freed_memory()
    path = lambda name: os.path.join(run_dir, name)  # noqa: E731
    leader = world.rank == 0      # the one process that prints and writes
    say = print if leader else (lambda *args, **kwargs: None)
    if overwrite and not resume and leader:  # only now that the new run is set up
        remove_run_files(run_dir)
    rows, best_accuracy = [], 0.0
    if checkpoint:
        best_accuracy = checkpoint.best_accuracy
        rows = checkpoint.metrics or read_metrics(path("metrics.csv"), checkpoint.epoch)
        if len(rows) != checkpoint.epoch:
            raise CheckpointError(f"{path('last.npz')} is at epoch {checkpoint.epoch}, but its "
                                  f"record has {len(rows)} epochs: this run cannot be resumed")
    best_row = max(rows, key=choice) if rows else None
    if leader:
        if checkpoint:
            write_metrics(path("metrics.csv"), rows)  # a row a crash lost after the checkpoint
        with open(path("config.json"), "w") as f:
            json.dump(dataclasses.asdict(config), f, indent=2)

    to_device = lambda a: backend.to_device(a, config.device)  # noqa: E731
    train_images, train_labels = to_device(data.train_images), to_device(data.train_labels)
    test_images, test_labels = to_device(data.test_images), to_device(data.test_labels)
    held_out = {"test": (test_images, test_labels)}  # evaluated after every epoch
    if validation:  # best.npz is chosen on it
        validation = [to_device(a) for a in validation]
        held_out = {"validation": validation, **held_out}
    mean, std = data.normalization(config.normalize)
    places = world.processes()  # a collective: every rank asks
    processes = f" | {world.size} processes x {config.threads} threads ({places})" if places else ""
    held = f" (+ {len(validation[1])} validation)" if validation else ""
    say(f"{data.name}: {len(data.train_labels)} train{held} / {len(data.test_labels)} test images "
        f"{tuple(data.train_images.shape[1:])}, {len(data.classes)} classes | model "
        f"{model.num_parameters():,} parameters | {config.device}{processes} | run {run_dir}")
    last_plot = -math.inf
    blas = parallel.blas_per_thread(config.threads, world.size)  # to `finally` (minivit.parallel)
    try:
        for epoch in range(len(rows), config.epochs):
            if epoch == config.low_res_epochs and model.image_size != config.image_size:
                model.resize(config.image_size)  # from here on at full resolution
                optimizer.forget(model.pos_embed)
            start = time.perf_counter()
            try:
                train_loss, train_accuracy, seen = train_epoch(
                    model, optimizer, train_images, train_labels, mean, std, config, epoch, world)
            except Diverged as error:
                raise Diverged(f"{error}: try a lower --lr" + (
                    f"; the last good checkpoint is {path('last.npz')}" if rows else "")) from None
            seconds = time.perf_counter() - start
            row = dict(epoch=epoch + 1, train_loss=train_loss, train_accuracy=train_accuracy,
                       **measure(model, held_out, mean, std, config, world), lr=optimizer.lr,
                       seconds=seconds, images_per_second=seen / seconds)
            rows.append(row)
            best = choice(row) > choice(best_row)  # best.npz: on the validation split
            best_row = row if best else best_row
            best_accuracy = max(best_accuracy, choice(row)[0])
            if leader:
                last_plot = record(run_dir, rows, best, model, optimizer, config, best_accuracy,
                                   last_plot)
            say(epoch_line(row, config.epochs))
    finally:  # finished, stopped or diverged: the curves show every finished epoch
        blas.restore_original_limits()
        if rows and leader:
            plot_curves(rows, path("curves.png"))
    if not leader:
        return None
    summary = write_summary(run_dir, rows, config, model, command, len(data.train_labels), started)
    print(f"test accuracy {100 * summary['final_test_accuracy']:.2f}% (best.npz: epoch "
          f"{summary['best_epoch']}, chosen on the {summary['best_chosen_on']} set, test accuracy "
          f"{100 * summary['best_test_accuracy']:.2f}%) after {config.epochs} epochs, "
          f"{summary['train_seconds']:.0f}s of training, peak memory "
          f"{summary['peak_memory_mib']} MiB | {run_dir}")
    print(f"next: python -m minivit.evaluate {path('best.npz')}   or   "
          f"python -m minivit.inspect {path('best.npz')} --out {path('figures')}")
    return summary


def measure(model, held_out, mean, std, config, world):
    """Loss and accuracy on each held-out set ({name: (images, labels)}) after an epoch:
    {'validation_loss': ..., 'validation_accuracy': ..., 'test_loss': ..., ...}."""
    row = {}
    for name, (images, labels) in held_out.items():
        row[f"{name}_loss"], row[f"{name}_accuracy"], _ = evaluate(
            model, images, labels, mean, std, config.threads, world=world)
    return row


def record(run_dir, rows, best, model, optimizer, config, best_accuracy, last_plot):
    """The leader's records after an epoch: last.npz, best.npz when this epoch is the best, the
    metrics CSV, and the curves (at most every 20 s: a plot costs ~0.3 s). Returns when the
    curves were last drawn."""
    path = lambda name: os.path.join(run_dir, name)  # noqa: E731
    save_checkpoint(path("last.npz"), model, optimizer, config, best_accuracy, rows)
    if best:
        save_checkpoint(path("best.npz"), model, optimizer, config, best_accuracy, rows)
    write_metrics(path("metrics.csv"), rows)
    if time.perf_counter() - last_plot > 20:
        plot_curves(rows, path("curves.png"))
        last_plot = time.perf_counter()
    return last_plot


def epoch_line(row, epochs):
    checked = (f"validation acc {100 * row['validation_accuracy']:5.2f}% | "
               if "validation_accuracy" in row else "")
    return (f"epoch {row['epoch']:3d}/{epochs} | train loss {row['train_loss']:.4f} "
            f"acc {100 * row['train_accuracy']:5.2f}% | {checked}test loss {row['test_loss']:.4f} "
            f"acc {100 * row['test_accuracy']:5.2f}% | {row['seconds']:.1f}s, "
            f"{row['images_per_second']:.0f} img/s")


def resume_command(run_dir, processes):
    """The command that continues the run in `run_dir`, trained by `processes` processes."""
    launch = f"mpiexec -n {processes} python" if processes > 1 else "python"
    return f"{launch} -m minivit.train --resume {run_dir}"


def resumed_config(run_dir, given, other_flags=()):
    """The config of the run in `run_dir`, with the flags `given` that a resumed run may change
    (RESUMABLE) applied; the others, and `other_flags` (--preset, --name, --overwrite: a run
    directory has its name and its run already), are named in a warning and left as they were."""
    last = os.path.join(run_dir, "last.npz")
    if not os.path.exists(last):
        raise MissingFile(f"nothing to resume in {run_dir!r}: no last.npz there")
    checkpoint = read_training(last)
    config = config_from(checkpoint.config, last)
    ignored = [f"--{k.replace('_', '-')}" for k in given if k not in RESUMABLE] + list(other_flags)
    if ignored and distributed.world().rank == 0:
        warnings.warn(f"--resume continues the run as it was configured: ignoring "
                      f"{', '.join(ignored)} (a resumed run may change only "
                      f"{', '.join('--' + k.replace('_', '-') for k in RESUMABLE)})")
    if given.get("epochs", config.epochs) < checkpoint.epoch:
        raise ConfigError(f"--epochs {given['epochs']}: the run in {run_dir} has already "
                          f"trained {checkpoint.epoch} epochs")
    return dataclasses.replace(config, **{k: v for k, v in given.items() if k in RESUMABLE})


def main(argv=None):
    args, config = parse_args(argv)
    run_dir = args.resume

    def start():
        nonlocal config, run_dir
        if args.resume:
            others = [flag for flag, value in (("--preset", args.preset), ("--name", args.name),
                                               ("--overwrite", args.overwrite)) if value]
            config = resumed_config(args.resume, args.given, others)
        else:
            what = "finetune" if config.init else config.model.replace("/", "-") + (
                "-hybrid" if config.stem else "")
            name = args.name or (f"{config.dataset.replace(':', '-').replace('/', '-')}-{what}-"
                                 f"{time.strftime('%Y%m%d-%H%M%S')}")
            run_dir = os.path.join(config.out, name)
            if config.init and args.normalize is None:  # feed what the weights were trained on
                config = dataclasses.replace(config, normalize=trained_normalization(config.init))
        return train(config, run_dir, resume=bool(args.resume), overwrite=args.overwrite,
                     command=" ".join(["python -m minivit.train"] + sys.argv[1:]))

    def interrupted():
        if run_dir and os.path.exists(os.path.join(run_dir, "last.npz")):
            return f"stopped; continue with: {resume_command(run_dir, distributed.world().size)}"
        return "stopped before the first epoch ended: nothing to resume"

    return cli.run(start, interrupted=interrupted)


if __name__ == "__main__":
    main()
