"""Data parallelism (minivit.parallel): a batch split over threads gives the gradients of the
whole batch, the shards are repeatable, and nothing is written where it should not be."""
import numpy as np
import pytest

import minivit
from minivit import backend, engine, ops, parallel
from minivit.engine import Tensor, leaf_gradients
from minivit.model import ViT

TINY = dict(image_size=8, patch_size=4, dim=16, depth=2, heads=2, mlp_dim=32, num_classes=5)


def tiny_model(**options):
    """A float64 ViT whose zero-initialised head is made random, so every gradient is non-zero."""
    minivit.manual_seed(0)
    model = ViT(**TINY, **options).to(dtype=np.float64)
    model.head.weight.data = np.random.default_rng(1).standard_normal(model.head.weight.shape)
    return model


def batch(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 8, 8)), rng.integers(0, 5, n)


def gradients(model, images, labels, threads, loss_fn=ops.cross_entropy):
    model.zero_grad()
    loss, logits = parallel.loss_and_gradients(model, loss_fn, images, labels, threads)
    return loss, logits, {name: p.grad.copy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_shards_give_the_gradients_of_the_whole_batch(threads):
    """7 images over 2, 3 or 7 threads (shards of unequal size): each shard's gradient weighted by
    its share of the batch adds up to the gradient of the mean loss, to float64 rounding."""
    model = tiny_model()
    images, labels = batch(7)
    loss, logits, whole = gradients(model, images, labels, threads=1)
    loss_p, logits_p, split = gradients(model, images, labels, threads)
    assert loss_p == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(logits_p, logits, rtol=1e-12, atol=1e-12)
    assert split.keys() == whole.keys()
    for name in whole:
        np.testing.assert_allclose(split[name], whole[name], rtol=1e-9, atol=1e-12, err_msg=name)
        assert np.abs(whole[name]).max() > 0, name  # every parameter really gets a gradient


def test_any_mean_loss_is_split_with_the_batch():
    model = tiny_model()
    images, labels = batch(6)
    loss_fn = lambda logits, y: ops.cross_entropy(logits, y, 0.1)  # noqa: E731  label smoothing
    whole = gradients(model, images, labels, 1, loss_fn)
    split = gradients(model, images, labels, 2, loss_fn)
    assert split[0] == pytest.approx(whole[0], rel=1e-12)
    for name in whole[2]:
        np.testing.assert_allclose(split[2][name], whole[2][name], rtol=1e-9, atol=1e-12)


def test_gradients_add_to_what_is_there_like_backward():
    model = tiny_model()
    images, labels = batch(4)
    _, _, once = gradients(model, images, labels, 2)
    parallel.loss_and_gradients(model, ops.cross_entropy, images, labels, 2)  # no zero_grad
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[name], rtol=1e-12, atol=1e-15)


def test_float32_gradients_stay_float32():
    """The all-reduce weights must not promote gradients (and so Adam's moments) to float64."""
    minivit.manual_seed(0)
    model = ViT(**TINY)
    images, labels = batch(5)
    parallel.loss_and_gradients(model, ops.cross_entropy, images.astype(np.float32), labels, 2)
    assert {p.grad.dtype for p in model.parameters()} == {np.dtype(np.float32)}


def test_dropout_in_shards_is_repeatable_and_differs_between_shards():
    model = tiny_model(dropout=0.5)
    images, labels = batch(1)
    images, labels = np.repeat(images, 2, axis=0), np.repeat(labels, 2)  # the same image twice
    runs = []
    for _ in range(2):
        minivit.manual_seed(3)
        runs.append(gradients(model, images, labels, 2))
    np.testing.assert_array_equal(runs[0][1], runs[1][1])  # same seed, same logits and gradients
    for name in runs[0][2]:
        np.testing.assert_array_equal(runs[0][2][name], runs[1][2][name])
    logits = runs[0][1]
    assert not np.allclose(logits[0], logits[1])  # each shard drew its own dropout mask


def test_predict_is_the_model_output_without_a_graph():
    model = tiny_model().eval()
    images, _ = batch(5)
    with minivit.no_grad():
        expected = model(images).data
    recording = []                                     # was a graph being recorded, per call?
    head_forward = model.head.forward
    model.head.forward = lambda x: recording.append(engine._grad_enabled) or head_forward(x)
    for threads in (1, 2, 3):
        np.testing.assert_allclose(parallel.predict(model, images, threads), expected,
                                   rtol=1e-12, atol=1e-12)
    assert recording == [False] * (1 + 2 + 3) and engine._grad_enabled


def test_an_error_in_one_shard_reaches_the_caller_and_the_pool_goes_on():
    model = tiny_model()
    images, labels = batch(6)
    bad = labels.copy()
    bad[-1] = 99                                       # only the last shard has a wrong label
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        parallel.loss_and_gradients(model, ops.cross_entropy, images, bad, 2)
    model.zero_grad()
    loss, _ = parallel.loss_and_gradients(model, ops.cross_entropy, images, labels, 2)
    assert np.isfinite(loss) and all(p.grad is not None for p in model.parameters())


def test_blas_gets_one_core_per_thread_and_its_own_back_after():
    from threadpoolctl import ThreadpoolController
    controller = ThreadpoolController()
    before = [lib["num_threads"] for lib in controller.info() if lib["user_api"] == "blas"]
    if not before:
        pytest.skip("threadpoolctl finds no BLAS library to limit in this NumPy")
    with parallel.blas_per_thread(2):
        assert [lib["num_threads"] for lib in controller.info() if lib["user_api"] == "blas"] == [1] * len(before)
    with parallel.blas_per_thread(1):                  # one thread: BLAS keeps its own
        assert [lib["num_threads"] for lib in controller.info() if lib["user_api"] == "blas"] == before
    assert [lib["num_threads"] for lib in controller.info() if lib["user_api"] == "blas"] == before


def test_evaluate_gives_the_same_with_any_number_of_threads():
    from minivit.data import load_dataset
    from minivit.evaluation import evaluate
    data = load_dataset("digits")
    minivit.manual_seed(0)
    model = ViT(image_size=8, patch_size=2, in_channels=1, dim=16, depth=1, heads=2, mlp_dim=32,
                num_classes=10).to(dtype=np.float64)
    model.head.weight.data = np.random.default_rng(1).standard_normal(model.head.weight.shape)
    one = evaluate(model, data.test_images, data.test_labels, data.mean, data.std, threads=1)
    two = evaluate(model, data.test_images, data.test_labels, data.mean, data.std, threads=2)
    assert two[0] == pytest.approx(one[0], rel=1e-12) and two[1] == one[1]
    np.testing.assert_array_equal(two[2], one[2])
    assert 0.02 < one[1] < 0.5                         # an untrained model: a real, varied answer


def test_leaf_gradients_returns_the_gradients_and_writes_none():
    x, w = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, -1.0], requires_grad=True)
    loss = (x * w * x).sum()                                   # d/dx = 2 x w, d/dw = x^2
    found = dict((id(leaf), g) for leaf, g in leaf_gradients(loss))
    np.testing.assert_allclose(found[id(x)], [6.0, -4.0])
    np.testing.assert_allclose(found[id(w)], [1.0, 4.0])
    assert x.grad is None and w.grad is None


def test_shards_cover_the_batch_in_nearly_equal_slices():
    for n, count in [(128, 2), (7, 3), (5, 8), (1, 2), (10, 10)]:
        pieces = parallel.shards(n, count)
        assert len(pieces) == min(n, count)
        assert np.array_equal(np.concatenate([np.arange(n)[p] for p in pieces]), np.arange(n))
        sizes = [p.stop - p.start for p in pieces]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_use_generator_is_per_thread_and_restored():
    minivit.manual_seed(0)
    own = np.random.default_rng(42)
    with backend.use_generator(own):
        assert backend.rng(np) is own                  # in this thread,
        assert parallel.run_in_threads(lambda _: backend.rng(np) is own, range(2)) == [False, False]
        assert backend.rng(np) is own                  # and in no other
    assert backend.rng(np) is not own
