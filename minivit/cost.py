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
