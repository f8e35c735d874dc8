"""A strict stand-in for CuPy, NumPy underneath: minivit's GPU code path, tested on a CPU.

It is a check of host/device discipline and of launch counts, never of CUDA: nothing run on it
is a GPU result. Where it matters it behaves like CuPy 14.2:
- its `ndarray` refuses implicit conversion to NumPy (`__array__` raises TypeError, as CuPy's
  does), and NumPy arrays are refused as operands of its operations ("Unsupported type");
- NumPy's functions and ufuncs called on its arrays dispatch to this module, as CuPy's
  `__array_function__` and `__array_ufunc__` do; a reduction to a single value is a 0-d array;
- it offers only the names CuPy 14.2 has (names.json, read off cupy-cuda13x 14.2.0: the
  module, ndarray's attributes, random.Generator's methods), so code that uses a NumPy-only
  name fails here as it would on a GPU;
- it counts, by the call site in minivit (file:line), the device-to-host syncs (`float`,
  `int`, `bool`, `.item()`, `.get()`, `asnumpy`, printing), the host-to-device copies
  (`asarray` of host data, a NumPy index) and the array-producing operations (an upper bound
  on kernel launches: views are not counted, a `fuse`d function counts once).

Use it in-process through the `strict_cupy` fixture of tests/conftest.py (for --device fake-gpu),
or put this folder first on PYTHONPATH for a subprocess: `import cupy` then finds it.
"""
import json
import os
import sys

import numpy as np

from . import cuda, random  # noqa: F401  (cupy.cuda, cupy.random)
from ._counts import counts  # noqa: F401

NAMES = json.load(open(os.path.join(os.path.dirname(__file__), "names.json")))
__version__ = "14.2.0 (strict stand-in)"
_HOST = ("asarray", "array", "asnumpy", "get_array_module", "fuse")


def _refuse(value):
    raise TypeError(f"Unsupported type {type(value)}")


def _unwrap(value):
    """Our arrays -> their NumPy arrays; NumPy arrays are refused, as CuPy refuses them."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, np.ndarray):
        _refuse(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    return value


def _wrap(value):
    """NumPy results -> our arrays (a NumPy scalar becomes a 0-d array, as in CuPy)."""
    if isinstance(value, np.ndarray):
        return ndarray(value)
    if isinstance(value, np.generic):
        return ndarray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _is_view(result, inputs):
    return isinstance(result, np.ndarray) and any(
        isinstance(a, np.ndarray) and np.may_share_memory(result, a) for a in inputs)


def _run(function, args, kwargs, out=None, owner=None, elementwise=False):
    """Call a NumPy function (or a method of the array `owner`) on unwrapped arguments and wrap
    its result, counting one operation unless the result is a view of an input."""
    if not elementwise or out is not None:
        _not_in_fuse(getattr(function, "__name__", "this operation") + ("(out=...)" if out is not None else ""))
    raw_args = [_unwrap(a) for a in args]
    raw_kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
    result = function(*raw_args, **raw_kwargs)
    flat = [a for a in raw_args for a in (a if isinstance(a, (list, tuple)) else [a])]
    flat.append(owner)
    if not _is_view(result, flat) or out is not None:
        counts.op()
    if out is not None:
        return out
    return _wrap(result)


class ndarray:
    """An array on the pretend device: a NumPy array that only this module's code may touch."""
    __array_priority__ = 100

    def __init__(self, array):
        self._a = array

    # --- what CuPy refuses, and what syncs -------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None):
        counts.sync()
        return self._a.copy()

    def item(self):
        counts.sync()
        return self._a.item()

    def tolist(self):
        counts.sync()
        return self._a.tolist()

    def __float__(self):
        counts.sync()
        return float(self._a)

    def __int__(self):
        counts.sync()
        return int(self._a)

    def __index__(self):
        counts.sync()
        return self._a.__index__()

    def __bool__(self):
        counts.sync()
        return bool(self._a)

    def __repr__(self):
        counts.sync()
        return f"array({self._a!r:.1000}) (strict CuPy stand-in)"

    __str__ = __repr__

    def __format__(self, spec):
        counts.sync()
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    # --- what it is ---------------------------------------------------------------------------------
    shape = property(lambda self: _not_in_fuse("shape") or self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    T = property(lambda self: ndarray(self._a.T))
    flags = property(lambda self: self._a.flags)
    data = property(lambda self: _Pointer(self._a.ctypes.data))  # device memory, by address

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getattr__(self, name):
        """ndarray methods CuPy has, run by NumPy (a NumPy-only method raises AttributeError)."""
        if name.startswith("_") or name not in NAMES["ndarray"]:
            raise AttributeError(f"cupy.ndarray has no attribute {name!r}")
        method = getattr(self._a, name)
        return lambda *args, **kwargs: _run(method, args, kwargs, owner=self._a)

    # --- NumPy's functions on it dispatch here -------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            return NotImplemented
        return globals()["__getattr__"](ufunc.__name__)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func.__name__ not in NAMES["module"]:
            return NotImplemented
        return globals()["__getattr__"](func.__name__)(*args, **kwargs)

    # --- indexing ---------------------------------------------------------------------------------
    def _index(self, index):
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(p, (np.ndarray, list)) for p in parts):
            counts.copy()  # CuPy uploads a host index before it can use it
        parts = tuple(p._a if isinstance(p, ndarray) else p for p in parts)
        return parts if isinstance(index, tuple) else parts[0]

    def __getitem__(self, index):
        _not_in_fuse("indexing")
        result = self._a[self._index(index)]
        if not np.may_share_memory(result, self._a):
            counts.op()
        return _wrap(result)

    def __setitem__(self, index, value):
        _not_in_fuse("indexing")
        self._a[self._index(index)] = _unwrap(value)
        counts.op()

    # --- arithmetic ---------------------------------------------------------------------------------
    def _binary(name, reflected=False, inplace=False):  # noqa: N805  (builds methods)
        def method(self, other):
            if isinstance(other, np.ndarray):
                _refuse(other)
            if not isinstance(other, (ndarray, int, float, complex, bool, np.generic)):
                return NotImplemented
            a, b = (_unwrap(other), self._a) if reflected else (self._a, _unwrap(other))
            counts.op()
            if "matmul" in name:
                _not_in_fuse("@")
            if inplace and _FUSING and any(self is x for x in _FUSING[-1]):
                raise TypeError("cupy.fuse: a fused function may not update an input in place")
            if inplace:
                getattr(self._a, name)(b)
                return self
            return _wrap(getattr(a, name)(b) if not reflected else getattr(np, _UFUNCS[name])(a, b))
        return method

    for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and",
                  "or", "xor", "lt", "le", "gt", "ge", "eq", "ne"):
        locals()[f"__{_name}__"] = _binary(f"__{_name}__")
    for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and",
                  "or", "xor"):
        locals()[f"__r{_name}__"] = _binary(f"__{_name}__", reflected=True)
        locals()[f"__i{_name}__"] = _binary(f"__i{_name}__", inplace=True)
    del _name, _binary

    def __neg__(self):
        counts.op()
        return ndarray(-self._a)

    def __pos__(self):
        return self

    def __abs__(self):
        counts.op()
        return ndarray(abs(self._a))

    def __invert__(self):
        counts.op()
        return ndarray(~self._a)

    __hash__ = None


class _Pointer:
    def __init__(self, ptr):
        self.ptr = ptr


_UFUNCS = {"__add__": "add", "__sub__": "subtract", "__mul__": "multiply",
           "__truediv__": "true_divide", "__floordiv__": "floor_divide", "__mod__": "remainder",
           "__pow__": "power", "__matmul__": "matmul", "__and__": "bitwise_and",
           "__or__": "bitwise_or", "__xor__": "bitwise_xor"}


# --- module functions -----------------------------------------------------------------------------

def asarray(a, dtype=None, order=None, *, blocking=False):
    """Host data -> a device array (one host-to-device copy); a device array stays as it is."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    counts.copy()
    return ndarray(np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(a, dtype=None, copy=True, order="K", ndmin=0, *, blocking=False):
    if isinstance(a, ndarray):
        counts.op()
        return ndarray(np.array(a._a, dtype=dtype, copy=True, order=order, ndmin=ndmin))
    counts.copy()
    return ndarray(np.array(a, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        counts.sync()
        return a._a.copy()
    return np.asarray(a)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


_FUSING = []  # the inputs of each fused function now running (a stack)


def _not_in_fuse(what):
    if _FUSING:
        raise TypeError(f"cupy.fuse: {what} is not elementwise; a fused function may use only "
                        "operators, ufuncs and in-place updates of its own intermediates")


def fuse(*args, **kwargs):
    """cupy.fuse: the function's elementwise chain as one kernel. Here it runs the function
    itself, its operations counted as one, and refuses what cupy.fuse cannot trace: a reduction
    or any other non-elementwise function, a shape, indexing, `out=`, an in-place update of an
    input, and inputs or outputs that are not device arrays or scalars."""
    def decorate(function):
        def fused(*inputs):
            for x in inputs:
                if not isinstance(x, (ndarray, int, float, bool, np.generic)):
                    raise TypeError(f"cupy.fuse: unsupported input {type(x)}")
            counts.kernels[function.__name__] += 1
            _FUSING.append(inputs)
            try:
                with counts.as_one(function.__name__):
                    result = function(*inputs)
            finally:
                _FUSING.pop()
            for y in result if isinstance(result, tuple) else (result,):
                if not isinstance(y, ndarray):
                    raise TypeError(f"cupy.fuse: {function.__name__} returned {type(y)}, not an array")
            return result
        return fused
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_POOL = _MemoryPool()


def get_default_memory_pool():
    return _POOL


def __getattr__(name):
    """cupy.NAME for the names CuPy 14.2 has: NumPy's function of that name, on device arrays
    (a dtype or a constant as it is)."""
    if name.startswith("__") or name not in NAMES["module"]:
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")
    target = getattr(np, name, None)
    if target is None:
        raise AttributeError(f"the strict CuPy stand-in does not provide cupy.{name}")
    if isinstance(target, type) or not callable(target):
        return target
    if isinstance(target, np.ufunc):
        return ufunc(target)

    def function(*args, **kwargs):
        out = kwargs.get("out")
        return _run(target, args, kwargs, out if isinstance(out, ndarray) else None)
    function.__name__ = name
    return function


class ufunc:
    """A CuPy ufunc: called elementwise, with the methods CuPy's have (at, reduce, ...)."""

    def __init__(self, numpy_ufunc):
        self._ufunc, self.__name__ = numpy_ufunc, numpy_ufunc.__name__
        self.nin, self.nout, self.nargs = numpy_ufunc.nin, numpy_ufunc.nout, numpy_ufunc.nargs

    def __call__(self, *args, **kwargs):
        out = kwargs.get("out")
        return _run(self._ufunc, args, kwargs, out if isinstance(out, ndarray) else None,
                    elementwise=True)

    def __getattr__(self, name):
        _not_in_fuse(f"ufunc.{name}")
        if name not in ("at", "reduce", "accumulate", "outer", "reduceat"):
            raise AttributeError(f"cupy.ufunc has no attribute {name!r}")
        method = getattr(self._ufunc, name)
        if name == "at":  # in place: returns None
            def at(a, indices, b=None):
                args = (a, indices) if b is None else (a, indices, b)
                method(*[_unwrap(x) for x in args])
                counts.op()
            return at
        return lambda *args, **kwargs: _run(method, args, kwargs)


class lib:  # noqa: N801  (a module in CuPy)
    class stride_tricks:  # noqa: N801
        @staticmethod
        def as_strided(x, shape=None, strides=None):
            """A view: no operation."""
            return ndarray(np.lib.stride_tricks.as_strided(_unwrap(x), shape, strides))


newaxis = None
float16, float32, float64 = np.float16, np.float32, np.float64
int8, int32, int64, uint8, bool_ = np.int8, np.int32, np.int64, np.uint8, np.bool_
