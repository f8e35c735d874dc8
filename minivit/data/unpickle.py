"""Read the CIFAR pickles without letting them run code.

Unpickling can call any function a file names (`os.system` included), so a downloaded pickle is
read by an Unpickler that resolves only the few names the CIFAR files use: the official ones are
Python 2 pickles of dicts with str keys, lists and NumPy arrays. Read with encoding="bytes", their
keys come back as bytes (b"data", b"labels").
"""
import pickle

import numpy as np

from minivit.data.dataset import DataError

try:
    from numpy._core.multiarray import _reconstruct  # NumPy 2
except ImportError:
    from numpy.core.multiarray import _reconstruct  # NumPy 1

# The names a pickled ndarray refers to: written by NumPy 1 (numpy.core) or NumPy 2 (numpy._core).
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that builds dicts, lists, strings, numbers and ndarrays, and nothing else."""

    def __init__(self, file, path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name} from {self.path}: a CIFAR file "
                            f"holds only arrays and lists; delete it and download it again")
        return ALLOWED[module, name]


def load_pickle(path):
    """The object in a Python 2 or 3 pickle file, built only from the ALLOWED names."""
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, path).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
            raise DataError(f"{path} is not a readable pickle ({error}): delete it and download "
                            f"it again") from None
