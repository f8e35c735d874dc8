"""Optimizers against their update rules written out by hand, the schedule and clipping."""
import math

import numpy as np
import pytest

from minivit import Tensor, ViT
from minivit.optim import SGD, AdamW, clip_grad_norm, param_groups, warmup_cosine


def test_adamw_first_steps_match_the_formula():
    p = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = AdamW([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.5)
    m = v = np.zeros(2)
    expected = np.array([1.0, -2.0])
    for t, g in enumerate([np.array([0.5, 1.0]), np.array([-1.0, 2.0])], start=1):
        p.grad = g
        opt.step()
        m, v = 0.9 * m + 0.1 * g, 0.99 * v + 0.01 * g * g
        expected = expected - 0.1 * 0.5 * expected  # decoupled decay first
        expected = expected - 0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.99 ** t)) + 1e-8)
        np.testing.assert_allclose(p.data, expected, rtol=1e-12)


def test_sgd_momentum_matches_the_formula():
    p = Tensor(np.array([1.0]), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9)
    for g in (2.0, 2.0):
        p.grad = np.array([g])
        opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * 2.0 - 0.1 * (0.9 * 2.0 + 2.0)])


def test_no_weight_decay_on_biases_norms_position_embeddings_and_class_token():
    model = ViT.from_config("C-micro/4")
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert "blocks.0.attn.qkv.weight" in decayed and "head.weight" in decayed
    assert not decayed & {"pos_embed", "cls_token", "norm.weight", "blocks.0.attn.qkv.bias"}


def test_warmup_then_cosine():
    lrs = [warmup_cosine(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[55] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_clipping_by_global_norm():
    a, b = Tensor(np.zeros(2), requires_grad=True), Tensor(np.zeros(1), requires_grad=True)
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])
    assert clip_grad_norm([a, b], 1.0) == pytest.approx(5.0)
    assert math.hypot(*a.grad, *b.grad) == pytest.approx(1.0, rel=1e-5)
    assert clip_grad_norm([a, b], 10.0) == pytest.approx(1.0, rel=1e-5)


def test_optimizer_state_round_trips():
    p = Tensor(np.ones(3), requires_grad=True)
    opt = AdamW([p], lr=0.1)
    p.grad = np.ones(3)
    opt.step()
    fresh = AdamW([Tensor(np.ones(3), requires_grad=True)], lr=0.1)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.steps == 1
    np.testing.assert_array_equal(fresh.state[0]["m"], opt.state[0]["m"])
