"""Every op's hand-written backward against finite differences (minivit.gradcheck), on several
shapes and edge cases: batch 1, a single token, one head, broadcasting in every direction.
Also: the fused layers agree with their composed versions, forward and backward."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from minivit import Tensor, gradcheck, ops
from minivit.backend import to_device
from minivit.ops import composed

PATCHES = "b c (h p1) (w p2) -> b (h w) (p1 p2 c)"


def tensors(device, *shapes, positive=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    if positive:
        arrays = [np.abs(a) + 0.5 for a in arrays]
    return [Tensor(a, requires_grad=True).to(device) for a in arrays]


LABELS = np.array([2, 0, 1])

# name: (function of Tensors, list of input-shape lists to try)
CASES = {
    "add": (ops.add, [[(2, 3), (2, 3)], [(2, 1, 4), (3, 1)], [(1,), (2, 3)]]),
    "sub": (ops.sub, [[(2, 3), (3,)], [(4, 1), (1, 5)]]),
    "mul": (ops.mul, [[(2, 3), (2, 3)], [(2, 1, 4), (3, 1)], [(), (3, 2)]]),
    "neg": (ops.neg, [[(3, 2)]]),
    "power": (lambda x: ops.power(x, 3), [[(2, 3)]]),
    "exp": (ops.exp, [[(2, 3)]]),
    "tanh": (ops.tanh, [[(2, 3)]]),
    "erf": (ops.erf, [[(2, 3)]]),
    "matmul": (ops.matmul, [[(3, 4), (4, 2)], [(2, 3, 4), (4, 5)], [(2, 1, 3, 4), (3, 4, 2)],
                            [(1, 1, 4), (4, 1)]]),
    "sum": (lambda x: ops.sum(x, axis=1), [[(2, 3, 4)], [(1, 1, 1)]]),
    "sum_all": (ops.sum, [[(2, 3)]]),
    "sum_keepdims": (lambda x: ops.sum(x, axis=(0, 2), keepdims=True), [[(2, 3, 4)]]),
    "mean": (lambda x: ops.mean(x, axis=-1), [[(2, 3, 4)], [(1, 1, 5)]]),
    "reshape": (lambda x: ops.reshape(x, (3, -1)), [[(2, 3, 2)]]),
    "transpose": (lambda x: ops.transpose(x, (1, 0, 2)), [[(2, 3, 4)]]),
    "transpose_all": (ops.transpose, [[(2, 3, 4)]]),
    "rearrange": (lambda x: ops.rearrange(x, PATCHES, p1=2, p2=2), [[(2, 3, 4, 6)], [(1, 1, 2, 2)]]),
    "broadcast_to": (lambda x: ops.broadcast_to(x, (3, 2, 4)), [[(1, 1, 4)], [(2, 1)]]),
    "concat": (lambda x, y: ops.concat([x, y], axis=1), [[(2, 1, 3), (2, 4, 3)], [(1, 1, 2), (1, 1, 2)]]),
    "class_token": (lambda x: x[:, 0], [[(2, 5, 3)], [(1, 1, 3)]]),
    "fancy_index": (lambda x: x[:, [0, 2, 0]], [[(2, 3, 2)]]),
    "linear": (ops.linear, [[(2, 5, 4), (4, 3), (3,)], [(1, 1, 4), (4, 1), (1,)], [(3, 4), (4, 2)]]),
    "gelu_erf": (ops.gelu, [[(2, 5, 4)], [(1,)]]),
    "gelu_tanh": (lambda x: ops.gelu(x, "tanh"), [[(2, 5, 4)]]),
    "layernorm": (ops.layernorm, [[(2, 5, 4), (4,), (4,)], [(1, 1, 2), (2,), (2,)]]),
    "softmax": (ops.softmax, [[(2, 3, 5)], [(1, 1)], [(4, 1, 3)]]),
    "softmax_axis0": (lambda x: ops.softmax(x, axis=0), [[(3, 4)]]),
    "attention": (lambda qkv: ops.attention(qkv, heads=2), [[(2, 5, 12)], [(1, 1, 6)]]),
    "attention_1head": (lambda qkv: ops.attention(qkv, heads=1), [[(2, 3, 9)]]),
    "cross_entropy": (lambda x: ops.cross_entropy(x, LABELS), [[(3, 4)]]),
    "cross_entropy_smooth": (lambda x: ops.cross_entropy(x, LABELS, 0.1), [[(3, 4)]]),
    "composed_gelu": (composed.gelu, [[(2, 3)]]),
    "composed_layernorm": (composed.layernorm, [[(2, 3, 4), (4,), (4,)]]),
    "composed_softmax": (composed.softmax, [[(2, 5)]]),
    "composed_attention": (lambda qkv: composed.attention(qkv, 3), [[(1, 4, 9)]]),
}
# ops defined only for positive inputs (or far from zero in the denominator)
POSITIVE_CASES = {
    "log": (ops.log, [[(2, 3)]]),
    "div": (ops.div, [[(2, 3), (2, 3)], [(2, 1, 4), (3, 1)]]),
    "sqrt_as_power": (lambda x: ops.power(x, 0.5), [[(3,)]]),
}

PARAMS = [pytest.param(fn, shapes, name in POSITIVE_CASES, id=f"{name}-{i}")
          for name, (fn, all_shapes) in {**CASES, **POSITIVE_CASES}.items()
          for i, shapes in enumerate(all_shapes)]


@pytest.mark.parametrize("fn, shapes, positive", PARAMS)
def test_gradcheck(fn, shapes, positive, device):
    errors = gradcheck(fn, tensors(device, *shapes, positive=positive))
    assert max(errors.values()) < 1e-6


@settings(max_examples=25, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       op=st.sampled_from([ops.add, ops.sub, ops.mul, ops.div]))
def test_broadcasting_gradients(shapes, op):
    """Any two broadcastable shapes: the output has the broadcast shape, and the gradients
    (summed back to each input's shape) pass gradcheck."""
    x, w = tensors("cpu", *shapes.input_shapes, positive=True)
    assert op(x, w).shape == shapes.result_shape
    gradcheck(op, [x, w])
    assert x.grad.shape == x.shape and w.grad.shape == w.shape


FUSED_AND_COMPOSED = [
    pytest.param(ops.gelu, composed.gelu, [(2, 5, 8)], id="gelu_erf"),
    pytest.param(lambda x: ops.gelu(x, "tanh"), lambda x: composed.gelu(x, "tanh"), [(2, 5, 8)],
                 id="gelu_tanh"),
    pytest.param(ops.layernorm, composed.layernorm, [(2, 5, 8), (8,), (8,)], id="layernorm"),
    pytest.param(ops.softmax, composed.softmax, [(2, 3, 7)], id="softmax"),
    pytest.param(lambda x: ops.attention(x, 4), lambda x: composed.attention(x, 4), [(2, 6, 24)],
                 id="attention"),
    pytest.param(lambda x: ops.cross_entropy(x, LABELS, 0.1),
                 lambda x: composed.cross_entropy(x, LABELS, 0.1), [(3, 5)], id="cross_entropy"),
]


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("fused, composed_fn, shapes", FUSED_AND_COMPOSED)
def test_fused_matches_composed(fused, composed_fn, shapes, dtype, tolerance, device, xp):
    """Two independent derivations of the same layer agree to rounding, in float32 and float64
    (on a GPU, and on the stand-in, the fused ops run their `backend.fused` formulas)."""
    results = []
    for fn in (fused, composed_fn):
        inputs = [t.to(dtype=dtype) for t in tensors(device, *shapes, seed=1)]
        out = fn(*inputs)
        out.backward(xp.asarray(np.random.default_rng(2).standard_normal(out.shape), dtype=dtype))
        results.append([out.numpy()] + [to_device(t.grad, "cpu") for t in inputs])
    for fused_array, composed_array in zip(*results):
        assert fused_array.dtype == dtype
        np.testing.assert_allclose(fused_array, composed_array, rtol=10 * tolerance, atol=tolerance)


def test_gelu_forms_differ_by_the_known_amount():
    """The tanh approximation stays within 5e-4 of the exact GELU (REFERENCE: about 4.7e-4)."""
    x = Tensor(np.linspace(-6, 6, 10001))
    gap = np.abs(ops.gelu(x).data - ops.gelu(x, "tanh").data).max()
    assert 4e-4 < gap < 5e-4


def test_softmax_and_cross_entropy_are_stable_for_huge_logits():
    x = Tensor(np.array([[1000.0, 0.0, -1000.0]]), requires_grad=True)
    assert np.isfinite(ops.softmax(x).data).all()
    loss = ops.cross_entropy(x, np.array([1]))
    loss.backward()
    assert np.isclose(loss.item(), 1000.0) and np.isfinite(x.grad).all()


def test_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        ops.cross_entropy(Tensor(np.zeros((2, 4))), np.array([0, 4]))
    with pytest.raises(ValueError, match="labels must be 2 integers"):
        ops.cross_entropy(Tensor(np.zeros((2, 4))), np.array([0.0, 1.0]))


def test_dropout_scales_kept_entries_and_routes_the_gradient():
    x = Tensor(np.ones((200, 100)), requires_grad=True)
    y = ops.dropout(x, p=0.25)
    kept = y.data != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    y.backward(np.ones(y.shape))
    np.testing.assert_array_equal(x.grad, y.data)
    assert ops.dropout(x, p=0.25, training=False) is x


def test_attention_rejects_a_width_not_divisible_by_three_heads():
    with pytest.raises(ValueError, match="not 3 \\* heads"):
        ops.attention(Tensor(np.zeros((1, 2, 10))), heads=2)
