"""Data augmentation on whole batches, on the device the batch lives on (NumPy or CuPy).

Each augmentation is two halves: a draw, on the host with a NumPy Generator `rng` (the few
numbers a batch needs: an offset, a coin flip, a rectangle per image), and the pixel work on the
device, one vectorised indexing or `where` over the whole batch: no loop over images. The same
seed therefore gives the same augmented batches on the CPU and the GPU. `batches` (loader.py)
sends all of a batch's draws to the device in one copy; random_crop, horizontal_flip and
random_erasing do draw and work in one call. Constants (the normalisation, the resize
matrices) are made once per device and kept.
"""
import functools

import numpy as np

from minivit.backend import get_array_module
from minivit.interpolate import interpolation_matrix


@functools.lru_cache(maxsize=32)
def _on_device(xp, name, *key):
    """A constant array on the device of `xp`, made once: the per-channel mean or std as
    (C 1 1) float32, or a resize matrix."""
    if name == "channels":
        return xp.asarray(key[0], dtype=xp.float32)[:, None, None]
    old, new, dtype = key
    return xp.asarray(interpolation_matrix(old, new, align_corners=False), dtype=dtype)


def standardize(images, mean, std):
    """uint8 pixels (B C H W) -> float32 (pixel / 255 - mean[c]) / std[c], per channel c: each
    channel standardised with the statistics a Dataset's normalization() gives."""
    xp = get_array_module(images)
    mean = _on_device(xp, "channels", tuple(float(m) for m in mean))
    std = _on_device(xp, "channels", tuple(float(s) for s in std))
    return (images.astype(xp.float32) / 255 - mean) / std


def resize(images, size):
    """Bilinear resize of a batch to size x size (pixel centres aligned): (B C H W) -> (B C S S).
    Used to train at another resolution than the data's (--image-size, --low-res-epochs)."""
    B, C, H, W = images.shape
    if (H, W) == (size, size):
        return images
    xp = get_array_module(images)
    rows = _on_device(xp, "resize", H, size, np.dtype(images.dtype))
    cols = _on_device(xp, "resize", W, size, np.dtype(images.dtype))
    return xp.einsum("Hh,bchw,Ww->bcHW", rows, images, cols, optimize=True)  # 2 GEMMs, not a loop


def crop_offsets(rng, count, padding):
    """The draw of random_crop: (top, left) offsets in [0, 2 padding], `count` of each."""
    return rng.integers(0, 2 * padding + 1, size=count), rng.integers(0, 2 * padding + 1, size=count)


def crop(images, padding, top, left):
    """Pad every image with `padding` zero pixels on each side and cut out the H x W window at
    (top[b], left[b]) (device arrays).  (B C H W) -> (B C H W)."""
    xp = get_array_module(images)
    B, C, H, W = images.shape
    padded = xp.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    rows = (top[:, None] + xp.arange(H))[:, None, :, None]     # (B 1 H 1)
    cols = (left[:, None] + xp.arange(W))[:, None, None, :]    # (B 1 1 W)
    return padded[xp.arange(B)[:, None, None, None], xp.arange(C)[None, :, None, None], rows, cols]


def random_crop(images, padding, rng):
    """Shift each image by up to `padding` pixels each way, at random (a padded random crop)."""
    xp = get_array_module(images)
    top, left = crop_offsets(rng, len(images), padding)
    return crop(images, padding, xp.asarray(top), xp.asarray(left))


def flip_draws(rng, count, p=0.5):
    """The draw of horizontal_flip: which of `count` images to mirror."""
    return rng.random(count) < p


def flip(images, mirror):
    """Mirror the images where `mirror` (B, on the device) is true.  (B C H W) -> (B C H W)."""
    xp = get_array_module(images)
    return xp.where(mirror[:, None, None, None] != 0, images[..., ::-1], images)


def horizontal_flip(images, rng, p=0.5):
    """Mirror each image left-right with probability p.  (B C H W) -> (B C H W)."""
    xp = get_array_module(images)
    return flip(images, xp.asarray(flip_draws(rng, len(images), p)))


def erase_draws(rng, count, height, width, p=0.25, scale=(0.02, 0.33), ratio=(0.3, 3.3)):
    """The draw of random_erasing: (top, left, h, w, erase) for `count` images, int64 each."""
    area = rng.uniform(*scale, size=count) * height * width
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), size=count))
    h = np.clip(np.round(np.sqrt(area * aspect)), 1, height).astype(np.int64)
    w = np.clip(np.round(np.sqrt(area / aspect)), 1, width).astype(np.int64)
    top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    return top, left, h, w, (rng.random(count) < p).astype(np.int64)


def erase(images, top, left, h, w, erase, value=0.0):
    """Fill the rectangle [top, top + h) x [left, left + w) of image b with `value` where
    erase[b] (all (B) device arrays).  (B C H W) -> (B C H W)."""
    xp = get_array_module(images)
    _, _, H, W = images.shape
    top, left, h, w, erase = (a[:, None, None] for a in (top, left, h, w, erase))
    rows, cols = xp.arange(H)[None, :, None], xp.arange(W)[None, None, :]
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)  # (B H W)
    return xp.where(((erase != 0) & inside)[:, None], value, images)


def random_erasing(images, rng, p=0.25, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
    """Random erasing (Zhong et al., 2020): with probability p, fill a rectangle of each image with
    `value` (0: the mean, once normalised). Its area is a fraction in `scale` of the image, its
    height / width ratio log-uniform in `ratio`, clipped to the image.  (B C H W) -> (B C H W)."""
    xp = get_array_module(images)
    B, _, H, W = images.shape
    draws = xp.asarray(np.stack(erase_draws(rng, B, H, W, p, scale, ratio)))
    return erase(images, *draws, value=value)


def mixup(images, labels, rng, alpha=0.2):
    """Mixup (Zhang et al., 2018): blend the batch with a shuffled copy of itself,
    x = lam x + (1 - lam) x[perm], lam ~ Beta(alpha, alpha), one lam for the batch.
    images (B C H W) float, labels (B) -> (mixed images, labels, labels[perm], lam); train on
    lam * cross_entropy(logits, labels) + (1 - lam) * cross_entropy(logits, labels[perm])."""
    xp = get_array_module(images)
    lam = float(rng.beta(alpha, alpha))
    perm = xp.asarray(rng.permutation(len(images)))
    return lam * images + (1 - lam) * images[perm], labels, labels[perm], lam


def cutmix(images, labels, rng, alpha=1.0):
    """CutMix (Yun et al., 2019): paste a box from a shuffled copy of the batch into every image.
    The box covers about 1 - lam of the image, lam ~ Beta(alpha, alpha), at a random centre,
    clipped to the image; lam is then the exact fraction left unpasted. Same return and loss as
    `mixup`: (images (B C H W), labels, labels[perm], lam)."""
    xp = get_array_module(images)
    _, _, H, W = images.shape
    cut = np.sqrt(1 - rng.beta(alpha, alpha))
    centre_y, centre_x = rng.integers(H), rng.integers(W)
    top, bottom = np.clip([centre_y - int(H * cut) // 2, centre_y + int(H * cut) // 2], 0, H)
    left, right = np.clip([centre_x - int(W * cut) // 2, centre_x + int(W * cut) // 2], 0, W)
    perm = xp.asarray(rng.permutation(len(images)))
    mixed = images.copy()
    mixed[:, :, top:bottom, left:right] = images[perm, :, top:bottom, left:right]
    lam = 1 - (bottom - top) * (right - left) / (H * W)
    return mixed, labels, labels[perm], float(lam)
