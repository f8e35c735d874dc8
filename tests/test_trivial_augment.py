"""TrivialAugment (minivit.data.augment.trivial_augment): each op, forced on a batch, against a
reference computed another way (PIL's ImageEnhance and ImageOps for the colour ops, a per-pixel
loop for the geometric ones), the draws, the "trivial" preset of `batches`, and the GPU path on
the strict CuPy stand-in."""
import math

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from minivit import backend
from minivit.data import Augment, batches
from minivit.data.augment import TRIVIAL_BINS, TRIVIAL_OPS, trivial_augment, trivial_draws

B = 24  # images per forced batch


def photos(n=B, size=32, seed=0):
    """(n 3 size size) uint8 images with some structure: smooth colour blobs plus noise, each in
    its own narrower or wider range of values (so that contrast and autocontrast have work)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, 3, 4, 4))
    smooth = np.kron(coarse, np.ones((size // 4, size // 4)))                 # blocky blobs
    values = 0.7 * smooth + 0.3 * rng.random((n, 3, size, size))
    lo = rng.uniform(0, 120, (n, 1, 1, 1))
    hi = lo + rng.uniform(20, 255 - lo)
    return np.round(lo + (hi - lo) * values).astype(np.uint8)


def forced(name, images, magnitude, sign, **options):
    """trivial_augment with every image given the op `name` (magnitude, sign: one per image)."""
    op = np.full(len(images), TRIVIAL_OPS.index(name))
    return trivial_augment(images, op, np.asarray(magnitude), np.asarray(sign), **options)


def strengths(n=B, seed=1):
    """A magnitude bin and a sign for each of n images, the ends 0 and 30 among them."""
    rng = np.random.default_rng(seed)
    magnitude = rng.integers(0, TRIVIAL_BINS, n)
    magnitude[:4] = [0, 30, 0, 30]
    sign = np.array([0, 0, 1, 1] + list(rng.integers(0, 2, n - 4)))
    return magnitude, sign


def pil(image):
    """(C H W) uint8 -> a PIL RGB image, and back with `array`."""
    return Image.fromarray(image.transpose(1, 2, 0))


def array(picture):
    return np.asarray(picture).transpose(2, 0, 1)


# --- the colour ops against PIL ------------------------------------------------------------------

ENHANCE = {"brightness": ImageEnhance.Brightness, "color": ImageEnhance.Color,
           "contrast": ImageEnhance.Contrast, "sharpness": ImageEnhance.Sharpness}


@pytest.mark.parametrize("name", list(ENHANCE))
def test_each_enhance_op_equals_pils_imageenhance_to_the_bit(name):
    images = photos()
    magnitude, sign = strengths()
    out = forced(name, images, magnitude, sign)
    for image, result, m, s in zip(images, out, magnitude, sign):
        factor = 1 + (1 - 2 * s) * 0.99 * m / 30              # 0.01 .. 1.99, as TrivialAugmentWide
        np.testing.assert_array_equal(result, array(ENHANCE[name](pil(image)).enhance(factor)))
    changed = (out != images).mean(axis=(1, 2, 3))
    assert (changed[magnitude == 0] == 0).all() and (changed[magnitude == 30] > 0.5).all()


def test_posterize_and_solarize_equal_pils_imageops():
    images = photos()
    magnitude, sign = strengths()
    posterized = forced("posterize", images, magnitude, sign)
    solarized = forced("solarize", images, magnitude, sign)
    for image, poster, solar, m in zip(images, posterized, solarized, magnitude):
        bits = 8 - round(m / 5)                                  # 8 .. 2
        np.testing.assert_array_equal(poster, array(ImageOps.posterize(pil(image), bits)))
        threshold = 255 - 8.5 * m                                # 255 .. 0
        np.testing.assert_array_equal(solar, array(ImageOps.solarize(pil(image), threshold)))
    assert np.unique(posterized[magnitude == 30] % 64).tolist() == [0]   # 2 bits kept
    np.testing.assert_array_equal(solarized[magnitude == 30], 255 - images[magnitude == 30])


def test_autocontrast_stretches_each_channel_to_0_255_like_pil():
    images = photos()
    images[0, 1] = 77                                            # a flat channel stays as it is
    out = forced("autocontrast", images, *strengths())
    for image, result in zip(images, out):
        for channel, stretched in zip(image.astype(int), result.astype(int)):
            lo, hi = channel.min(), channel.max()
            expected = channel if hi == lo else (channel - lo) * 255 // (hi - lo)  # exact integers
            np.testing.assert_array_equal(stretched, expected)
    assert (out[0, 1] == 77).all()
    not_flat = out[:, [0, 2]]
    assert (not_flat.min(axis=(2, 3)) == 0).all() and (not_flat.max(axis=(2, 3)) == 255).all()
    # PIL computes x * (255 / (hi - lo)) - lo * (255 / (hi - lo)) in float64 and truncates, so
    # where the exact value is a whole number it is sometimes one below (254 for the brightest)
    reference = np.stack([array(ImageOps.autocontrast(pil(image))) for image in images])
    below = out.astype(int) - reference
    assert set(np.unique(below)) <= {0, 1} and (below == 0).mean() > 0.99


def test_equalize_equals_pils_imageops_equalize():
    images = photos()
    images[0, 1] = 77                                            # flat: kept
    images[1] = np.arange(32 * 32).reshape(32, 32) % 200         # 200 values, evenly ...
    images[1, :, 0, 0] = 255                                     # ... and one brightest pixel
    out = forced("equalize", images, *strengths())
    for image, result in zip(images, out):
        np.testing.assert_array_equal(result, array(ImageOps.equalize(pil(image))))
    assert (out[0, 1] == 77).all() and (out[1, :, 0, 0] == 255).all()
    def off_the_line(images):
        """How far the channels' cumulative histograms are from a straight line 0 .. all pixels,
        at four points."""
        counts = [np.bincount(channel.ravel(), minlength=256).cumsum()
                  for channel in images.reshape(-1, 32 * 32)]
        return np.abs(np.array(counts)[:, 63::64] - [256, 512, 768, 1024]).mean()

    assert off_the_line(images[2:]) > 200 and off_the_line(out[2:]) < 20



def test_one_channel_images_are_augmented_as_pils_gray_mode_L():
    images = np.random.default_rng(0).integers(0, 17, (8, 1, 8, 8), dtype=np.uint8) * 15  # digits
    magnitude, sign = strengths(n=8)
    for name, reference in [*ENHANCE.items(), ("equalize", None)]:
        out = forced(name, images, magnitude, sign)
        for image, result, m, s in zip(images[:, 0], out[:, 0], magnitude, sign):
            gray = Image.fromarray(image)
            expected = (ImageOps.equalize(gray) if reference is None
                        else reference(gray).enhance(1 + (1 - 2 * s) * 0.99 * m / 30))
            np.testing.assert_array_equal(result, np.asarray(expected), err_msg=name)

# --- the geometric ops against a per-pixel loop --------------------------------------------------

def warp_reference(image, name, m, s, fill=0):
    """The geometric op, one pixel at a time: the output pixel at (x, y), measured from the
    centre ((W - 1) / 2, (H - 1) / 2), copies the source pixel nearest to M (x, y) + t."""
    C, H, W = image.shape
    v = 1 - 2 * s
    a, b, c, d, e, f = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0
    if name == "rotate":
        angle = v * math.radians(135 * m / 30)
        a, b, d, e = math.cos(angle), -math.sin(angle), math.sin(angle), math.cos(angle)
    elif name == "shear_x":
        b = v * 0.99 * m / 30
    elif name == "shear_y":
        d = v * 0.99 * m / 30
    elif name == "translate_x":
        c = v * (W * m // 30)
    elif name == "translate_y":
        f = v * (H * m // 30)
    cy, cx = (H - 1) / 2, (W - 1) / 2
    out = np.full_like(image, fill)
    for row in range(H):
        for col in range(W):
            x, y = col - cx, row - cy
            source_col = math.floor(a * x + b * y + c + cx + 0.5)
            source_row = math.floor(d * x + e * y + f + cy + 0.5)
            if 0 <= source_row < H and 0 <= source_col < W:
                out[:, row, col] = image[:, source_row, source_col]
    return out


@pytest.mark.parametrize("name", ["rotate", "shear_x", "shear_y", "translate_x", "translate_y"])
def test_each_geometric_op_equals_a_per_pixel_loop(name):
    images = photos(n=12, size=16)
    magnitude, sign = strengths(n=12)
    out = forced(name, images, magnitude, sign)
    for image, result, m, s in zip(images, out, magnitude, sign):
        np.testing.assert_array_equal(result, warp_reference(image, name, m, s))
    moved = (out != images).mean(axis=(1, 2, 3))
    assert (moved[magnitude == 0] == 0).all() and (moved[magnitude == 30] > 0.4).all()


def test_rotate_by_90_degrees_and_translate_by_half_the_image_on_hand_checked_cases():
    images = photos(n=2)
    # bin 20 is 135 * 20 / 30 = 90 degrees: sign 0 turns counter-clockwise, as np.rot90
    turned = forced("rotate", images, [20, 20], [0, 1])
    np.testing.assert_array_equal(turned[0], np.rot90(images[0], k=1, axes=(1, 2)))
    np.testing.assert_array_equal(turned[1], np.rot90(images[1], k=-1, axes=(1, 2)))
    # bin 15 is 32 * 15 / 30 = 16 pixels: the source of column x is column x + 16 (sign 0)
    shifted = forced("translate_x", images, [15, 15], [0, 1], fill=128)
    np.testing.assert_array_equal(shifted[0, :, :, :16], images[0, :, :, 16:])
    assert (shifted[0, :, :, 16:] == 128).all()                  # brought in from outside: fill
    np.testing.assert_array_equal(shifted[1, :, :, 16:], images[1, :, :, :16])
    assert (shifted[1, :, :, :16] == 128).all()


def test_rotate_equals_pils_rotate_but_for_ties_between_two_equally_near_pixels():
    images = photos(n=16)
    magnitude = np.array([1, 3, 7, 10, 13, 17, 23, 27] * 2)
    sign = np.repeat([0, 1], 8)
    out = forced("rotate", images, magnitude, sign)
    for image, result, m, s in zip(images, out, magnitude, sign):
        angle = (1 - 2 * s) * 135 * m / 30                       # degrees, counter-clockwise
        reference = pil(image).rotate(angle, resample=Image.NEAREST)  # black outside, as ours
        np.testing.assert_array_equal(result, array(reference))
    # at 135 degrees, the source points of a diagonal of pixels fall exactly half-way between
    # two pixels, and PIL's float arithmetic picks the other one there
    out = forced("rotate", images[:1], [30], [0])[0]
    reference = array(pil(images[0]).rotate(135, resample=Image.NEAREST))
    assert 0.97 < (out == reference).all(axis=0).mean() < 1


# --- identity, and one op per image ---------------------------------------------------------------

def test_identity_and_magnitude_0_leave_the_images_unchanged():
    images = photos()
    rng = np.random.default_rng(2)
    unchanged = forced("identity", images, rng.integers(0, 31, B), rng.integers(0, 2, B))
    np.testing.assert_array_equal(unchanged, images)
    for name in TRIVIAL_OPS:
        if name not in ("solarize", "autocontrast", "equalize"):  # solarize 0 inverts 255s
            for sign in (0, 1):
                out = forced(name, images, np.zeros(B, dtype=int), np.full(B, sign))
                np.testing.assert_array_equal(out, images, err_msg=name)


def test_a_mixed_batch_gives_each_image_only_its_own_op():
    images = photos(n=3 * len(TRIVIAL_OPS))
    op = np.tile(np.arange(len(TRIVIAL_OPS)), 3)
    magnitude, sign = strengths(n=len(op), seed=3)
    out = trivial_augment(images, op, magnitude, sign)
    assert out.dtype == np.uint8 and out.shape == images.shape
    for b in range(len(images)):
        alone = trivial_augment(images[b:b + 1], op[b:b + 1], magnitude[b:b + 1], sign[b:b + 1])
        np.testing.assert_array_equal(out[b], alone[0], err_msg=TRIVIAL_OPS[op[b]])


# --- the draws and the "trivial" preset ----------------------------------------------------------

def test_draws_pick_ops_and_magnitudes_uniformly():
    op, magnitude, sign = trivial_draws(np.random.default_rng(0), 28_000)
    assert all(a.dtype == np.int64 and a.shape == (28_000,) for a in (op, magnitude, sign))
    per_op = np.bincount(op)
    assert len(per_op) == len(TRIVIAL_OPS) == 14 and (abs(per_op - 2000) < 200).all()  # sd 43
    per_bin = np.bincount(magnitude)
    assert len(per_bin) == 31 and (abs(per_bin - 28_000 / 31) < 150).all()
    assert set(np.unique(sign)) == {0, 1} and abs(sign.mean() - 0.5) < 0.02
    again = trivial_draws(np.random.default_rng(0), 28_000)
    assert all(np.array_equal(a, b) for a, b in zip(again, (op, magnitude, sign)))


def test_the_trivial_preset_is_basic_plus_trivialaugment():
    assert Augment.named("trivial", 32) == Augment(crop=4, flip=True, trivial=True)
    assert Augment.named("strong", 32) == Augment(crop=4, flip=True, erase=0.25)


def batches_of(images, seed, augment="trivial"):
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    return [x for x, _ in batches(images, None, 16, mean=mean, std=std, shuffle=True,
                                  rng=np.random.default_rng(seed), augment=augment)]


def test_trivial_batches_have_the_right_shape_and_repeat_with_the_seed():
    images = photos(n=40)
    out = batches_of(images, 0)
    assert [x.shape for x in out] == [(16, 3, 32, 32), (16, 3, 32, 32), (8, 3, 32, 32)]
    assert all(x.dtype == np.float32 for x in out)
    pixels = np.concatenate(out) * 0.25 + 0.5                    # back to pixel / 255
    np.testing.assert_allclose(pixels * 255, np.round(pixels * 255), atol=1e-3)  # from uint8
    assert all(np.array_equal(a, b) for a, b in zip(out, batches_of(images, 0)))
    assert not all(np.array_equal(a, b) for a, b in zip(out, batches_of(images, 1)))
    assert not all(np.array_equal(a, b) for a, b in zip(out, batches_of(images, 0, "basic")))


def test_trivial_batches_on_the_device_match_the_cpu_with_one_copy_a_batch(device, xp):
    images = photos(n=40)
    reference = batches_of(images, 0)
    on_device = backend.to_device(images, device)
    batches_of(on_device, 5)                                     # constants made once per device
    counts = getattr(xp, "counts", None)                         # the strict stand-in's ledger
    if counts is not None:
        counts.reset()
    out = batches_of(on_device, 0)
    if counts is not None:
        assert counts.totals()["copies"] == len(out) and counts.totals()["syncs"] == 0
    for x, x_cpu in zip(out, reference):
        assert isinstance(x, xp.ndarray)
        np.testing.assert_array_equal(backend.to_device(x, "cpu"), x_cpu)


def test_trivial_augment_on_the_stand_in_is_a_fixed_sequence_of_ops_without_a_sync(strict_cupy):
    images = strict_cupy.asarray(photos())
    totals = []
    for seed in (0, 1, 2):
        draws = [strict_cupy.asarray(a) for a in trivial_draws(np.random.default_rng(seed), B)]
        trivial_augment(images, *draws)                          # the tables made once
        strict_cupy.counts.reset()
        out = trivial_augment(images, *draws)
        totals.append(strict_cupy.counts.totals())
        assert isinstance(out, strict_cupy.ndarray) and out.dtype == np.uint8
    assert totals[0] == totals[1] == totals[2]                   # whatever the draws
    assert totals[0]["syncs"] == 0 and totals[0]["copies"] == 0 and totals[0]["ops"] < 200
