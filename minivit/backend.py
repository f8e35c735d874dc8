"""Devices: NumPy on the CPU, CuPy on the GPU, one code path for both.

Every op asks its inputs which array module they live in (DeZero's `get_array_module`) and
calls `xp.exp`, `xp.matmul`, ... on that module, so the same line of code runs on either device.
CuPy is optional: `import minivit` works without it, and asking for the GPU without it (or
without a CUDA device) raises one `DeviceError` that says how to fix it.
"""
import contextlib
import functools
import threading

import numpy as np

from minivit.errors import DeviceError

try:
    import cupy
except ImportError:  # a CPU-only machine: everything still works on NumPy
    cupy = None

DEVICES = ("cpu", "gpu")


def gpu_available():
    """True when CuPy is installed and sees at least one CUDA device."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy raises CUDARuntimeError (or worse) when no driver is present
        return False


def check_device(device):
    """Raise a clear error for an unknown device or a GPU that cannot be used."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}: use 'cpu' or 'gpu'")
    if device == "gpu" and cupy is None:
        raise DeviceError("device 'gpu' needs CuPy: install the build for your CUDA, "
                          "`pip install cupy-cuda13x` (CUDA 13) or `cupy-cuda12x` (CUDA 12), "
                          "or use --device cpu")
    if device == "gpu" and not gpu_available():
        raise DeviceError("device 'gpu' needs a CUDA GPU, and CuPy sees none on this machine: "
                          "use --device cpu")


def is_gpu_array(array):
    return cupy is not None and isinstance(array, cupy.ndarray)


def device_of(array):
    return "gpu" if is_gpu_array(array) else "cpu"


def get_array_module(*arrays):
    """`cupy` if any of the arrays is a CuPy array, else `numpy`."""
    return cupy if any(is_gpu_array(a) for a in arrays) else np


def to_device(array, device):
    """Copy an array to 'cpu' (NumPy) or 'gpu' (CuPy); no copy when it is already there."""
    check_device(device)
    if device == "gpu":
        return cupy.asarray(array)
    return cupy.asnumpy(array) if is_gpu_array(array) else np.asarray(array)


_seed = 0
_generators = {}
_this_thread = threading.local()


def manual_seed(seed):
    """Seed the generators that dropout and initialisation draw from, on both devices."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def rng(xp=np):
    """The seeded random generator of an array module (NumPy's or CuPy's `default_rng`), or the
    one that `use_generator` set for this thread and module."""
    generators = getattr(_this_thread, "generators", {})
    own = generators.get(xp)
    if isinstance(own, (int, np.integer)):  # a seed: made now that something draws from it
        own = generators[xp] = xp.random.default_rng(own)
    if own is not None:
        return own
    if xp not in _generators:
        _generators[xp] = xp.random.default_rng(_seed)
    return _generators[xp]


@contextlib.contextmanager
def use_generator(generator, xp=np):
    """Inside this block, this thread's `rng(xp)` is `generator`, or a default_rng of it made
    at the first draw when it is a seed (minivit.parallel gives each shard of a batch its own,
    so that threads do not race for one, processes do not draw the same dropout masks, and a
    run can be repeated; on a GPU a generator costs a kernel, so none is made without dropout)."""
    generators = getattr(_this_thread, "generators", {})
    _this_thread.generators = {**generators, xp: generator}
    try:
        yield generator
    finally:
        _this_thread.generators = generators


def fused(formula):
    """An elementwise formula, `formula(xp, *arrays)`, run as one fused kernel on the GPU
    (cupy.fuse) and as the plain Python function on NumPy: the same math on both devices, tested
    on the CPU. It may use operators, xp's elementwise functions (xp.tanh) and in-place updates
    of its own intermediates (which keep the NumPy path in a few buffers); never a reduction, a
    shape, an index, or an in-place update of an input."""
    kernels = {}

    @functools.wraps(formula)
    def run(*args):
        xp = get_array_module(*args)
        if xp is np:
            return formula(np, *args)
        if xp not in kernels:
            def kernel(*arrays):
                return formula(xp, *arrays)
            kernel.__name__ = formula.__name__
            kernels[xp] = xp.fuse(kernel)
        return kernels[xp](*args)
    return run


def erf(array):
    """The error function, elementwise (SciPy's on the CPU, CuPy's on the GPU)."""
    if is_gpu_array(array):
        import cupyx.scipy.special
        return cupyx.scipy.special.erf(array)
    import scipy.special
    return scipy.special.erf(array)
