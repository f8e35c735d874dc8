"""Weights on disk as .npz: plain arrays, read without pickle, written atomically."""
import os
import zipfile

import numpy as np

from minivit import backend
from minivit.nn import CheckpointError


def save_arrays(path, arrays):
    """Write {name: array} to `path` (.npz): first to a temporary file, then renamed over the
    target, so a crash mid-write never leaves a half-written checkpoint behind."""
    path = os.fspath(path)
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "wb") as f:
            np.savez(f, **{k: backend.to_device(v, "cpu") for k, v in arrays.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load_arrays(path):
    """Read {name: NumPy array} from an .npz file, refusing pickled objects."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise CheckpointError(f"{path} is not a readable .npz checkpoint ({error})") from None


def save(model, path):
    """Save a model's parameters to an .npz file."""
    save_arrays(path, model.state_dict())


def load(model, path):
    """Load parameters from an .npz file into `model`; a tensor that does not fit is named."""
    return model.load_state_dict(load_arrays(path))
