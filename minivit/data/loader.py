"""Mini-batches cut from images that stay on the device as uint8.

The whole training set sits on the device in its compact uint8 form (CIFAR-10: 150 MB). Each
batch is gathered there by index, augmented, and only then turned into float32 and normalised,
so the host sends no pixels during training. Mixup and CutMix change the labels as well as the
pixels, so they are left to the training loop (see augment.mixup and augment.cutmix).
"""
from dataclasses import dataclass

import numpy as np

from minivit import backend
from minivit.data.augment import (crop, crop_offsets, erase, erase_draws, flip, flip_draws,
                                  resize, standardize, trivial_augment, trivial_draws)
from minivit.errors import DataError

AUGMENTATIONS = ("none", "crop", "basic", "strong", "trivial")  # Augment.named's presets


@dataclass(frozen=True)
class Augment:
    """Which per-image augmentations `batches` applies, in this order:
    crop: zero padding for a random crop (0: none; 4 for 32 px images),
    flip: mirror left-right with probability 1/2,
    trivial: TrivialAugment, one op at a random strength for each image (augment.trivial_augment),
    erase: the probability of random erasing, applied after normalisation (0: none)."""
    crop: int = 0
    flip: bool = False
    trivial: bool = False
    erase: float = 0.0

    @classmethod
    def named(cls, name, image_size):
        """The presets: "none"; "crop" = a random crop (padding image_size / 8) alone, for
        images that must not be mirrored (digits); "basic" = crop + flip;
        "strong" = basic + random erasing with probability 1/4; "trivial" = basic +
        TrivialAugment (wide)."""
        presets = dict(zip(AUGMENTATIONS, (
            cls(),
            cls(crop=max(image_size // 8, 1)),
            cls(crop=image_size // 8, flip=True),
            cls(crop=image_size // 8, flip=True, erase=0.25),
            cls(crop=image_size // 8, flip=True, trivial=True))))
        if name not in presets:
            raise DataError(f"unknown augmentation {name!r}: use {', '.join(presets)}")
        return presets[name]


def batches(images, labels, batch_size, *, mean, std, shuffle=False, rng=None, augment=None,
            drop_last=False, size=None):
    """Yield (x, y) batches for one pass over the data.

    images: (N C H W) uint8, NumPy or CuPy; labels: (N) integers (moved to the images' device),
    or None (then y is None).
    x: (B C H W) float32, normalised with the per-channel `mean` and `std` (in [0, 1] units, as in
    Dataset); y: (B) labels; on the images' device. B = batch_size, except a smaller last batch
    (dropped with drop_last=True). size: the side S the model takes; the batch is resized to
    S x S (bilinear) after augmentation, so x is (B C S S) (default: the images' own size).
    shuffle: visit the images in a random order. augment: an Augment, a preset name ("none",
    "crop", "basic", "strong", "trivial") or None. rng: the NumPy Generator for the order and
    the augmentations (default: minivit's seeded generator), so a seed fixes the batches.
    """
    xp = backend.get_array_module(images)
    rng = backend.rng(np) if rng is None else rng
    if isinstance(augment, str):
        augment = Augment.named(augment, images.shape[-1])
    augment = augment or Augment()
    labels = None if labels is None else xp.asarray(labels)
    order = rng.permutation(len(images)) if shuffle else np.arange(len(images))
    end = len(order) - len(order) % batch_size if drop_last else len(order)
    for start in range(0, end, batch_size):
        index = order[start:start + batch_size]
        # every number this batch needs from the host, drawn in a fixed order, in one copy
        draws = [index]
        if augment.crop:
            draws += crop_offsets(rng, len(index), augment.crop)
        if augment.flip:
            draws.append(flip_draws(rng, len(index)))
        if augment.trivial:
            draws += trivial_draws(rng, len(index))
        if augment.erase:
            draws += erase_draws(rng, len(index), *images.shape[2:], p=augment.erase)
        index, *draws = xp.asarray(np.stack(draws).astype(np.int64))
        x = images[index]
        if augment.crop:
            x = crop(x, augment.crop, draws.pop(0), draws.pop(0))
        if augment.flip:
            x = flip(x, draws.pop(0))
        if augment.trivial:
            x = trivial_augment(x, draws.pop(0), draws.pop(0), draws.pop(0))
        x = standardize(x, mean, std)
        if augment.erase:
            x = erase(x, *draws)
        if size is not None:
            x = resize(x, size)
        yield x, None if labels is None else labels[index]
