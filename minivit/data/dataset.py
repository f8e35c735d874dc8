"""A labelled image data set held in memory, with the statistics its batches are normalised by."""
from dataclasses import dataclass, field

import numpy as np

from minivit import backend
from minivit.errors import DataError

NORMALIZATIONS = ("dataset", "half")


@dataclass
class Dataset:
    """Images as uint8 pixels, channels first, with integer labels.

    train_images: (N C H W) uint8      train_labels: (N) int64 in [0, K)
    test_images:  (M C H W) uint8      test_labels:  (M) int64 in [0, K)
    classes: the K class names, in label order
    mean, std: C floats each, the per-channel mean and standard deviation of the training
    pixels in [0, 1] units (pixel / 255), computed here, for normalising.
    """
    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list
    mean: tuple = field(init=False)
    std: tuple = field(init=False)

    def __post_init__(self):
        for split, labels in (("training", self.train_labels), ("test", self.test_labels)):
            labels = backend.to_device(labels, "cpu")
            if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
                raise DataError(f"{self.name}: {split} labels must lie in 0..{len(self.classes) - 1}, "
                                f"one for each class, not {labels.min()}..{labels.max()}")
        self.mean, self.std = channel_stats(self.train_images)

    def hold_out(self, fraction, seed=0):
        """(this data set without a random `fraction` of its training images, (those images,
        their labels)), or (this data set, None) when the fraction holds no image: a validation
        split, for choosing among models without looking at the
        test set. The split depends on `seed` only (the same for every run by default). The
        normalisation statistics stay those of the whole training set, so that whoever loads
        the data set again (minivit.evaluate, a chapter) normalises as the run did."""
        count = round(fraction * len(self.train_labels))
        if count == 0:
            return self, None
        if count >= len(self.train_labels):
            raise DataError(f"a validation split of {fraction} holds out all {count} training "
                            f"images of {self.name}, leaving none to train on: use a smaller "
                            "--validation")
        order = np.random.default_rng(seed).permutation(len(self.train_labels))
        held, kept = np.sort(order[:count]), np.sort(order[count:])
        rest = Dataset(self.name, self.train_images[kept], self.train_labels[kept],
                       self.test_images, self.test_labels, self.classes)
        rest.mean, rest.std = self.mean, self.std
        return rest, (self.train_images[held], self.train_labels[held])

    def normalization(self, kind="dataset"):
        """The per-channel (mean, std), in [0, 1] pixel units, that batches are normalised with:
        'dataset': this data set's own statistics (each channel to mean 0, std 1);
        'half': 0.5 and 0.5, pixels to [-1, 1], as the official and timm weights were trained."""
        if kind not in NORMALIZATIONS:
            raise DataError(f"unknown normalisation {kind!r}: use {' or '.join(NORMALIZATIONS)}")
        if kind == "half":
            return (0.5,) * len(self.mean), (0.5,) * len(self.std)
        return self.mean, self.std


def channel_stats(images):
    """Per-channel mean and standard deviation of uint8 images (N C H W; NumPy or CuPy), in
    [0, 1] units. A channel's 256-bin histogram gives both exactly, without a float copy of the
    data."""
    images = backend.to_device(images, "cpu")
    values = np.arange(256) / 255
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].ravel(), minlength=256)
        p = counts / counts.sum()
        mean = p @ values
        means.append(float(mean))
        stds.append(float(np.sqrt(p @ (values - mean) ** 2)))
    return tuple(means), tuple(stds)
