"""Data sets, and batches cut from them on the device.

    data = load_dataset("cifar10")              # a Dataset: uint8 images (N C H W), int64 labels
    images = to_device(data.train_images, "gpu")
    for x, y in batches(images, data.train_labels, 128, mean=data.mean, std=data.std,
                        shuffle=True, rng=np.random.default_rng(0), augment="basic"):
        ...                                     # x: (B C H W) float32, y: (B) int64

Every problem (a missing archive, no network, a bad checksum, an unsafe archive, an empty image
folder) raises DataError with a one-line message that says what to do.
"""
from minivit.data.augment import (cutmix, horizontal_flip, mixup, random_crop, random_erasing,
                                  resize, standardize)
from minivit.data.cifar import load_cifar
from minivit.data.dataset import Dataset
from minivit.data.digits import load_digits
from minivit.data.folder import load_folder
from minivit.data.loader import Augment, batches
from minivit.errors import DataError

NAMES = ("digits", "cifar10", "cifar100", "cifar10:ARCHIVE", "cifar100:ARCHIVE", "folder:PATH")
NATIVE_SIZE = {"digits": 8, "cifar10": 32, "cifar100": 32}


def load_dataset(name, data_dir="data", image_size=None, download=True):
    """The data set called `name`:
      digits            scikit-learn's 8x8 digits, 1 channel, offline (1,437 train / 360 test)
      cifar10           CIFAR-10, 32x32 RGB, 10 classes (50,000 / 10,000), from data_dir or
                        downloaded into it (unless download=False); see minivit.data.cifar
      cifar100          CIFAR-100 with its 100 fine labels, likewise
      cifar10:ARCHIVE   CIFAR-10 from the .tar.gz at ARCHIVE, which may be a non-official copy
      cifar100:ARCHIVE  likewise
      folder:PATH       images in PATH/train/CLASS/ and PATH/test/CLASS/, resized to image_size
    image_size: the side of the square images; digits and CIFAR keep their own size, so for them
    it may only be that size (or None).
    """
    kind, _, argument = name.partition(":")
    if kind == "folder" and argument:
        return load_folder(argument, image_size)
    if kind not in NATIVE_SIZE or (argument and kind == "digits"):
        raise DataError(f"unknown data set {name!r}: use one of {', '.join(NAMES)}")
    if image_size not in (None, NATIVE_SIZE[kind]):
        raise DataError(f"{kind} images are {NATIVE_SIZE[kind]}x{NATIVE_SIZE[kind]}, so the image "
                        f"size must be {NATIVE_SIZE[kind]}, not {image_size}; only folder: data "
                        f"sets are resized")
    if kind == "digits":
        return load_digits()
    return load_cifar(kind, data_dir, archive=argument or None, download=download)


__all__ = ["load_dataset", "Dataset", "DataError", "batches", "Augment", "standardize", "random_crop",
           "horizontal_flip", "random_erasing", "resize", "mixup", "cutmix", "load_cifar", "load_digits",
           "load_folder", "NAMES"]
