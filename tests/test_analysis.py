"""The analysis figures (minivit.analysis) on hand-made arrays, and `python -m minivit.inspect`
end to end on a tiny model trained for one epoch."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import minivit
from minivit import analysis
from minivit.inspect import main as inspect_main
from minivit.train import TrainConfig, train


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def minmax(x):
    return (x - x.min()) / (x.max() - x.min())


# --- embedding filters ------------------------------------------------------------------------

def test_embedding_filters_recover_the_patterns_of_rank_two_filters():
    """Filters that vary along two patterns only: the first component is the stronger pattern
    and the second the weaker one, each laid out (P, P, C) as the rows' (p1 p2 c) order."""
    P, C, D = 2, 3, 50
    rng = np.random.default_rng(0)
    first = np.zeros((P, P, C))
    first[0, 0, 0], first[1, 1, 2] = 3.0, -1.0     # red top-left, minus blue bottom-right
    second = np.zeros((P, P, C))
    second[0, 1, 1], second[1, 0, 1] = 2.0, -1.0   # green along the anti-diagonal
    u1, u2 = first.ravel(), second.ravel()
    u2 = u2 - (u2 @ u1) / (u1 @ u1) * u1
    a, b = rng.normal(0, 5, D), rng.normal(0, 1, D)
    a, b = a - a.mean(), b - b.mean()
    b = b - (b @ a) / (a @ a) * a                  # uncorrelated over the D samples
    weight = 0.7 + np.outer(u1 / np.linalg.norm(u1), a) + np.outer(u2 / np.linalg.norm(u2), b)
    filters = analysis.embedding_filters(weight.astype(np.float32), P, C)
    assert filters.shape == (P * P * C, P, P, C)   # only min(28, D, P*P*C) components exist
    np.testing.assert_allclose(filters[0], minmax(first), atol=1e-5)
    assert abs(np.corrcoef(filters[1].ravel(), u2)[0, 1]) > 0.9999
    flat = filters.reshape(len(filters), -1)
    np.testing.assert_allclose(flat.min(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(flat.max(axis=1), 1, atol=1e-12)


def test_embedding_filters_shapes_and_errors():
    weight = np.random.default_rng(1).normal(size=(4 * 4 * 3, 64))
    filters = analysis.embedding_filters(weight, 4, 3, count=28)
    assert filters.shape == (28, 4, 4, 3) and filters.min() >= 0 and filters.max() <= 1
    assert analysis.embedding_filters(weight[:, :5], 4, 3).shape == (5, 4, 4, 3)
    with pytest.raises(ValueError, match=r"\(48, D\)"):
        analysis.embedding_filters(weight[:40], 4, 3)


# --- position embeddings ----------------------------------------------------------------------

def test_position_similarity_tiles():
    g, D = 4, 8
    pos = np.random.default_rng(2).normal(size=(1, 1 + g * g, D))
    tiles = analysis.position_similarity(pos, g)
    assert tiles.shape == (g, g, g, g)
    r, c = np.divmod(np.arange(g * g), g)
    np.testing.assert_allclose(tiles[r, c, r, c], 1)                      # own position: 1
    np.testing.assert_allclose(tiles, tiles.transpose(2, 3, 0, 1))          # symmetric
    a, b = pos[0, 1 + 1 * g + 2], pos[0, 1 + 3 * g + 0]                     # patch (1,2), (3,0)
    assert tiles[1, 2, 3, 0] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    changed = pos.copy()
    changed[0, 0] = 100                                                     # the class row
    np.testing.assert_allclose(analysis.position_similarity(changed, g), tiles)
    np.testing.assert_allclose(analysis.position_similarity(pos[0, 1:], g, cls_tokens=0), tiles)
    with pytest.raises(ValueError, match="position embeddings"):
        analysis.position_similarity(pos, 3)


# --- mean attention distance --------------------------------------------------------------------

def test_mean_attention_distance_of_hand_made_heads():
    """2x2 grid of 4 px patches: uniform attention gives the mean pairwise distance
    (0 + 4 + 4 + 4*sqrt 2) / 4; attending only to oneself gives 0."""
    g, patch, T = 2, 4, 5
    uniform = np.full((T, T), 1 / T)
    itself = np.eye(T)
    layer = np.stack([np.stack([itself, uniform])] * 3)                     # (B=3 H=2 T T)
    distances = analysis.mean_attention_distance([layer, layer[:, ::-1]], g, patch)
    expected = (0 + 4 + 4 + 4 * math.sqrt(2)) / 4
    np.testing.assert_allclose(distances, [[0, expected], [expected, 0]])
    assert expected == pytest.approx(analysis.patch_distances(g, patch).mean())
    # the reference taken literally: the rows keep their class-token share out
    literal = analysis.mean_attention_distance([layer], g, patch, renormalize=False)
    np.testing.assert_allclose(literal, [[0, expected * 4 / 5]])


def test_mean_attention_distance_without_a_class_token_and_random_rows():
    g, patch = 3, 2
    rng = np.random.default_rng(3)
    attention = softmax(rng.normal(size=(2, 3, g * g, g * g)))
    distances = analysis.mean_attention_distance([attention], g, patch, cls_tokens=0)
    d = analysis.patch_distances(g, patch)
    expected = np.einsum("bhij,ij->bhi", attention, d).mean(axis=(0, 2))
    np.testing.assert_allclose(distances, [expected])
    assert distances.shape == (1, 3) and (distances > 0).all()


# --- attention rollout ------------------------------------------------------------------------

def test_rollout_of_identity_and_of_a_class_token_looking_at_one_patch():
    g, T, k = 3, 10, 7                                                      # patch 6 = (2, 0)
    identity = np.broadcast_to(np.eye(T), (2, 4, T, T))
    R = analysis.rollout([identity] * 3)
    np.testing.assert_allclose(R, np.broadcast_to(np.eye(T), (2, T, T)))
    np.testing.assert_allclose(analysis.attention_rollout([identity] * 3), 0)  # nothing stands out
    looking = np.eye(T)
    looking[0] = np.eye(T)[k]                          # the class token attends to token k only
    maps = analysis.attention_rollout([looking[None, None]] * 2)
    expected = np.zeros((g, g))
    expected[divmod(k - 1, g)] = 1
    np.testing.assert_allclose(maps, [expected])


def test_rollout_rows_sum_to_one_and_the_layers_multiply_in_order():
    rng = np.random.default_rng(4)
    layers = [softmax(rng.normal(size=(2, 3, 5, 5)) * 3) for _ in range(3)]
    R = analysis.rollout(layers)
    np.testing.assert_allclose(R.sum(axis=-1), 1)
    hat = []
    for a in layers:
        a = a.mean(axis=1) + np.eye(5)
        hat.append(a / a.sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(R, hat[2] @ hat[1] @ hat[0])
    maps = analysis.attention_rollout(layers)
    assert maps.shape == (2, 2, 2) and maps.min() == 0 and maps.max() == 1
    gap = analysis.attention_rollout([a[..., 1:, 1:] for a in layers], cls_tokens=0)
    assert gap.shape == (2, 2, 2)
    with pytest.raises(ValueError, match="square grid"):
        analysis.attention_rollout(layers, cls_tokens=0)


# --- a model's attention ----------------------------------------------------------------------

def test_attention_weights_of_a_model():
    model = minivit.ViT(image_size=8, patch_size=2, in_channels=1, num_classes=3, dim=16, depth=2,
                        heads=2, mlp_dim=32, dropout=0.5)
    images = np.random.default_rng(5).normal(size=(5, 1, 8, 8)).astype(np.float32)
    attentions = analysis.attention_weights(model, images)
    assert len(attentions) == 2
    for a in attentions:
        assert a.shape == (5, 2, 17, 17) and isinstance(a, np.ndarray)
        np.testing.assert_allclose(a.sum(axis=-1), 1, rtol=1e-5)
    assert model.training                                   # the mode and the flags restored
    assert all(not b.attn.keep_attention and b.attn.attention is None for b in model.blocks)
    chunked = analysis.attention_weights(model, images, batch_size=2)   # eval mode: no dropout
    for a, b in zip(attentions, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# --- figures and the command line ------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("inspect") / "run"
    minivit.manual_seed(0)
    train(TrainConfig(dataset="digits", model="C-micro/4", dim=16, depth=2, heads=2, mlp_dim=32,
                      patch_size=2, epochs=1, batch_size=256, augment="none"), run)
    return run / "last.npz"


def test_inspect_writes_the_figures_and_a_summary(checkpoint, tmp_path, capsys):
    out = tmp_path / "fig"
    inspect_main([str(checkpoint), "--out", str(out), "--images", "16"])
    printed = capsys.readouterr().out.splitlines()
    names = ["filters", "position_similarity", "attention_distance", "attention_rollout"]
    for name in names:
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(out / f"{name}.png") in printed
    assert str(out / "summary.json") in printed
    summary = json.loads((out / "summary.json").read_text())
    distances = np.array(summary["mean_attention_distance"])
    assert distances.shape == (2, 2) and (distances > 0).all()
    assert distances.max() <= 2 * 3 * math.sqrt(2)          # the farthest of 4x4 2 px patches
    assert len(summary["mean_attention_distance_per_layer"]) == 2
    assert (summary["distance_images"], summary["rollout_images"]) == (16, 8)
    assert (summary["grid"], summary["patch_size"], summary["filter_components"]) == (4, 2, 4)


def test_inspect_errors_are_one_line(checkpoint, tmp_path):
    result = subprocess.run(["nice", "-n", "19", sys.executable, "-m", "minivit.inspect",
                             str(tmp_path / "missing.npz"), "--out", str(tmp_path / "fig")],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: no checkpoint at {tmp_path / 'missing.npz'}"
    weights = tmp_path / "weights.npz"
    model = minivit.ViT(image_size=8, patch_size=2, in_channels=1, num_classes=10, dim=16,
                        depth=1, heads=2, mlp_dim=32)
    minivit.save(model, weights)
    with pytest.raises(SystemExit, match="^error: .*not a training checkpoint") as error:
        inspect_main([str(weights), "--out", str(tmp_path / "fig")])
    assert "\n" not in str(error.value.code)
    with pytest.raises(SystemExit, match="^error: unknown data set"):
        inspect_main([str(checkpoint), "--out", str(tmp_path / "fig"), "--dataset", "mnist"])
    assert not (tmp_path / "fig").exists()
