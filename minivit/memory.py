"""Memory: how much the process has held, and how glibc's malloc hands it out.

Neither is part of the ViT; both matter to a training run. `minivit.train` and `minivit.bench`
report the peak, and call `keep_freed_memory` once before they start (it changes malloc for the
whole process, so `import minivit` does not).
"""
import ctypes
import sys

from minivit import backend


def keep_freed_memory():
    """Ask glibc's malloc (Linux) to keep large freed blocks for the next array, instead of
    handing each back to the system.

    By default a block over 128 KiB is mapped fresh from the system and unmapped when freed, and
    every 4 KiB page of the next one costs a page fault when first written: ~80,000 faults, a
    fifth of the time, in a C-mini/4 training step, whose temporaries are the same sizes step
    after step. Blocks up to 32 MiB (the most glibc allows) now come from the heap, and up to
    256 MiB of freed heap (plus 64 MiB of slack) stay with each of malloc's arenas (one for the
    main thread, and about one for each data-parallel thread). It changes malloc for the whole
    process, so minivit.train and minivit.bench call it, not `import minivit`. Elsewhere than
    Linux with glibc: no change.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): leave malloc as it is
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)
    libc.mallopt(M_TOP_PAD, 64 << 20)


_gpu_pool_peak = 0  # bytes: the largest size of CuPy's memory pool that note_gpu_pool has seen


def note_gpu_pool():
    """Remember the size of CuPy's memory pool now (a number the host keeps: no sync). The
    training loop calls it after every GPU step, since the pool's size at the end of a run is not
    its peak: CuPy frees the pool's cached blocks and retries when an allocation fails."""
    global _gpu_pool_peak
    _gpu_pool_peak = max(_gpu_pool_peak, backend.cupy.get_default_memory_pool().total_bytes())


def peak_memory_mib(device):
    """The most memory this process has held since it started (as the CPU's peak resident set,
    whatever ran before): its peak resident set (CPU), or the largest size of CuPy's memory pool
    seen by note_gpu_pool, now included (GPU); 0 where the system cannot say (no getrusage)."""
    if device == "gpu":
        note_gpu_pool()
        return _gpu_pool_peak / 2 ** 20
    try:
        import resource
    except ImportError:
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024  # macOS: bytes; Linux: KiB
