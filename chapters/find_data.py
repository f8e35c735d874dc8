"""Where the chapters find CIFAR-10, which they never download.

The archive named by the environment variable MINIVIT_CIFAR10_ARCHIVE (any copy of
cifar-10-python.tar.gz), else data/cifar-10-python.tar.gz at the repository root, as
`python -m minivit.train` finds it; unpacked into MINIVIT_DATA_DIR (default: that data/). In
fast mode (MINIVIT_FAST=1, as the tests run the chapters) it is not looked for. A chapter
without CIFAR-10 falls back to the 8x8 digits and says so.
"""
import os
import warnings

from minivit.data import DataError, load_dataset

FAST = os.environ.get("MINIVIT_FAST") == "1"
DATA_DIR = os.environ.get("MINIVIT_DATA_DIR", "../data")  # the chapters run in chapters/

# a copy of the archive that is not byte-identical to the official one only warns
warnings.filterwarnings("ignore", message=r".*is not the official cifar-10-python")


def find_cifar10():
    """(its load_dataset name, the Dataset) for CIFAR-10, or (None, None), saying why."""
    if FAST:
        print("fast mode: not looking for CIFAR-10")
        return None, None
    archive = os.environ.get("MINIVIT_CIFAR10_ARCHIVE")
    name = f"cifar10:{archive}" if archive else "cifar10"
    try:
        return name, load_dataset(name, data_dir=DATA_DIR, download=False)
    except DataError as error:
        print(f"CIFAR-10 is not available ({error})")
        return None, None


def cifar10_or_digits():
    """(load_dataset name, Dataset): CIFAR-10 if it is at hand, else the digits, saying so."""
    name, data = find_cifar10()
    if data is None:
        print("=> FALLING BACK to the 8x8 digits: the results below are for the digits, "
              "not CIFAR-10")
        name, data = "digits", load_dataset("digits")
    return name, data
