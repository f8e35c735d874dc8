"""minivit.gradcheck itself: it passes right gradients and catches wrong ones with a message
that names the op, the input and the worst entry."""
import re

import numpy as np
import pytest

from minivit import Function, GradcheckError, Tensor, gradcheck


class SquareWithWrongBackward(Function):
    """y = x^2 with the classic mistake: dy/dx written as x instead of 2x."""

    def forward(self, x):
        return x * x

    def backward(self, grad):
        return (grad * self.inputs[0].data,)


def test_a_wrong_backward_is_caught_and_explained():
    x = Tensor(np.arange(1.0, 7.0).reshape(2, 3), requires_grad=True)
    with pytest.raises(GradcheckError) as error:
        gradcheck(lambda x: SquareWithWrongBackward()(x), {"x": x}, name="square")
    message = str(error.value)
    assert "gradcheck failed for square: x has relative error" in message
    # the check projects on a random upstream gradient u: analytic u*x against numerical u*2x
    analytic, numerical = map(float, re.search(r"worst entry \(\d, \d\): analytic (\S+), "
                                               r"numerical (\S+)", message).groups())
    assert numerical == pytest.approx(2 * analytic, rel=1e-5)


def test_a_right_backward_passes_with_a_tiny_error():
    x = Tensor(np.random.default_rng(0).standard_normal((4, 5)), requires_grad=True)
    errors = gradcheck(lambda t: t * t, {"x": x})
    assert errors["x"] < 1e-8


def test_large_inputs_are_sampled():
    x = Tensor(np.random.default_rng(0).standard_normal(10_000), requires_grad=True)
    calls = []

    def square(t):
        calls.append(1)
        return t * t

    gradcheck(square, [x], max_entries=50)
    assert len(calls) == 1 + 2 * 50


def test_inputs_are_converted_to_float64():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    gradcheck(lambda t: t * 3, [x])
    assert x.dtype == np.float64
