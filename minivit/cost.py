"""What a model costs and what a machine can do: forward FLOPs per image (the formula of
REFERENCE.md's FLOP section), and the float32 matmul rate a device reaches. minivit.bench puts
them beside its timings; a training run records both in its summary, so that a time can be
read against the machine it was measured on."""
import time

import numpy as np


def model_flops(config, num_classes=10):
    """Forward FLOPs per image: 2 N L (4 + 2r) D^2 (projections and MLP) + 4 L N^2 D (attention)
    + 2 N (P^2 C) D (patch embedding) + 2 D K (head), N tokens, r = mlp_dim / D."""
    D, L, P = config["dim"], config["depth"], config["patch_size"]
    N = (config["image_size"] // P) ** 2 + 1
    r = config["mlp_dim"] / D
    return (2 * N * L * (4 + 2 * r) * D * D + 4 * L * N * N * D
            + 2 * (N - 1) * P * P * config.get("in_channels", 3) * D + 2 * D * num_classes)


def stem_flops(config):
    """Forward FLOPs per image of a hybrid's CNN stem (minivit.cnn.HybridViT's config:
    image_size, in_channels, stem_widths, stem_depth): 2 k^2 C_in C_out H' W' for each 3x3 conv
    (k = 3, padding 1, so H' W' is its input's size), stage s (from 0) at side H / 2^s, its first
    conv from the previous stage's channels (the image's for the first), the others from its own.
    GroupNorm, ReLU and max-pool are a few operations an element, left out as model_flops leaves
    out the LayerNorms and the softmax."""
    side, c_in, total = config["image_size"], config.get("in_channels", 3), 0
    for width in config["stem_widths"]:
        for _ in range(config.get("stem_depth", 1)):
            total += 2 * 3 * 3 * c_in * width * side * side
            c_in = width
        side //= 2
    return total


def forward_flops(config, num_classes=10):
    """Forward FLOPs per image of a ViT's config (model_flops), or of a hybrid's (one with
    stem_widths): its stem (stem_flops), then the transformer on 2^stages x 2^stages "patches"
    of the stem's C' channels, whose embedding is the linear C' -> D, 2 N C' D."""
    if "stem_widths" not in config:
        return model_flops(config, num_classes)
    patch = 2 ** len(config["stem_widths"])
    features = config["stem_widths"][-1] / (patch * patch)  # P^2 C = C' in model_flops' terms
    return stem_flops(config) + model_flops(
        {**config, "patch_size": patch, "in_channels": features}, num_classes)


def synchronize(xp):
    if xp is not np:
        xp.cuda.Device().synchronize()


def matmul_peak(xp, size=2048, repeats=5):
    """The best float32 GEMM rate this device reaches, in FLOP/s."""
    a = xp.asarray(np.random.default_rng(0).random((size, size), np.float32))
    a @ a
    best = float("inf")
    for _ in range(repeats):
        synchronize(xp)
        start = time.perf_counter()
        a @ a
        synchronize(xp)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best
