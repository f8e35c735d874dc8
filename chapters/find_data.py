"""Where the chapters find CIFAR-10: downloaded only by the explicit cell that asks for it.

The archive named by the environment variable MINIVIT_CIFAR10_ARCHIVE (any copy of
cifar-10-python.tar.gz), else data/cifar-10-python.tar.gz at the repository root, as
`python -m minivit.train` finds it; unpacked into MINIVIT_DATA_DIR (default: that data/). In
fast mode (MINIVIT_FAST=1, as the tests run the chapters) it is not looked for. Chapter 6's
data cell asks for minivit's checked download (MD5) when no copy is at hand
(`cifar10_or_digits(download=True)`). A chapter without CIFAR-10 falls back to the 8x8 digits and says so, loudly; one that
found a copy other than the official archive says that too.
"""
import os
import warnings

from minivit.data import DataError, load_dataset

FAST = os.environ.get("MINIVIT_FAST") == "1"
DATA_DIR = os.environ.get("MINIVIT_DATA_DIR", "../data")  # the chapters run in chapters/


def find_cifar10():
    """(its load_dataset name, the Dataset) for CIFAR-10, or (None, None), saying why."""
    if FAST:
        print("fast mode: not looking for CIFAR-10")
        return None, None
    archive = os.environ.get("MINIVIT_CIFAR10_ARCHIVE")
    name = f"cifar10:{archive}" if archive else "cifar10"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = load_dataset(name, data_dir=DATA_DIR, download=False)
    except DataError as error:
        print(f"CIFAR-10 is not available ({error})")
        return None, None
    if any("not the official" in str(w.message) for w in caught):
        print("note: this CIFAR-10 archive is not the official one (its MD5 differs); the "
              "committed outputs came from a copy rebuilt from JPEG files, whose pixels differ "
              "slightly (accuracies within about a point of the official data's)")
    return name, data


def cifar10_or_digits(download=False):
    """(load_dataset name, Dataset): CIFAR-10 if it is at hand (or, with download=True and no copy
    at hand, downloaded with minivit's checked download), else the digits, saying so loudly."""
    name, data = find_cifar10()
    if data is None and download and not FAST:
        try:
            name, data = "cifar10", load_dataset("cifar10", data_dir=DATA_DIR, download=True)
            print(f"CIFAR-10 downloaded into {DATA_DIR} (MD5 checked)")
        except DataError as error:
            print(f"!!! CIFAR-10 could not be downloaded ({error})")
    if data is None:
        print("=> FALLING BACK to the 8x8 digits: the results below are for the digits, "
              "not CIFAR-10")
        name, data = "digits", load_dataset("digits")
    return name, data
