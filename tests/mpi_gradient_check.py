"""Run by tests/test_distributed.py under `mpiexec -n N`: the gradients of N processes with T
threads each against one process on the whole batch, in float64. Rank 0 prints the largest
difference over every parameter, relative to the parameter's largest gradient entry."""
import sys

import numpy as np

import minivit
from minivit import distributed, ops, parallel

threads = int(sys.argv[1])
world = distributed.world()
minivit.manual_seed(0)
model = minivit.ViT(image_size=8, patch_size=4, in_channels=3, num_classes=5, dim=16, depth=2,
                    heads=2, mlp_dim=32).to(dtype=np.float64)
rng = np.random.default_rng(0)  # every rank: the same weights and batch
for p in model.parameters():  # random everywhere (the zero head would zero most gradients)
    p.data = rng.standard_normal(p.shape) * 0.2 + (1.0 if p.ndim == 1 else 0.0)
images, labels = rng.standard_normal((7, 3, 8, 8)), rng.integers(0, 5, 7)

parallel.loss_and_gradients(model, ops.cross_entropy, images, labels, threads, world)
shared = {name: p.grad for name, p in model.named_parameters()}
model.zero_grad()
ops.cross_entropy(model(images), labels).backward()  # the whole batch, in one process
worst = max(float(np.abs(shared[name] - p.grad).max() / np.abs(p.grad).max())
            for name, p in model.named_parameters())
if world.rank == 0:
    print(f"ranks {world.size} threads {threads} worst relative difference {worst:.3e}")
