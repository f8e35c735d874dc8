"""Checkpoints on disk: plain arrays in an .npz, read without pickle, written atomically.

Two kinds of file:
- weights: {parameter name: array}, what `minivit.save(model, path)` writes;
- a training checkpoint, what `minivit.train` writes after each epoch (last.npz, best.npz):

      model/NAME        every parameter (model.state_dict())
      optimizer/KEY     the optimizer's state (optimizer.state_dict()): steps, moments
      epoch             epochs finished
      best_accuracy     the best accuracy seen so far (the one best.npz was chosen on)
      config            the run's options, as JSON (minivit.train's TrainConfig)
      model_config      the model's constructor arguments, as JSON (ViT.config)
      metrics           the run's rows of metrics.csv up to this epoch, as JSON

  `write_training` and `read_training` are its only writer and reader; `pretrained` builds a
  model from one.
"""
import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from minivit import backend
from minivit.errors import CheckpointError, MissingFile

# An .npz is a zip of .npy files. np.savez stores them uncompressed, so the members are as large
# on disk as in memory; members that would expand far beyond the file, one or all together, are
# refused before any is read (a 1 MB deflated file could otherwise fill 1 GB of memory).
MAX_EXPANSION = 4


def atomic_write(path, write):
    """Call write(file) on a temporary file beside `path`, flush it to disk, then rename it over
    `path`: a crash mid-write leaves the old file (or none), never a half-written one."""
    path = os.fspath(path)
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_arrays(path, arrays):
    """Write {name: array} (NumPy or CuPy) to `path` as .npz, atomically."""
    arrays = {k: backend.to_device(v, "cpu") for k, v in arrays.items()}
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_arrays(path):
    """Read {name: NumPy array} from an .npz file. Refuses pickled objects, and members whose
    declared size the file cannot hold."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFile(f"no checkpoint at {path}")
    try:
        check_sizes(path)
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as error:
        if "allow_pickle" in str(error):
            error = "it holds a pickled object, and minivit never unpickles a checkpoint"
        raise CheckpointError(f"{path} is not a readable .npz checkpoint ({error})") from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError,
            NotImplementedError) as error:  # damaged, encrypted, or compressed in another way
        raise CheckpointError(f"{path} is not a readable .npz checkpoint ({error})") from None


def check_sizes(path):
    """Raise CheckpointError if the members of the .npz at `path` would expand, together, to more
    than MAX_EXPANSION times the file's size, or an array header asks for more bytes than its
    member has."""
    size = os.path.getsize(path)
    with zipfile.ZipFile(path) as archive:
        expanded = sum(info.file_size for info in archive.infolist())
        if expanded > MAX_EXPANSION * size + 2 ** 20:
            raise CheckpointError(f"{path}: its members would expand to {expanded:,} bytes in all "
                                  f"from a {size:,}-byte file; refusing it (not a checkpoint "
                                  "minivit wrote)")
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
                needed = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
                if needed > info.file_size:
                    raise CheckpointError(f"{path}: array {info.filename[:-4]!r} declares shape "
                                          f"{shape} ({needed:,} bytes) but holds "
                                          f"{info.file_size:,} bytes; the file is corrupt")


def save(model, path):
    """Save a model's parameters to an .npz file."""
    save_arrays(path, model.state_dict())


def load(model, path):
    """Load parameters from an .npz file into `model`; a tensor that does not fit is named."""
    return model.load_state_dict(load_arrays(path))


RUN_KEYS = ("dataset", "data_dir", "image_size")  # what the tools read of a run's config
ROW_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")  # of a metric row


@dataclass
class TrainingCheckpoint:
    """What a training checkpoint holds, as plain Python: arrays and dicts."""
    model: dict              # {parameter name: array}
    optimizer: dict          # the optimizer's state_dict()
    epoch: int
    best_accuracy: float
    config: dict             # the run's options
    model_config: dict       # the model's constructor arguments
    metrics: list = None     # one dict of numbers an epoch (None in files from before 2026-12)


def write_training(path, checkpoint):
    """Write a TrainingCheckpoint to `path` (.npz), atomically."""
    arrays = {f"model/{k}": v for k, v in checkpoint.model.items()}
    arrays.update({f"optimizer/{k}": v for k, v in checkpoint.optimizer.items()})
    arrays.update(epoch=checkpoint.epoch, best_accuracy=checkpoint.best_accuracy,
                  config=json.dumps(checkpoint.config),
                  model_config=json.dumps(checkpoint.model_config))
    if checkpoint.metrics is not None:
        arrays["metrics"] = json.dumps(checkpoint.metrics)
    save_arrays(path, arrays)


def read_training(path):
    """The TrainingCheckpoint at `path`; a file that is not one raises CheckpointError."""
    arrays = load_arrays(path)
    missing = [k for k in ("epoch", "best_accuracy", "config", "model_config") if k not in arrays]
    if missing:
        raise CheckpointError(f"{path} is not a training checkpoint of minivit.train (it has no "
                              f"{missing[0]!r}); use a last.npz or best.npz of a run directory")
    try:
        config, model_config = (json.loads(str(arrays[k])) for k in ("config", "model_config"))
        metrics = json.loads(str(arrays["metrics"])) if "metrics" in arrays else None
        epoch, best = int(arrays["epoch"]), float(arrays["best_accuracy"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path} has a corrupt training record ({error})") from None
    if not (isinstance(config, dict) and isinstance(model_config, dict)):
        raise CheckpointError(f"{path} has a corrupt training record (config is not an object)")
    for record, keys in ((config, RUN_KEYS), (model_config, ("num_classes",))):
        missing = [key for key in keys if key not in record]
        if missing:
            raise CheckpointError(f"{path} has a corrupt training record (no {missing[0]!r} in "
                                  "its config)")
    if metrics is not None and not (isinstance(metrics, list) and all(
            isinstance(row, dict) and set(ROW_KEYS) <= set(row)
            and all(isinstance(v, (int, float)) for v in row.values()) for row in metrics)):
        raise CheckpointError(f"{path} has a corrupt training record (metrics is not a list of "
                              f"rows of numbers, each with {', '.join(ROW_KEYS)})")
    return TrainingCheckpoint(
        model={k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")},
        optimizer={k[len("optimizer/"):]: v for k, v in arrays.items()
                   if k.startswith("optimizer/")},
        epoch=epoch, best_accuracy=best, config=config, model_config=model_config,
        metrics=metrics)


def is_training_checkpoint(path):
    """Whether `path` is an .npz that minivit.train wrote (it has a model_config), read from
    the zip's table of contents alone."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "model_config.npy" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
