"""Inductive bias: the convolution, pooling, GroupNorm and ReLU ops (finite differences and
PyTorch parity, forward and backward), the SmallCNN and HybridViT models, and few-shot linear
evaluation (closed-form ridge regression on frozen features)."""
import numpy as np
import pytest

from minivit import Tensor, backend, gradcheck, ops
from minivit.cnn import INDUCTIVE_BIAS_CONFIGS, HybridViT, SmallCNN, inductive_bias_models
from minivit.linear_eval import (BIAS_CONSTANT, RidgeClassifier, features, few_shot_linear_eval,
                                 sample_shots)
from minivit.model import PatchEmbed, ViT


def tensors(device, *shapes, seed=1, away_from_zero=False):
    """Random inputs. Not seed 0: gradcheck draws its upstream gradient u from seed 0, and with
    u = x GroupNorm's dx vanishes when every group has one gamma (groups = C): scaling a group's
    x leaves its output unchanged, so u^T J = 0 along u = x, and the check would compare zeros."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    if away_from_zero:  # ReLU's kink at 0: keep every entry at least 0.1 from it
        arrays = [np.sign(a) * (np.abs(a) + 0.1) for a in arrays]
    return [Tensor(a, requires_grad=True).to(device) for a in arrays]


def conv(stride=1, padding=0):
    return lambda x, w, b=None: ops.conv2d(x, w, b, stride=stride, padding=padding)


# name: (function of Tensors, input shapes)
CASES = {
    "conv2d": (conv(), [(2, 3, 5, 6), (4, 3, 3, 3), (4,)]),
    "conv2d_stride2": (conv(stride=2), [(2, 3, 7, 6), (4, 3, 3, 3), (4,)]),
    "conv2d_pad1": (conv(padding=1), [(2, 3, 5, 4), (2, 3, 3, 3), (2,)]),
    "conv2d_stride2_pad1": (conv(stride=2, padding=1), [(2, 2, 6, 5), (3, 2, 3, 3), (3,)]),
    "conv2d_no_bias": (conv(padding=1), [(2, 3, 4, 4), (2, 3, 3, 3)]),
    "conv2d_batch1": (conv(padding=1), [(1, 2, 4, 5), (3, 2, 3, 3), (3,)]),
    "conv2d_1x1": (conv(), [(2, 5, 3, 4), (4, 5, 1, 1), (4,)]),
    "conv2d_patchify": (conv(stride=2), [(2, 3, 4, 6), (5, 3, 2, 2), (5,)]),
    "conv2d_rectangular": (conv(stride=2, padding=1), [(1, 2, 5, 7), (3, 2, 2, 3)]),
    "max_pool2d": (ops.max_pool2d, [(2, 3, 4, 6)]),
    "max_pool2d_3_with_remainder": (lambda x: ops.max_pool2d(x, 3), [(2, 2, 7, 8)]),
    "group_norm_1": (lambda x, g, b: ops.group_norm(x, 1, g, b), [(2, 4, 3, 3), (4,), (4,)]),
    "group_norm_2": (lambda x, g, b: ops.group_norm(x, 2, g, b), [(2, 4, 3, 5), (4,), (4,)]),
    "group_norm_C": (lambda x, g, b: ops.group_norm(x, 4, g, b), [(2, 4, 3, 3), (4,), (4,)]),
    "group_norm_batch1_3d": (lambda x, g, b: ops.group_norm(x, 3, g, b), [(1, 6, 5), (6,), (6,)]),
}


@pytest.mark.parametrize("fn, shapes", [pytest.param(fn, shapes, id=name)
                                        for name, (fn, shapes) in CASES.items()])
def test_gradcheck(fn, shapes, device):
    errors = gradcheck(fn, tensors(device, *shapes))
    assert max(errors.values()) < 1e-6


def test_gradcheck_relu(device):
    errors = gradcheck(ops.relu, tensors(device, (3, 4, 5), away_from_zero=True))
    assert max(errors.values()) < 1e-6


def test_shapes_and_errors():
    x = Tensor(np.zeros((2, 3, 32, 32)))
    assert ops.conv2d(x, Tensor(np.zeros((8, 3, 3, 3))), padding=1).shape == (2, 8, 32, 32)
    assert ops.conv2d(x, Tensor(np.zeros((8, 3, 3, 3))), None, 2, 1).shape == (2, 8, 16, 16)
    assert ops.conv2d(x, Tensor(np.zeros((8, 3, 4, 4))), stride=4).shape == (2, 8, 8, 8)
    assert ops.conv2d(x, Tensor(np.zeros((8, 3, 5, 5)))).shape == (2, 8, 28, 28)
    assert ops.max_pool2d(x).shape == (2, 3, 16, 16)
    assert ops.max_pool2d(Tensor(np.zeros((1, 1, 5, 7))), 2).shape == (1, 1, 2, 3)
    assert ops.group_norm(x, 3, Tensor(np.ones(3)), Tensor(np.zeros(3))).shape == x.shape
    with pytest.raises(ValueError, match="input has 3 channels but the weight expects 4"):
        ops.conv2d(x, Tensor(np.zeros((8, 4, 3, 3))))
    with pytest.raises(ValueError, match="does not fit"):
        ops.conv2d(Tensor(np.zeros((1, 3, 2, 2))), Tensor(np.zeros((8, 3, 3, 3))))
    with pytest.raises(ValueError, match="divisible by groups=2"):
        ops.group_norm(x, 2, Tensor(np.ones(3)), Tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="window size 3 does not fit"):
        ops.max_pool2d(Tensor(np.zeros((1, 1, 2, 2))), 3)


def test_relu_and_max_pool_route_the_gradient():
    x = Tensor(np.array([[[[1.0, -2.0], [3.0, 0.0]]]]), requires_grad=True)   # 1 1 2 2
    y = ops.relu(x)
    np.testing.assert_array_equal(y.data, [[[[1, 0], [3, 0]]]])
    y.backward(np.full(y.shape, 5.0))
    np.testing.assert_array_equal(x.grad, [[[[5, 0], [5, 0]]]])               # 0 at x = 0
    x.grad = None
    y = ops.max_pool2d(x)
    y.backward(np.array([[[[7.0]]]]))
    np.testing.assert_array_equal(x.grad, [[[[0, 0], [7, 0]]]])


def test_global_average_pooling_is_a_mean():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 4)), requires_grad=True)
    pooled = x.mean(axis=(2, 3))
    np.testing.assert_allclose(pooled.data, x.data.reshape(2, 3, -1).mean(-1))
    pooled.backward(np.ones((2, 3)))
    np.testing.assert_allclose(x.grad, np.full(x.shape, 1 / 16))


# --- parity with PyTorch, float64 -------------------------------------------------------------

def torch_cases():
    F = pytest.importorskip("torch.nn.functional", reason="PyTorch is not installed")

    def conv_case(stride, padding):
        return (lambda *a: ops.conv2d(*a, stride=stride, padding=padding),
                lambda *a: F.conv2d(*a, stride=stride, padding=padding))

    def gn_case(groups, eps=1e-5):
        return (lambda x, g, b: ops.group_norm(x, groups, g, b, eps),
                lambda x, g, b: F.group_norm(x, groups, g, b, eps))

    return {
        "conv2d": (*conv_case(1, 0), [(2, 3, 6, 5), (4, 3, 3, 3), (4,)]),
        "conv2d_stride2_pad1": (*conv_case(2, 1), [(2, 3, 7, 8), (5, 3, 3, 3), (5,)]),
        "conv2d_no_bias_pad2_5x5": (*conv_case(1, 2), [(1, 2, 6, 6), (3, 2, 5, 5)]),
        "conv2d_1x1": (*conv_case(1, 0), [(2, 6, 4, 4), (3, 6, 1, 1), (3,)]),
        "conv2d_patchify": (*conv_case(4, 0), [(2, 3, 8, 12), (6, 3, 4, 4), (6,)]),
        "max_pool2d": (ops.max_pool2d, lambda x: F.max_pool2d(x, 2), [(2, 3, 6, 8)]),
        "max_pool2d_3_with_remainder": (lambda x: ops.max_pool2d(x, 3),
                                        lambda x: F.max_pool2d(x, 3), [(2, 2, 8, 7)]),
        "group_norm_1": (*gn_case(1), [(2, 6, 3, 4), (6,), (6,)]),
        "group_norm_2": (*gn_case(2), [(2, 6, 3, 4), (6,), (6,)]),
        "group_norm_C_eps": (*gn_case(6, 1e-2), [(2, 6, 3, 4), (6,), (6,)]),
        "relu": (ops.relu, F.relu, [(3, 4, 5)]),
    }


@pytest.mark.parametrize("name", ["conv2d", "conv2d_stride2_pad1", "conv2d_no_bias_pad2_5x5",
                                  "conv2d_1x1", "conv2d_patchify", "max_pool2d",
                                  "max_pool2d_3_with_remainder", "group_norm_1", "group_norm_2",
                                  "group_norm_C_eps", "relu"])
def test_op_matches_torch(name, device):
    """Same output, and the same gradient of every input for one random upstream gradient."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    ours, theirs, shapes = torch_cases()[name]
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    mine = [Tensor(a, requires_grad=True).to(device) for a in arrays]
    reference = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = ours(*mine), theirs(*reference)
    assert out.dtype == np.float64 and out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    upstream = rng.standard_normal(out.shape)
    out.backward(backend.to_device(upstream, device))
    expected.backward(torch.from_numpy(upstream))
    for i, (x, t) in enumerate(zip(mine, reference)):
        np.testing.assert_allclose(backend.to_device(x.grad, "cpu"), t.grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=f"gradient of input {i}")


def test_patch_embedding_is_conv2d_with_stride_p():
    """ViT's patchify + linear is conv2d with a P x P kernel and stride P: im2col's (u v c) rows
    are exactly the patch vectors (p1 p2 c)."""
    rng = np.random.default_rng(0)
    embed = PatchEmbed(image_size=8, patch_size=4, in_channels=3, dim=5).to(dtype=np.float64)
    images = Tensor(rng.standard_normal((2, 3, 8, 8)))
    kernel = embed.proj.weight.data.reshape(4, 4, 3, 5).transpose(3, 2, 0, 1)    # D C P P
    out = ops.conv2d(images, kernel, embed.proj.bias.data, stride=4)              # B D h w
    np.testing.assert_allclose(ops.rearrange(out, "b d h w -> b (h w) d").data,
                               embed(images).data, rtol=1e-12, atol=1e-12)


# --- models -----------------------------------------------------------------------------------

def randomise(model, rng):
    """Random parameters in float64 (ViT's zero head would make every earlier gradient 0)."""
    for name, p in model.named_parameters():
        is_scale = "norm" in name and name.endswith(".weight")                  # around 1
        p.data = rng.standard_normal(p.shape) * 0.3 + (1.0 if is_scale else 0.0)
    return model.to(dtype=np.float64)


def tiny_hybrid(**overrides):
    settings = dict(image_size=8, in_channels=3, num_classes=3, stem_widths=(4,), groups=2,
                    dim=8, depth=1, heads=2, mlp_dim=16)
    return HybridViT(**{**settings, **overrides})


def test_model_shapes():
    images = np.zeros((2, 3, 32, 32), np.float32)
    cnn = SmallCNN(widths=(8, 16, 16), groups=4)
    assert cnn(images).shape == (2, 10) and cnn.forward_features(Tensor(images)).shape == (2, 16)
    hybrid = HybridViT(stem_widths=(8, 16), groups=4, dim=16, depth=1, heads=2, mlp_dim=32)
    assert hybrid.patch_embed(Tensor(images)).shape == (2, 64, 16)                 # 8 x 8 tokens
    assert hybrid.pos_embed.shape == (1, 65, 16)
    assert hybrid(images).shape == (2, 10)
    assert hybrid.forward_features(Tensor(images)).shape == (2, 16)
    assert hybrid.patch_embed.patch_size == 4 and hybrid.config["stem_widths"] == (8, 16)
    gap = tiny_hybrid(pool="gap", image_size=16, stem_widths=(4, 4))
    assert gap.pos_embed.shape == (1, 16, 8) and gap(np.zeros((1, 3, 16, 16))).shape == (1, 3)
    with pytest.raises(ValueError, match="takes 32x32 images"):
        hybrid(np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(ValueError, match="expected images of shape"):
        cnn(np.zeros((1, 1, 32, 32), np.float32))


def test_hybrid_resize_interpolates_the_token_grid():
    model = tiny_hybrid()                                                          # 4 x 4 tokens
    model.resize(16)
    assert model.pos_embed.shape == (1, 65, 8) and model(np.zeros((1, 3, 16, 16))).shape == (1, 3)


def test_hybrid_embedding_is_a_1x1_convolution():
    """Tokens from the feature map with patch size 1, then Linear(C', D): a 1x1 conv."""
    rng = np.random.default_rng(0)
    embed = randomise(tiny_hybrid(), rng).patch_embed
    images = Tensor(rng.standard_normal((2, 3, 8, 8)))
    feature_map = embed.stem[0](images)                                            # B C' h w
    kernel = embed.proj.weight.data.T[:, :, None, None]                            # D C' 1 1
    out = ops.conv2d(feature_map, kernel, embed.proj.bias.data)
    np.testing.assert_allclose(ops.rearrange(out, "b d h w -> b (h w) d").data,
                               embed(images).data, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", [tiny_hybrid, lambda: SmallCNN(image_size=8, num_classes=3,
                                                                  widths=(4, 6), groups=2)],
                         ids=["hybrid", "cnn"])
def test_model_gradcheck(make):
    """Finite differences through the whole model (stem convs, GroupNorm, ReLU, max-pool, tokens,
    transformer, head), for the image and a few entries of every kind of parameter."""
    rng = np.random.default_rng(0)
    model = randomise(make(), rng)
    images = Tensor(rng.standard_normal((2, 3, 8, 8)), requires_grad=True)
    params = dict(model.named_parameters())
    picked = {name: p for name, p in params.items()
              if "conv" in name or "norm.weight" in name or name.startswith(("head", "pos_embed"))
              or name.endswith("proj.weight")}
    errors = gradcheck(lambda *_: model(images), {"images": images, **picked},
                       name=type(model).__name__, max_entries=4)
    assert max(errors.values()) < 1e-6 and any("conv" in n for n in errors)


def test_inductive_bias_models_are_of_similar_size():
    """The counts the docstring states; every model within 0.25-0.4M parameters."""
    models = inductive_bias_models(num_classes=10)
    counts = {name: m.num_parameters() for name, m in models.items()}
    assert counts == {"vit": 311_338, "hybrid": 332_362, "cnn": 288_746}
    assert isinstance(models["vit"], ViT) and isinstance(models["hybrid"], HybridViT)
    hybrid_config = INDUCTIVE_BIAS_CONFIGS["hybrid"]
    assert all(models["vit"].config[k] == v for k, v in hybrid_config.items()
               if k in ("dim", "depth", "heads", "mlp_dim"))        # the same transformer
    assert inductive_bias_models(100, vit=dict(pool="gap"))["vit"].pool == "gap"


# --- few-shot linear evaluation -----------------------------------------------------------------

def separable_problem(rng, classes=4, dim=16, per_class=5, test_per_class=20):
    centres = rng.standard_normal((classes, dim)) * 5

    def draw(n):
        labels = np.repeat(np.arange(classes), n)
        return centres[labels] + 0.3 * rng.standard_normal((len(labels), dim)), labels
    return (*draw(per_class), *draw(test_per_class))


def test_few_shot_linear_eval_separates_separable_classes():
    rng = np.random.default_rng(0)
    x, y, x_test, y_test = separable_problem(rng)
    assert few_shot_linear_eval(x, y, x_test, y_test, num_classes=4) == 1.0
    assert few_shot_linear_eval(x, y, x_test, (y_test + 1) % 4, num_classes=4) == 0.0


def test_ridge_classifier_matches_a_direct_least_squares_solution():
    """W = (X^T X + l2 I)^-1 X^T Y is the least-squares solution of the stacked system
    [X; sqrt(l2) I] W = [Y; 0], computed here by np.linalg.lstsq from scratch."""
    rng = np.random.default_rng(1)
    x, y, x_test, y_test = separable_problem(rng, classes=3, dim=20, per_class=4)  # n < D
    x[:, 0] = 7.0                                                    # a constant feature
    for l2 in (2.0 ** 10, 1.0):
        classifier = RidgeClassifier(x, y, num_classes=3, l2=l2)
        standard = (x - x.mean(0)) / (x.std(0) + 1e-5)
        X = np.hstack([standard, np.full((len(x), 1), BIAS_CONSTANT)])
        Y = 2 * (y[:, None] == np.arange(3)) - 1.0
        stacked = np.vstack([X, np.sqrt(l2) * np.eye(X.shape[1])])
        targets = np.vstack([Y, np.zeros((X.shape[1], 3))])
        W = np.linalg.lstsq(stacked, targets, rcond=None)[0]
        np.testing.assert_allclose(classifier.weight, W, rtol=1e-8, atol=1e-10)
        test_standard = (x_test - x.mean(0)) / (x.std(0) + 1e-5)
        scores = np.hstack([test_standard, np.full((len(x_test), 1), BIAS_CONSTANT)]) @ W
        np.testing.assert_array_equal(classifier.predict(x_test), scores.argmax(1))
        accuracy = few_shot_linear_eval(x, y, x_test, y_test, 3, l2=l2)
        assert accuracy == np.mean(scores.argmax(1) == y_test)


def test_sample_shots_gives_k_of_each_class():
    labels = np.random.default_rng(0).integers(0, 5, size=200)
    picked = sample_shots(labels, 3, np.random.default_rng(1))
    assert len(picked) == 15 and len(set(picked.tolist())) == 15
    np.testing.assert_array_equal(labels[picked], np.repeat(np.arange(5), 3))
    np.testing.assert_array_equal(picked, sample_shots(labels, 3, np.random.default_rng(1)))
    assert not np.array_equal(picked, sample_shots(labels, 3, np.random.default_rng(2)))
    with pytest.raises(ValueError, match="fewer than 100 shots"):
        sample_shots(labels, 100, np.random.default_rng(0))


def test_features_are_frozen_eval_mode_representations():
    model = SmallCNN(image_size=8, num_classes=3, widths=(4, 6), groups=2)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 3, 8, 8), dtype=np.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    out = features(model, images, batch_size=2, mean=mean, std=std)
    assert isinstance(out, np.ndarray) and out.shape == (5, 6) and not model.training
    normalised = (images / 255 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    expected = model.forward_features(Tensor(normalised.astype(np.float32))).data
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())
