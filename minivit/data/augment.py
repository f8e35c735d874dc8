"""Data augmentation on whole batches, on the device the batch lives on (NumPy or CuPy).

Each augmentation is two halves: a draw, on the host with a NumPy Generator `rng` (the few
numbers a batch needs: an offset, a coin flip, a rectangle, an op and its strength per image),
and the pixel work on the device, vectorised indexing and `where`s over the whole batch: no
loop over images. The same seed therefore gives the same augmented batches on the CPU and the
GPU. `batches` (loader.py) sends all of a batch's draws to the device in one copy;
random_crop, horizontal_flip and random_erasing do draw and work in one call. Constants (the
normalisation, the resize matrices, TrivialAugment's tables) are made once per device and
kept.
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


# --- TrivialAugment ----------------------------------------------------------------------------
# TrivialAugment (Müller & Hutter, 2021) gives each image ONE op, drawn uniformly from the list
# below, at ONE strength, a bin m drawn uniformly from 0..30, and (for the signed ops) a random
# sign. Its "wide" strengths, as torchvision's TrivialAugmentWide._augmentation_space has them:
#   shear_x, shear_y          shear s = ±0.99 m/30 (the source pixel of (x, y) is (x + s y, y))
#   translate_x, translate_y  ±32 m/30 pixels; here ±(image side) m/30 rounded down, the same
#                             32 m/30 for 32-pixel images and in proportion for other sizes
#   rotate                    ±135 m/30 degrees (positive: counter-clockwise, as PIL)
#   brightness, color, contrast, sharpness   factor 1 ± 0.99 m/30 (1: the image unchanged)
#   posterize                 keep 8 - round(m/5) bits (8 .. 2)
#   solarize                  invert the pixels >= 255 - 8.5 m (at m = 0, only the 255s)
#   autocontrast, equalize, identity   no strength
# Each image's op becomes a row of per-op parameters, the drawn op at its strength and every
# other op at the value that leaves the image unchanged (angle 0, factor 1, 8 bits, threshold
# 256, ...). Every stage then runs on the whole batch: one affine gather for the five geometric
# ops, one blend each for the four enhance ops, then posterize, solarize, autocontrast and
# equalize; the sequence of array operations is the same whatever the draws. The ops are PIL's
# (the paper's code calls PIL), and the colour ops equal PIL's ImageEnhance and ImageOps to the
# bit (tests/test_trivial_augment.py; autocontrast apart from PIL's float rounding): each stage
# keeps whole pixel values 0..255, truncated as PIL's uint8 images are. One difference: PIL and
# torchvision shear about the top-left corner, which also shifts the image by up to 0.99 x its
# side; here every geometric op turns about the image centre, which splits that shift.

TRIVIAL_OPS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate",
               "brightness", "color", "contrast", "sharpness", "posterize", "solarize",
               "autocontrast", "equalize")
TRIVIAL_BINS = 31  # strengths m = 0 .. 30


def trivial_draws(rng, count):
    """The draw of trivial_augment for `count` images: [op, magnitude, sign], int64 arrays of
    `count` each: op an index into TRIVIAL_OPS, magnitude the strength bin 0..30, sign 1 to
    negate a signed op's strength (ignored by the unsigned ones)."""
    return [rng.integers(0, len(TRIVIAL_OPS), size=count),
            rng.integers(0, TRIVIAL_BINS, size=count),
            rng.integers(0, 2, size=count)]


def trivial_table(height, width):
    """TrivialAugment's parameters on the host, float64: (strength, unchanged).
    strength (ops 2 31): the parameter of op o at sign s (0: +, 1: -) and bin m, as the table
    at the top of this section says; unchanged (ops): the parameter that leaves an image as it
    is. Rotations are in radians, translations in whole pixels."""
    m = np.arange(TRIVIAL_BINS)                      # (31)
    sign = np.array([[1], [-1]])                     # (2 1)
    factor = 1 + sign * 0.99 * m / 30
    strength = {"identity": 0, "shear_x": sign * 0.99 * m / 30, "shear_y": sign * 0.99 * m / 30,
                "translate_x": sign * (width * m // 30), "translate_y": sign * (height * m // 30),
                "rotate": sign * np.radians(135 * m / 30), "brightness": factor, "color": factor,
                "contrast": factor, "sharpness": factor, "posterize": 8 - np.round(m / 5),
                "solarize": 255 - 8.5 * m, "autocontrast": 1, "equalize": 1}
    unchanged = {"brightness": 1, "color": 1, "contrast": 1, "sharpness": 1, "posterize": 8,
                 "solarize": 256}                    # every other op: 0
    return (np.stack([np.broadcast_to(strength[op], (2, TRIVIAL_BINS)) for op in TRIVIAL_OPS]),
            np.array([unchanged.get(op, 0) for op in TRIVIAL_OPS], dtype=np.float64))


@functools.lru_cache(maxsize=32)
def _trivial_on_device(xp, height, width):
    """trivial_table's two arrays and arange(ops), on the device of `xp`, made once."""
    strength, unchanged = trivial_table(height, width)
    return xp.asarray(strength), xp.asarray(unchanged), xp.arange(len(TRIVIAL_OPS))


def trivial_augment(images, op, magnitude, sign, fill=0):
    """TrivialAugment (wide): image b gets op TRIVIAL_OPS[op[b]] at strength bin magnitude[b],
    negated where sign[b] is 1 (all three (B) integer device arrays, from trivial_draws).
    images (B C H W) uint8 -> (B C H W) uint8. Pixels that the geometric ops bring in from
    outside the image are `fill`: 0, black, as in the paper's PIL code, torchvision's default
    and the zero padding of `crop` (NVIDIA DALI's version fills 128). The pixels are worked on
    in float32 as whole values 0..255 (pixel coordinates in float64); no device-to-host copy."""
    xp = get_array_module(images)
    strength, unchanged, ops = _trivial_on_device(xp, *images.shape[2:])
    drawn = op[:, None] == ops                                                      # (B ops)
    parameters = xp.where(drawn, strength[op, sign, magnitude][:, None], unchanged)  # (B ops)
    p = dict(zip(TRIVIAL_OPS, parameters.T[:, :, None, None, None]))                # (B 1 1 1) each

    x = images.astype(xp.float32)
    # geometric: the source of the output pixel (x, y), both measured from the image's centre, is
    # (a x + b y + c, d x + e y + f); at most one of rotate, shear and translate is not 0
    cos, sin = xp.cos(p["rotate"]), xp.sin(p["rotate"])
    x = affine(x, cos, p["shear_x"] - sin, p["translate_x"],
               p["shear_y"] + sin, cos, p["translate_y"], fill)
    # colour: PIL's ImageEnhance, a blend of the image with a "degenerate" image
    x = blend(0.0, x, p["brightness"].astype(xp.float32))                    # black
    x = blend(gray(x), x, p["color"].astype(xp.float32))                     # its gray image
    mean = xp.floor(gray(x).mean(axis=(1, 2, 3), keepdims=True, dtype=xp.float64) + 0.5)
    x = blend(mean.astype(xp.float32), x, p["contrast"].astype(xp.float32))  # its mean gray
    x = blend(smooth(x), x, p["sharpness"].astype(xp.float32))               # itself, smoothed
    # PIL's ImageOps: posterize keeps the top bits, solarize inverts above a threshold
    step = (2 ** (8 - p["posterize"])).astype(xp.float32)
    x = xp.floor(x / step) * step
    x = xp.where(x >= p["solarize"].astype(xp.float32), 255 - x, x)
    x = autocontrast(x, p["autocontrast"] != 0)
    return equalize(x, p["equalize"] != 0).astype(xp.uint8)


def affine(images, a, b, c, d, e, f, fill):
    """Nearest-neighbour affine warp about the image centre. The output pixel at column x, row y
    (measured from the centre, ((W - 1) / 2, (H - 1) / 2)) takes the source pixel nearest to
    (a x + b y + c, d x + e y + f) (rounded half up), or `fill` if that is outside the image.
    images (B C H W); a .. f (B 1 1 1) float64 -> (B C H W). a = e = 1, b = c = d = f = 0 is
    the identity."""
    xp = get_array_module(images)
    B, C, H, W = images.shape
    cy, cx = (H - 1) / 2, (W - 1) / 2
    ys = xp.arange(H, dtype=xp.float64)[:, None] - cy                # (H 1)
    xs = xp.arange(W, dtype=xp.float64) - cx                         # (W)
    cols = xp.floor(a * xs + b * ys + c + cx + 0.5)                  # (B 1 H W)
    rows = xp.floor(d * xs + e * ys + f + cy + 0.5)
    inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    rows = xp.clip(rows, 0, H - 1).astype(xp.int64)
    cols = xp.clip(cols, 0, W - 1).astype(xp.int64)
    image, channel = xp.arange(B)[:, None, None, None], xp.arange(C)[None, :, None, None]
    return xp.where(inside, images[image, channel, rows, cols], fill)


def blend(degenerate, images, factor):
    """PIL's ImageEnhance: degenerate + factor (images - degenerate), clipped to 0..255 and
    truncated to whole values as PIL stores it (factor 1: the images; 0: the degenerate image).
    images (B C H W) float32; degenerate broadcasts to it; factor (B 1 1 1) float32."""
    xp = get_array_module(images)
    return xp.floor(xp.clip(degenerate + factor * (images - degenerate), 0, 255))


def gray(images):
    """PIL's gray (mode "L") of RGB pixels: the luma 0.299 R + 0.587 G + 0.114 B rounded, in PIL's
    16-bit fixed point, exact in float32. (B 3 H W) -> (B 1 H W); one channel is its own gray."""
    xp = get_array_module(images)
    if images.shape[1] == 1:
        return images
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    return xp.floor((19595 * r + 38470 * g + 7471 * b + 32768) / 65536)


def smooth(images):
    """PIL's ImageFilter.SMOOTH: each inner pixel becomes (the sum of its 3x3 neighbourhood + 4 x
    itself) / 13, rounded; the one-pixel border is kept.  (B C H W) -> (B C H W)."""
    xp = get_array_module(images)
    columns = images[..., :-2, :] + images[..., 1:-1, :] + images[..., 2:, :]   # (B C H-2 W)
    box = columns[..., :-2] + columns[..., 1:-1] + columns[..., 2:]            # (B C H-2 W-2)
    smoothed = images.copy()
    smoothed[..., 1:-1, 1:-1] = xp.floor((box + 4 * images[..., 1:-1, 1:-1] + 6.5) / 13)
    return smoothed


def autocontrast(images, on):
    """Stretch each channel of the images where `on` (B 1 1 1) so that its darkest pixel becomes 0
    and its brightest 255: (x - lo) 255 / (hi - lo), rounded down (a flat channel is kept).
    PIL's ImageOps.autocontrast, exactly; PIL's own arithmetic (in float64, x scale + offset)
    sometimes lands one below, e.g. 254 for the brightest pixel.  (B C H W) -> (B C H W)."""
    xp = get_array_module(images)
    lo = images.min(axis=(2, 3), keepdims=True)                                # (B C 1 1)
    hi = images.max(axis=(2, 3), keepdims=True)
    stretched = xp.floor((images - lo) * 255 / xp.maximum(hi - lo, 1))
    return xp.where(on & (hi > lo), stretched, images)


def equalize(images, on):
    """PIL's ImageOps.equalize, on each channel of the images where `on` (B 1 1 1): value v
    becomes (step // 2 + darker(v)) // step, at most 255, where darker(v) counts the channel's
    pixels below v and step = (pixels - those of the brightest value) // 255: the values spread
    by their cumulative histogram (a channel with step 0 is kept). All the counts come from one
    sort of the whole batch, the pixels of channel k as keys 256 k + value so that channels stay
    apart: the place where 256 k + v would go in that order, less the channel's start, is
    darker(v). images (B C H W) float32, whole values -> (B C H W) float32."""
    xp = get_array_module(images)
    B, C, H, W = images.shape
    channel = xp.arange(B * C, dtype=xp.int32).reshape(B, C, 1)                # (B C 1)
    pixels = images.reshape(B, C, H * W).astype(xp.int32)                      # (B C HW)
    ordered = xp.sort((pixels + 256 * channel).ravel())
    below = xp.searchsorted(ordered, (256 * channel + xp.arange(256)).ravel())
    darker = below.reshape(B, C, 256) - H * W * channel                        # (B C 256)
    top = (images == images.max(axis=(2, 3), keepdims=True)).sum(axis=(2, 3))  # (B C)
    step = ((H * W - top) // 255)[..., None]                                   # (B C 1)
    table = xp.minimum((step // 2 + darker) // xp.maximum(step, 1), 255)       # (B C 256)
    equalized = xp.take_along_axis(table, pixels, axis=-1).reshape(B, C, H, W)
    return xp.where(on & (step > 0)[..., None], equalized.astype(xp.float32), images)


def mixup(images, labels, rng, alpha=0.2):
    """Mixup (Zhang et al., 2018): blend the batch with itself in reverse order,
    x = lam x + (1 - lam) x[::-1], lam ~ Beta(alpha, alpha), one lam for the batch. The batch is
    already in random order, so its reverse pairs each image with a random other (timm does the
    same), and nothing is sent to the device. images (B C H W) float, labels (B) -> (mixed
    images, labels, labels[::-1], lam); train on
    lam * cross_entropy(logits, labels) + (1 - lam) * cross_entropy(logits, labels[::-1])."""
    lam = float(rng.beta(alpha, alpha))
    return lam * images + (1 - lam) * images[::-1], labels, labels[::-1], lam


def cutmix(images, labels, rng, alpha=1.0):
    """CutMix (Yun et al., 2019): paste a box from the batch in reverse order (a random other
    image, as in `mixup`) into every image.
    The box covers about 1 - lam of the image, lam ~ Beta(alpha, alpha), at a random centre,
    clipped to the image; lam is then the exact fraction left unpasted. Same return and loss as
    `mixup`: (images (B C H W), labels, labels[::-1], lam)."""
    _, _, H, W = images.shape
    cut = np.sqrt(1 - rng.beta(alpha, alpha))
    centre_y, centre_x = rng.integers(H), rng.integers(W)
    top, bottom = np.clip([centre_y - int(H * cut) // 2, centre_y + int(H * cut) // 2], 0, H)
    left, right = np.clip([centre_x - int(W * cut) // 2, centre_x + int(W * cut) // 2], 0, W)
    mixed = images.copy()
    mixed[:, :, top:bottom, left:right] = images[::-1, :, top:bottom, left:right]
    lam = 1 - (bottom - top) * (right - left) / (H * W)
    return mixed, labels, labels[::-1], float(lam)
