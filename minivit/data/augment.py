"""Data augmentation on whole batches, on the device the batch lives on (NumPy or CuPy).

Each function takes a batch (B C H W) and a NumPy Generator `rng`. The few random numbers a batch
needs (an offset, a coin flip, a rectangle per image) are drawn on the host with `rng`, then the
pixels are moved by one vectorised indexing or `where` over the whole batch on the device: no
loop over images. The same seed therefore gives the same augmented batches on the CPU and GPU.
"""
import numpy as np

from minivit.backend import get_array_module
from minivit.interpolate import interpolation_matrix


def normalize(images, mean, std):
    """uint8 pixels (B C H W) -> float32 (pixel / 255 - mean[c]) / std[c], per channel c."""
    xp = get_array_module(images)
    mean = xp.asarray(mean, dtype=xp.float32)[:, None, None]
    std = xp.asarray(std, dtype=xp.float32)[:, None, None]
    return (images.astype(xp.float32) / 255 - mean) / std


def resize(images, size):
    """Bilinear resize of a batch to size x size (pixel centres aligned): (B C H W) -> (B C S S).
    Used to train at another resolution than the data's (--image-size, --low-res-epochs)."""
    B, C, H, W = images.shape
    if (H, W) == (size, size):
        return images
    xp = get_array_module(images)
    rows = xp.asarray(interpolation_matrix(H, size, align_corners=False), dtype=images.dtype)
    cols = xp.asarray(interpolation_matrix(W, size, align_corners=False), dtype=images.dtype)
    return xp.einsum("Hh,bchw,Ww->bcHW", rows, images, cols, optimize=True)  # 2 GEMMs, not a loop


def random_crop(images, padding, rng):
    """Pad every image with `padding` zero pixels on each side and cut out an H x W window at a
    random offset, i.e. shift it by up to `padding` pixels each way.  (B C H W) -> (B C H W)."""
    xp = get_array_module(images)
    B, C, H, W = images.shape
    top = xp.asarray(rng.integers(0, 2 * padding + 1, size=B))
    left = xp.asarray(rng.integers(0, 2 * padding + 1, size=B))
    padded = xp.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    rows = (top[:, None] + xp.arange(H))[:, None, :, None]     # (B 1 H 1)
    cols = (left[:, None] + xp.arange(W))[:, None, None, :]    # (B 1 1 W)
    return padded[xp.arange(B)[:, None, None, None], xp.arange(C)[None, :, None, None], rows, cols]


def horizontal_flip(images, rng, p=0.5):
    """Mirror each image left-right with probability p.  (B C H W) -> (B C H W)."""
    xp = get_array_module(images)
    flip = xp.asarray(rng.random(len(images)) < p)[:, None, None, None]
    return xp.where(flip, images[..., ::-1], images)


def random_erasing(images, rng, p=0.25, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
    """Random erasing (Zhong et al., 2020): with probability p, fill a rectangle of each image with
    `value` (0: the mean, once normalised). Its area is a fraction in `scale` of the image, its
    height / width ratio log-uniform in `ratio`, clipped to the image.  (B C H W) -> (B C H W)."""
    xp = get_array_module(images)
    B, _, H, W = images.shape
    area = rng.uniform(*scale, size=B) * H * W
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), size=B))
    h = np.clip(np.round(np.sqrt(area * aspect)), 1, H).astype(np.int64)
    w = np.clip(np.round(np.sqrt(area / aspect)), 1, W).astype(np.int64)
    top, left = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
    erase = rng.random(B) < p
    top, left, h, w, erase = (xp.asarray(a)[:, None, None] for a in (top, left, h, w, erase))
    rows, cols = xp.arange(H)[None, :, None], xp.arange(W)[None, None, :]
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)  # (B H W)
    return xp.where((erase & inside)[:, None], xp.asarray(value, dtype=images.dtype), images)


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
