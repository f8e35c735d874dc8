"""Parity with PyTorch: every op, and the whole ViT, against torch.autograd in float64.

Finite differences (test_ops.py) say a backward is *consistent* with its forward; here an
independent, widely used implementation says both are *the same function*: same outputs, and the
same gradients for a random upstream gradient u, i.e. the same vector-Jacobian product u^T J.
In float64 two correct implementations agree to ~1e-15 relative, so the tolerances are tight.

minivit runs on the device under test (NumPy or CuPy); PyTorch always runs on the CPU.
Inputs are built in NumPy, moved with `.to(device)`, and results come back with `.numpy()`.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed; these parity tests use it as the reference "
                    "implementation: install it with `pip install torch==2.13.0`")
import torch.nn.functional as TF  # noqa: E402

import minivit  # noqa: E402
from minivit import backend, ops  # noqa: E402
from minivit.model import PatchEmbed  # noqa: E402
from minivit.ops import composed  # noqa: E402
from minivit.bench.torch_twin import (gradients_to_minivit, split_heads,  # noqa: E402
                                      torch_twin)

RTOL, ATOL = 1e-10, 1e-12  # float64: a correct op is off by a few ulps, a wrong one by far more
PATCHES = "b c (h p1) (w p2) -> b (h w) (p1 p2 c)"
LABELS = np.array([0, 3, 1, 4, 3, 2])  # 6 labels for 5 classes, one class repeated


def assert_close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def on_cpu(array):
    """A minivit array (NumPy or CuPy) as a NumPy array."""
    return backend.to_device(array, "cpu")


# --- inputs ----------------------------------------------------------------------------------

class R:
    """A real input: standard normal entries (times `scale`) of the given shape."""

    def __init__(self, *shape, scale=1.0):
        self.shape, self.scale = shape, scale

    def sample(self, rng):
        return rng.standard_normal(self.shape) * self.scale


class P(R):
    """A positive input, in [0.5, 2]: for log, a divisor, a fractional power."""

    def sample(self, rng):
        return rng.uniform(0.5, 2.0, self.shape)


# --- torch references that are more than one call ----------------------------------------------

def patchify(images, patch):
    """torch's version of rearrange(PATCHES): (B C H W) -> (B N P*P*C), each patch as (p1 p2 c)."""
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // patch, patch, W // patch, patch)    # b c h p1 w p2
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, -1, patch * patch * C)


def torch_attention(qkv, heads):
    """softmax(q k^T / sqrt(Dh)) v per head, heads merged back as (h dh): (B N 3D) -> (B N D)."""
    q, k, v = split_heads(qkv, heads)
    probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    out = probs @ v                                                    # B H N Dh
    return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)


def torch_sdpa(qkv, heads):
    """The same attention through torch's fused scaled_dot_product_attention."""
    q, k, v = split_heads(qkv, heads)
    out = TF.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)


def torch_labels():
    return torch.from_numpy(LABELS)


# --- the table: (id, minivit function, torch function, inputs) --------------------------------

def case(name, ours, theirs, *inputs):
    return pytest.param(ours, theirs, inputs, id=name)


OPS = [
    # elementwise arithmetic, broadcasting in both directions
    case("add", ops.add, torch.add, R(2, 3, 4), R(3, 1)),
    case("add_scalar_shape", ops.add, torch.add, R(), R(2, 3)),
    case("sub", ops.sub, torch.sub, R(3, 1), R(2, 3, 4)),
    case("mul", ops.mul, torch.mul, R(2, 3, 4), R(1, 3, 1)),
    case("div", ops.div, torch.div, R(2, 3, 4), P(3, 4)),
    case("div_broadcast_numerator", ops.div, torch.div, R(4), P(2, 3, 1)),
    case("neg", ops.neg, torch.neg, R(2, 3)),
    case("power_3", lambda x: ops.power(x, 3), lambda x: x ** 3, R(2, 3)),
    case("power_-0.5", lambda x: ops.power(x, -0.5), lambda x: x ** -0.5, P(2, 3)),
    case("power_2.5", lambda x: ops.power(x, 2.5), lambda x: x ** 2.5, P(2, 3)),
    case("exp", ops.exp, torch.exp, R(2, 3)),
    case("log", ops.log, torch.log, P(2, 3)),
    case("tanh", ops.tanh, torch.tanh, R(2, 3, scale=2)),
    case("erf", ops.erf, torch.erf, R(2, 3, scale=2)),
    # Python operators with a constant: one lambda serves both libraries
    case("operators", lambda x, y: (2 - x) * y / 3 + 1.5 / y,
         lambda x, y: (2 - x) * y / 3 + 1.5 / y, R(2, 3), P(3)),
    # matmul: batch axes broadcast, and their gradients are summed back
    case("matmul", ops.matmul, torch.matmul, R(3, 4), R(4, 2)),
    case("matmul_batched", ops.matmul, torch.matmul, R(2, 3, 4, 5), R(5, 6)),
    case("matmul_broadcast", ops.matmul, torch.matmul, R(2, 1, 4, 5), R(3, 5, 6)),
    case("matmul_broadcast_left", ops.matmul, torch.matmul, R(4, 5), R(2, 5, 3)),
    # reductions
    case("sum_all", ops.sum, torch.sum, R(2, 3, 4)),
    case("sum_axis", lambda x: ops.sum(x, axis=1), lambda x: x.sum(dim=1), R(2, 3, 4)),
    case("sum_axes_keepdims", lambda x: ops.sum(x, axis=(0, 2), keepdims=True),
         lambda x: x.sum(dim=(0, 2), keepdim=True), R(2, 3, 4)),
    case("mean_all", ops.mean, torch.mean, R(2, 3, 4)),
    case("mean_last_keepdims", lambda x: ops.mean(x, axis=-1, keepdims=True),
         lambda x: x.mean(dim=-1, keepdim=True), R(2, 3, 4)),
    case("mean_axes", lambda x: ops.mean(x, axis=(0, -1)), lambda x: x.mean(dim=(0, -1)),
         R(2, 3, 4)),
    # moving entries around
    case("reshape", lambda x: ops.reshape(x, (4, -1)), lambda x: x.reshape(4, -1), R(2, 3, 4)),
    case("transpose_all", ops.transpose, lambda x: x.permute(2, 1, 0), R(2, 3, 4)),
    case("transpose_axes", lambda x: ops.transpose(x, (1, 0, 2)), lambda x: x.permute(1, 0, 2),
         R(2, 3, 4)),
    case("rearrange_patches", lambda x: ops.rearrange(x, PATCHES, p1=4, p2=4),
         lambda x: patchify(x, 4), R(2, 3, 8, 12)),
    case("rearrange_qkv",
         lambda x: ops.rearrange(x, "b n (three h dh) -> three b h n dh", three=3, h=2),
         lambda x: split_heads(x, 2), R(2, 5, 24)),
    case("broadcast_to", lambda x: ops.broadcast_to(x, (2, 3, 4)), lambda x: x.expand(2, 3, 4),
         R(1, 1, 4)),
    case("concat", lambda x, y: ops.concat([x, y], axis=1), lambda x, y: torch.cat([x, y], dim=1),
         R(2, 1, 4), R(2, 3, 4)),
    case("concat_3_last", lambda x, y, z: ops.concat([x, y, z], axis=-1),
         lambda x, y, z: torch.cat([x, y, z], dim=-1), R(2, 3), R(2, 1), R(2, 4)),
    # indexing: basic (each entry read at most once) and fancy (entries read several times)
    case("getitem_class_token", lambda x: x[:, 0], lambda x: x[:, 0], R(2, 5, 3)),
    case("getitem_slices", lambda x: x[1:, ::2, -1], lambda x: x[1:, ::2, -1], R(3, 5, 4)),
    case("getitem_new_axis", lambda x: x[None, :, 1:3], lambda x: x[None, :, 1:3], R(2, 4)),
    case("getitem_repeated_rows", lambda x: x[[0, 2, 0, 0]], lambda x: x[[0, 2, 0, 0]], R(3, 4)),
    case("getitem_repeated_columns", lambda x: x[:, [1, 1, 3]], lambda x: x[:, [1, 1, 3]],
         R(2, 4, 3)),
    case("getitem_pairs", lambda x: x[[0, 1, 1, 0], [2, 2, 0, 2]],
         lambda x: x[[0, 1, 1, 0], [2, 2, 0, 2]], R(2, 3)),
    # the layers
    case("softmax", ops.softmax, lambda x: torch.softmax(x, dim=-1), R(2, 3, 5)),
    case("softmax_axis1", lambda x: ops.softmax(x, axis=1), lambda x: torch.softmax(x, dim=1),
         R(2, 3, 5)),
    case("softmax_large_logits", ops.softmax, lambda x: torch.softmax(x, dim=-1),
         R(4, 7, scale=300)),
    case("attention", lambda x: ops.attention(x, heads=2), lambda x: torch_attention(x, 2),
         R(2, 5, 24)),
    case("attention_sdpa", lambda x: ops.attention(x, heads=3), lambda x: torch_sdpa(x, 3),
         R(2, 4, 18)),
    case("attention_1head", lambda x: ops.attention(x, heads=1), lambda x: torch_sdpa(x, 1),
         R(1, 3, 9)),
    # torch's F.linear takes the weight as (Dout Din): minivit's W transposed
    case("linear", ops.linear, lambda x, w, b: TF.linear(x, w.T, b), R(2, 5, 6), R(6, 7), R(7)),
    case("linear_no_bias", ops.linear, lambda x, w: TF.linear(x, w.T), R(3, 6), R(6, 2)),
    case("gelu_erf", ops.gelu, TF.gelu, R(2, 3, 4, scale=2)),
    case("gelu_tanh", lambda x: ops.gelu(x, "tanh"), lambda x: TF.gelu(x, approximate="tanh"),
         R(2, 3, 4, scale=2)),
    case("layernorm", ops.layernorm, lambda x, g, b: TF.layer_norm(x, (6,), g, b, eps=1e-6),
         R(2, 5, 6), R(6), R(6)),
    case("layernorm_eps", lambda x, g, b: ops.layernorm(x, g, b, eps=1e-2),
         lambda x, g, b: TF.layer_norm(x, (4,), g, b, eps=1e-2), R(3, 4, scale=0.1), R(4), R(4)),
    case("cross_entropy", lambda z: ops.cross_entropy(z, LABELS),
         lambda z: TF.cross_entropy(z, torch_labels()), R(6, 5)),
    case("cross_entropy_smoothing", lambda z: ops.cross_entropy(z, LABELS, label_smoothing=0.1),
         lambda z: TF.cross_entropy(z, torch_labels(), label_smoothing=0.1), R(6, 5)),
    case("cross_entropy_large_logits", lambda z: ops.cross_entropy(z, LABELS, label_smoothing=0.3),
         lambda z: TF.cross_entropy(z, torch_labels(), label_smoothing=0.3), R(6, 5, scale=300)),
    # the composed versions (built from primitives, differentiated by the engine) against torch too
    case("composed.gelu_erf", composed.gelu, TF.gelu, R(2, 3, 4, scale=2)),
    case("composed.gelu_tanh", lambda x: composed.gelu(x, "tanh"),
         lambda x: TF.gelu(x, approximate="tanh"), R(2, 3, 4, scale=2)),
    case("composed.layernorm", composed.layernorm,
         lambda x, g, b: TF.layer_norm(x, (6,), g, b, eps=1e-6), R(2, 5, 6), R(6), R(6)),
    case("composed.softmax", lambda x: composed.softmax(x, axis=1),
         lambda x: torch.softmax(x, dim=1), R(2, 3, 5)),
    case("composed.attention", lambda x: composed.attention(x, heads=2),
         lambda x: torch_attention(x, 2), R(2, 5, 24)),
    case("composed.cross_entropy", lambda z: composed.cross_entropy(z, LABELS),
         lambda z: TF.cross_entropy(z, torch_labels()), R(6, 5)),
    case("composed.cross_entropy_smoothing", lambda z: composed.cross_entropy(z, LABELS, 0.1),
         lambda z: TF.cross_entropy(z, torch_labels(), label_smoothing=0.1), R(6, 5)),
]


@pytest.mark.parametrize("ours, theirs, inputs", OPS)
def test_op_matches_torch(ours, theirs, inputs, device):
    """Same output, and the same gradient of every input for one random upstream gradient."""
    rng = np.random.default_rng(0)
    arrays = [spec.sample(rng) for spec in inputs]
    mine = [minivit.Tensor(a, requires_grad=True).to(device) for a in arrays]
    reference = [torch.tensor(a, requires_grad=True) for a in arrays]

    out, expected = ours(*mine), theirs(*reference)
    assert out.dtype == np.float64, "float64 in, float64 out"
    assert out.shape == tuple(expected.shape)
    assert_close(out.numpy(), expected.detach().numpy(), "forward")

    upstream = np.asarray(rng.standard_normal(out.shape))
    out.backward(backend.to_device(upstream, device))
    expected.backward(torch.from_numpy(upstream))
    for i, (x, t) in enumerate(zip(mine, reference)):
        assert x.grad is not None, f"input {i} got no gradient"
        assert x.grad.shape == x.shape and x.grad.dtype == np.float64
        assert_close(on_cpu(x.grad), t.grad.numpy(), f"gradient of input {i}")


# --- the whole model --------------------------------------------------------------------------

def random_model(rng, device, **overrides):
    """C-micro/4 in float64 with every parameter random (the head starts at zero otherwise,
    which would make every gradient before it zero and the test toothless)."""
    model = minivit.ViT.from_config("C-micro/4", num_classes=10, **overrides)
    for name, p in model.named_parameters():
        is_norm_scale = "norm" in name and name.endswith(".weight")
        p.data = rng.standard_normal(p.shape) * 0.2 + (1.0 if is_norm_scale else 0.0)
    return model.to(device, dtype=np.float64)


@pytest.mark.parametrize("pool, gelu", [("cls", "erf"), ("gap", "tanh")])
def test_vit_matches_torch(pool, gelu, device):
    """The ViT and a plain torch.nn twin with the same weights: same logits, same loss
    (cross-entropy with label smoothing 0.1), same gradient for every parameter and the image."""
    rng = np.random.default_rng(0)
    model = random_model(rng, device, pool=pool, gelu=gelu)
    twin = torch_twin(model)
    images = rng.standard_normal((2, 3, 32, 32))
    labels = rng.integers(0, 10, size=2)

    x = minivit.Tensor(images, requires_grad=True).to(device)
    logits = model(x)
    loss = ops.cross_entropy(logits, labels, label_smoothing=0.1)
    loss.backward()

    x_t = torch.tensor(images, requires_grad=True)
    logits_t = twin(x_t)
    loss_t = TF.cross_entropy(logits_t, torch.from_numpy(labels), label_smoothing=0.1)
    loss_t.backward()

    assert_close(logits.numpy(), logits_t.detach().numpy(), "logits")
    assert_close(loss.item(), loss_t.item(), "loss")
    assert_close(on_cpu(x.grad), x_t.grad.numpy(), "gradient of the images")
    grads_t = gradients_to_minivit(twin, model.config["heads"])
    assert grads_t.keys() == dict(model.named_parameters()).keys()
    for name, p in model.named_parameters():
        assert_close(on_cpu(p.grad), grads_t[name], f"gradient of {name}")


def test_patch_embedding_is_a_strided_convolution(device):
    """Cutting (p1 p2 c)-ordered patches then Linear(P*P*C, D) is conv2d with stride P and kernel
    W.reshape(P, P, C, D).permute(3, 2, 0, 1): same output, same gradients of W, b and the image."""
    rng = np.random.default_rng(0)
    P, C, D = 4, 3, 8
    embed = PatchEmbed(image_size=16, patch_size=P, in_channels=C, dim=D)
    embed.proj.weight.data = rng.standard_normal((P * P * C, D))
    embed.proj.bias.data = rng.standard_normal(D)
    embed.to(device)
    images = rng.standard_normal((2, C, 16, 16))

    x = minivit.Tensor(images, requires_grad=True).to(device)
    out = embed(x)                                                     # B N D

    x_t = torch.tensor(images, requires_grad=True)
    w_t = torch.tensor(embed.proj.weight.numpy(), requires_grad=True)
    b_t = torch.tensor(embed.proj.bias.numpy(), requires_grad=True)
    kernel = w_t.reshape(P, P, C, D).permute(3, 2, 0, 1)               # D C P P
    out_t = TF.conv2d(x_t, kernel, b_t, stride=P).flatten(2).transpose(1, 2)

    assert_close(out.numpy(), out_t.detach().numpy(), "patch embeddings")
    upstream = rng.standard_normal(out.shape)
    out.backward(backend.to_device(upstream, device))
    out_t.backward(torch.from_numpy(upstream))
    assert_close(on_cpu(x.grad), x_t.grad.numpy(), "gradient of the images")
    assert_close(on_cpu(embed.proj.weight.grad), w_t.grad.numpy(), "gradient of the weight")
    assert_close(on_cpu(embed.proj.bias.grad), b_t.grad.numpy(), "gradient of the bias")
