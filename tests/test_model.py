"""The ViT: the paper's parameter counts, clear errors for bad input, a full gradcheck in
float64, and a tiny model that must overfit 64 random images."""
import numpy as np
import pytest

import minivit
from minivit import Tensor, ViT, gradcheck, ops
from minivit.optim import AdamW, clip_grad_norm, param_groups, warmup_cosine


@pytest.mark.parametrize("name, count", [("Ti/16", 5_717_416), ("S/16", 22_050_664),
                                         ("B/16", 86_567_656)])
def test_official_parameter_counts(name, count):
    assert ViT.from_config(name, num_classes=1000, image_size=224).num_parameters() == count


def test_parameter_names_and_shapes():
    model = ViT(image_size=8, patch_size=4, num_classes=5, dim=12, depth=1, heads=3, mlp_dim=24)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    assert shapes["patch_embed.proj.weight"] == (4 * 4 * 3, 12)
    assert shapes["cls_token"] == (1, 1, 12)
    assert shapes["pos_embed"] == (1, 1 + 4, 12)
    assert shapes["blocks.0.attn.qkv.weight"] == (12, 36)
    assert shapes["blocks.0.mlp.fc1.weight"] == (12, 24)
    assert shapes["head.weight"] == (12, 5)
    assert not model.head.weight.data.any() and not model.cls_token.data.any()


def test_gap_pooling_has_no_class_token():
    model = ViT(image_size=8, patch_size=4, num_classes=5, dim=12, depth=1, heads=3, mlp_dim=24,
                pool="gap")
    assert model.cls_token is None and model.pos_embed.shape == (1, 4, 12)
    assert model(np.zeros((2, 3, 8, 8), np.float32)).shape == (2, 5)


@pytest.mark.parametrize("shape, message", [
    ((2, 3, 32), "got an array with 3 axes"),
    ((2, 1, 32, 32), "expected 3 channels"),
    ((2, 3, 30, 30), "image size 30x30 is not divisible by the patch size 4"),
    ((2, 3, 16, 16), "this model takes 32x32 images, got 16x16"),
])
def test_bad_images_are_refused_before_any_computation(shape, message):
    model = ViT.from_config("C-micro/4")
    with pytest.raises(ValueError, match=message):
        model(np.zeros(shape, np.float32))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="image size 30 is not divisible by patch size 4"):
        ViT(image_size=30, patch_size=4)
    with pytest.raises(ValueError, match="dim 100 is not divisible by heads 3"):
        ViT(dim=100, heads=3)
    with pytest.raises(ValueError, match="unknown config 'X/9'; choose one of Ti/16"):
        ViT.from_config("X/9")


def tiny_vit(**options):
    """A 2-block ViT on 8x8 images with every parameter random (the head too), in float64."""
    model = ViT(image_size=8, patch_size=4, num_classes=3, dim=8, depth=2, heads=2, mlp_dim=16,
                **options).to(dtype=np.float64)
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.data = p.data + rng.standard_normal(p.shape) * 0.3
    return model


@pytest.mark.parametrize("options", [dict(), dict(pool="gap", gelu="tanh")])
def test_whole_vit_passes_gradcheck_for_its_input_and_every_parameter(options, device):
    model = tiny_vit(**options).to(device)
    images = Tensor(np.random.default_rng(2).standard_normal((2, 3, 8, 8)),
                    requires_grad=True).to(device)
    inputs = {"images": images, **dict(model.named_parameters())}
    errors = gradcheck(lambda x, *params: ops.cross_entropy(model(x), np.array([0, 2]), 0.1),
                       inputs, name="ViT", max_entries=20)
    assert set(errors) == set(inputs) and max(errors.values()) < 1e-6


def test_train_and_eval_mode_switch_dropout():
    model = ViT.from_config("C-micro/4", num_classes=3, dropout=0.5)
    model.head.weight.data[:] = 1.0
    images = np.random.default_rng(0).random((2, 3, 32, 32), np.float32)
    model.eval()
    np.testing.assert_array_equal(model(images).data, model(images).data)
    model.train()
    assert not np.allclose(model(images).data, model(images).data)


def test_tiny_vit_overfits_64_random_images():
    """The whole stack works together: 64 fixed random images, 10 random labels, 100% train
    accuracy with AdamW, warmup and cosine, and gradient clipping."""
    minivit.manual_seed(0)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    model = ViT.from_config("C-micro/4", num_classes=10)
    optimizer = AdamW(param_groups(model, weight_decay=0.05), lr=3e-3)
    steps = 80
    for step in range(steps):
        optimizer.lr = warmup_cosine(step, steps, warmup_steps=5, peak_lr=3e-3)
        loss = ops.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        optimizer.step()
    with minivit.no_grad():
        accuracy = (model(images).data.argmax(axis=1) == labels).mean()
    assert accuracy == 1.0 and loss.item() < 0.1


def test_position_embeddings_resize_like_scipy_zoom_order_1():
    """Bilinear with corners aligned, the official code's scipy.ndimage.zoom(order=1); the class
    token's embedding is kept apart."""
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    from minivit.model import resize_pos_embed
    pos_embed = np.random.default_rng(0).standard_normal((1, 1 + 4 * 4, 6))
    resized = resize_pos_embed(pos_embed, 7)
    expected = scipy_ndimage.zoom(pos_embed[0, 1:].reshape(4, 4, 6), (7 / 4, 7 / 4, 1), order=1,
                                  grid_mode=False)
    np.testing.assert_allclose(resized[0, 1:].reshape(7, 7, 6), expected, atol=1e-12)
    np.testing.assert_array_equal(resized[:, 0], pos_embed[:, 0])


def test_a_model_resized_to_a_higher_resolution_takes_the_new_images():
    model = ViT.from_config("C-micro/4", num_classes=3, image_size=16).resize(32)
    assert model.pos_embed.shape == (1, 1 + 8 * 8, 64)
    assert model(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 3)
    with pytest.raises(ValueError, match="image size 30 is not divisible by patch size 4"):
        model.resize(30)
