"""The strict CuPy stand-in is as strict as CuPy where minivit's GPU path depends on it."""
import re

import numpy as np
import pytest


def test_its_arrays_refuse_implicit_conversion_to_numpy(strict_cupy):
    a = strict_cupy.asarray(np.arange(3.0))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3)                       # a NumPy operand, as CuPy refuses it
    np.testing.assert_array_equal(a.get(), [0.0, 1.0, 2.0])


def test_numpy_functions_on_its_arrays_dispatch_to_it(strict_cupy):
    a = strict_cupy.asarray(np.arange(4.0))
    for result in (np.exp(a), np.concatenate([a, a]), a.sum(), np.sqrt(a).max()):
        assert isinstance(result, strict_cupy.ndarray)      # a reduction is a 0-d device array
    np.testing.assert_allclose(np.exp(a).get(), np.exp(np.arange(4.0)))


def test_it_offers_only_what_cupy_has(strict_cupy):
    rng = strict_cupy.random.default_rng(0)
    assert rng.random((2,), dtype=np.float32).dtype == np.float32
    with pytest.raises(AttributeError, match="permutation"):
        rng.permutation(3)                  # NumPy's Generator has it; CuPy's has not
    with pytest.raises(AttributeError):
        strict_cupy.asarray(np.ones(2)).tofile_no_such_method()
    with pytest.raises(AttributeError):
        strict_cupy.no_such_function


def test_it_counts_syncs_copies_and_operations_by_line(strict_cupy):
    counts = strict_cupy.counts
    a = strict_cupy.asarray(np.ones((2, 3)))   # a copy
    b = (a * 2).sum()                           # two operations
    a.reshape(-1)                               # a view: no operation
    float(b)                                    # a sync
    totals = counts.totals()
    assert totals == dict(ops=2, syncs=1, copies=1)
    assert all(site.startswith("test_strict_cupy.py:") for site in counts.ops)


def test_fused_counts_once_and_matches_numpy(strict_cupy):
    from minivit.backend import fused

    @fused
    def axpy(xp, a, x, y):
        z = xp.exp(x)
        z *= a
        return z + y
    x, y = np.arange(4.0), np.ones(4)
    strict_cupy.counts.reset()
    out = axpy(2.0, strict_cupy.asarray(x), strict_cupy.asarray(y))
    assert strict_cupy.counts.totals()["ops"] == 1
    assert strict_cupy.counts.kernels == {"axpy": 1}
    np.testing.assert_array_equal(out.get(), axpy(2.0, x, y))


@pytest.mark.parametrize("body, message", [
    (lambda xp, x: x.sum(axis=-1), "sum is not elementwise"),
    (lambda xp, x: xp.einsum("i,i->", x, x), "einsum is not elementwise"),
    (lambda xp, x: x * x.shape[0], "shape is not elementwise"),
    (lambda xp, x: x[1:], "indexing is not elementwise"),
    (lambda xp, x: x @ x, "@ is not elementwise"),
    (lambda xp, x: xp.exp(x, out=x), "(out=...) is not elementwise"),
    (lambda xp, x: x.__imul__(2.0), "may not update an input in place"),
    (lambda xp, x: 1.0, "returned <class 'float'>"),
])
def test_a_fused_function_may_do_only_what_cupy_fuse_can_trace(strict_cupy, body, message):
    """cupy.fuse traces the function on proxies that refuse all but elementwise work; the
    stand-in refuses the same, so a formula that would fail on a GPU fails in CI."""
    from minivit.backend import fused
    with pytest.raises(TypeError, match=re.escape(message)):
        fused(body)(strict_cupy.asarray(np.arange(3.0)))


