"""Off the training step's path, on either device: what issue #13 found failing with CuPy arrays
(the analysis helpers, a Dataset of device images, clipping a broadcast gradient), each run on
NumPy, on CuPy where there is one, and on the strict CuPy stand-in (which refuses an implicit
host conversion as CuPy does); and the GPU's peak memory, which the pool's size alone misses."""
import numpy as np
import pytest

from minivit import analysis, backend, memory
from minivit.data.dataset import Dataset
from minivit.engine import Tensor
from minivit.optim import SGD, AdamW, clip_grad_norm


def test_the_analysis_helpers_take_arrays_from_either_device(device, tmp_path):
    rng = np.random.default_rng(0)
    maps = rng.random((2, 4, 4))
    images = rng.integers(0, 256, (2, 3, 16, 16), dtype=np.uint8)
    weight = rng.standard_normal((4 * 4 * 3, 8))
    pos_embed = rng.standard_normal((1, 17, 8))
    on = lambda a: backend.to_device(a, device)  # noqa: E731
    for mode in ("nearest", "bilinear"):
        assert np.array_equal(analysis.upsample(on(maps), 16, mode), analysis.upsample(maps, 16, mode))
    filters = analysis.embedding_filters(on(weight), 4, 3)
    assert np.allclose(filters, analysis.embedding_filters(weight, 4, 3))
    tiles = analysis.position_similarity(on(pos_embed), 4)
    assert np.allclose(tiles, analysis.position_similarity(pos_embed, 4))
    analysis.plot_filters(on(filters), tmp_path / "filters.png")
    analysis.plot_position_similarity(on(tiles), tmp_path / "similarity.png")
    analysis.plot_attention_distance(on(rng.random((2, 3)) * 8), tmp_path / "distance.png", 16)
    analysis.plot_rollout(on(images), on(maps), tmp_path / "rollout.png")
    assert all((tmp_path / f"{name}.png").stat().st_size > 0
               for name in ("filters", "similarity", "distance", "rollout"))


def test_a_dataset_of_device_images_has_the_statistics_of_the_same_host_images(device):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 3, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 4, 20)
    on = lambda a: backend.to_device(a, device)  # noqa: E731
    host = Dataset("host", images, labels, images[:5], labels[:5], ["a", "b", "c", "d"])
    there = Dataset("device", on(images), on(labels), on(images[:5]), on(labels[:5]), ["a", "b", "c", "d"])
    assert there.mean == host.mean and there.std == host.std
    assert np.allclose(host.mean, (images / 255).mean(axis=(0, 2, 3)))


def broadcast_parameters(device):
    """Two parameters whose gradients are read-only broadcast views (as a bias's may be)."""
    on = lambda a: backend.to_device(a, device)  # noqa: E731
    xp = backend.get_array_module(on(np.zeros(1)))
    params = [Tensor(on(np.ones((3, 4))), requires_grad=True), Tensor(on(np.ones(4)), requires_grad=True)]
    params[0].grad = xp.broadcast_to(on(np.arange(4.0)), (3, 4))
    params[1].grad = xp.broadcast_to(on(np.array(2.0)), (4,))
    return params


def test_clip_grad_norm_scales_broadcast_gradients_with_no_sync(device, request):
    params = broadcast_parameters(device)
    norm = clip_grad_norm(params, 1.0)
    if request.node.callspec.params["device"] == "fake-gpu":  # the stand-in counts the reads
        assert backend.cupy.counts.totals()["syncs"] == 0
    expected = np.sqrt(3 * (0 + 1 + 4 + 9) + 4 * 4)
    assert float(norm) == pytest.approx(expected)
    total = sum(float((p.grad * p.grad).sum()) for p in params)
    assert total == pytest.approx(1.0)                  # scaled down to norm 1


@pytest.mark.parametrize("kind", [AdamW, SGD])
def test_an_optimizer_that_clips_equals_clip_grad_norm_then_a_step(kind):
    """The clipping folded into the fused update (a device-side scale) is clip_grad_norm."""
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    grads = [5 * rng.standard_normal((3, 4)), 5 * rng.standard_normal(4)]
    results = []
    for folded in (True, False):
        params = [Tensor(a.copy(), requires_grad=True) for a in start]
        optimizer = kind(params, lr=0.1, weight_decay=0.01, clip_norm=0.5 if folded else None)
        for _ in range(3):
            for p, g in zip(params, grads):
                p.grad = g.copy()
            if not folded:
                clip_grad_norm(params, 0.5)
            optimizer.step()
        results.append([p.data for p in params])
    for a, b in zip(*results):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-15)


def test_the_gpu_peak_memory_is_the_largest_pool_seen_not_its_size_at_the_end(strict_cupy, monkeypatch):
    sizes = iter([300 << 20, 800 << 20, 100 << 20])         # the pool grows, then is emptied
    pool = strict_cupy.get_default_memory_pool()
    monkeypatch.setattr(memory, "_gpu_pool_peak", 0)
    monkeypatch.setattr(type(pool), "total_bytes", lambda self: next(sizes))
    memory.note_gpu_pool()
    memory.note_gpu_pool()
    assert memory.peak_memory_mib("gpu") == 800            # 100 MiB now, 800 at the peak
