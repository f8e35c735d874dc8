"""Data parallelism on the CPU's cores: one batch split into shards, a thread for each.

NumPy runs each elementwise op (GELU, layernorm, softmax) and each of attention's many small
matrix products on a single core. But the samples of a batch never meet in a ViT (there is no
batch norm), so the batch can be cut into shards, one per core, and each shard sent through the
model in its own thread: NumPy lets go of Python's lock (the GIL) while it computes, so the
shards run at the same time (all but the Python between NumPy's calls, which takes turns).
This is what data-parallel training does across GPUs:

    1. scatter:    shard s gets rows [start_s, stop_s) of the batch, n_s samples;
    2. in parallel: logits_s = model(x_s), loss_s = the mean loss of its n_s samples, and the
                   gradient of loss_s for every parameter (`leaf_gradients` writes no `.grad`,
                   so the threads can share one model);
    3. all-reduce: the batch loss is the mean over all B samples, L = sum_s (n_s / B) loss_s,
                   so dL/dW = sum_s (n_s / B) dloss_s/dW, summed into each parameter's `.grad`.

Each thread's matrix products use one core (threadpoolctl), since the threads fill them all.
Dropout in shard s draws from a generator of its own, seeded in order from the main one, so the
same seed gives the same weights whichever thread finishes first.
On the GPU, which is parallel already, or with one thread, the batch is one shard, run in the
calling thread: the same code, with one weight of 1.
"""
import functools
import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from threadpoolctl import ThreadpoolController

from minivit import backend
from minivit.engine import leaf_gradients, no_grad


def cpu_count():
    """The number of cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cores_per_rank(world):
    """This process's share of the machine's cores: all of them, or under mpiexec those of the
    machine divided between the ranks that run on it (minivit.distributed.World)."""
    return max(1, cpu_count() // world.ranks_on_this_machine())


def shards(n, count):
    """`count` slices of nearly equal size that cover range(n) (fewer when n < count)."""
    bounds = np.linspace(0, n, min(count, n) + 1).round().astype(int).tolist()  # Python ints
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]


@functools.cache
def _pool(threads):
    return ThreadPoolExecutor(threads, thread_name_prefix="minivit")


@functools.cache
def _blas():
    return ThreadpoolController()


def blas_per_thread(threads=None, processes=1):
    """A block in which BLAS (OpenBLAS's matrix products) uses one core, when `threads` (0 or
    None: every core) run data-parallel, in each of `processes` processes on the machine (under
    mpiexec); with one thread in one process, BLAS keeps all of its own.

    Put a whole training loop in it, not just the steps: after each product OpenBLAS's own
    threads spin for a while waiting for more, so one product between two steps (a resize of
    the batch) would leave them taking cores from the next step. Used as a function, it holds
    until `.restore_original_limits()` (threadpoolctl's `limit`). With NumPy's pip wheels
    (OpenBLAS on pthreads) the limit holds in every thread; an OpenMP-threaded BLAS (some conda
    builds) may apply it to the calling thread only.
    """
    shared = (threads or cpu_count()) * processes > 1
    return _blas().limit(limits=1 if shared else None, user_api="blas")


def run_in_threads(work, pieces):
    """[work(piece) for piece in pieces], each in its own thread, BLAS on one core per thread
    (one piece: in this thread, BLAS as it is). An error in one is raised once all have
    finished (none is left running)."""
    if len(pieces) == 1:
        return [work(pieces[0])]
    with blas_per_thread(len(pieces)):
        futures = [_pool(len(pieces)).submit(work, piece) for piece in pieces]
        wait(futures)
    return [future.result() for future in futures]


def rank_shards(n, threads, world=None):
    """(the shards of a batch of n, the indices of those this process computes): one shard per
    thread, and with a distributed.World of N processes N * T shards, rank r taking the T from
    r T (fewer when n is smaller)."""
    size, rank = (world.size, world.rank) if world is not None else (1, 0)
    pieces = shards(n, size * threads)
    return pieces, [i for i in range(len(pieces)) if i // threads == rank]


def shard_threads(images, threads):
    """The threads a batch is split between: one on the GPU (it is parallel already), else
    `threads` (0 or None: one for every core)."""
    return 1 if backend.is_gpu_array(images) else threads or cpu_count()


def rank_rows(n, threads, world=None):
    """The rows of a batch of n that this process computes (its logits' rows)."""
    pieces, mine = rank_shards(n, threads, world)
    return slice(pieces[mine[0]].start, pieces[mine[-1]].stop) if mine else slice(0, 0)


def loss_and_gradients(model, loss_fn, images, targets, threads=None, world=None):
    """Forward and backward of one batch: leaves d(mean loss)/dW in each parameter's `.grad`
    (added to what is there, like `backward`) and returns (the loss, a 0-d array on the batch's
    device: reading it is a sync on the GPU; the logits B K).

    images: an array (B C H W), targets: an array (B ...); loss_fn(logits, targets) must be the
    mean over the samples. threads: 0 or None for one a core. world: a distributed.World whose
    ranks all call this with the same batch: each computes its shards (rank_shards), and the
    gradients and the loss, summed over the ranks in one buffer, are the whole batch's on every
    rank; the logits are those of this rank's rows (rank_rows).
    """
    xp = backend.get_array_module(images)
    pieces, mine = rank_shards(len(images), shard_threads(images, threads), world)
    seeds = backend.rng(np).integers(2 ** 63, size=len(pieces))  # one dropout generator a shard

    def forward_backward(i):
        with backend.use_generator(seeds[i], xp):  # made only if dropout draws
            logits = model(images[pieces[i]])
            loss = loss_fn(logits, targets[pieces[i]])
            return loss.data, logits.data, dict(leaf_gradients(loss))

    results = run_in_threads(forward_backward, mine) if mine else []
    weights = [(pieces[i].stop - pieces[i].start) / len(images) for i in mine]
    if len(pieces) == 1 and mine:  # the whole batch in one piece: its gradients as they are
        loss, logits, total = results[0]
    else:
        loss = sum(weight * loss for weight, (loss, _, _) in zip(weights, results))
        logits = (xp.concatenate([logits for _, logits, _ in results]) if results else  # no rows
                  xp.zeros((0, model.head.weight.shape[1]), dtype=images.dtype))
        total = {param: sum(weight * gradients[param] for weight, (_, _, gradients)
                            in zip(weights, results)) for param in results[0][2]} if results else {}
    if world is not None and world.size > 1:
        loss, total = sum_over_ranks(world, model.parameters(), loss, total)
    for param, grad in total.items():
        param.grad = grad if param.grad is None else param.grad + grad
    return loss, logits


def sum_over_ranks(world, params, loss, gradients):
    """(loss, {param: gradient}) summed over the ranks: every gradient and the loss in one flat
    buffer, one Allreduce (a parameter this rank has no gradient for contributes zeros)."""
    xp = backend.get_array_module(*(p.data for p in params))
    parts = [gradients[p] if p in gradients else xp.zeros_like(p.data) for p in params]
    flat = xp.concatenate([g.reshape(-1) for g in parts] + [xp.reshape(xp.asarray(loss), (1,))])
    flat = world.sum(flat.astype(parts[0].dtype))
    offsets = np.cumsum([0] + [g.size for g in parts]).tolist()
    total = {p: flat[a:b].reshape(p.shape) for p, a, b in zip(params, offsets, offsets[1:])}
    return flat[-1], total


def predict(model, images, threads=None):
    """model(images).data (B K) without a graph, the batch (an array) split over threads like a
    training step. (A block's `keep_attention` would keep one shard's attention: call the model
    itself for that, as minivit.analysis does.)"""
    pieces = shards(len(images), shard_threads(images, threads))
    with no_grad():  # a flag of the whole process: the threads see it too
        logits = run_in_threads(lambda piece: model(images[piece]).data, pieces)
    return backend.get_array_module(images).concatenate(logits)
