"""The autograd engine: graphs, accumulation, no_grad, dtypes and devices."""
import subprocess
import sys

import numpy as np
import pytest

import minivit
from minivit import Tensor, no_grad, ops
from minivit.backend import DeviceError, check_device
from minivit.engine import topological_order


def test_chain_rule_on_a_small_graph():
    """y = (a*b + a)^2 at a=2, b=3: dy/da = 2(ab+a)(b+1) = 64, dy/db = 2(ab+a)a = 32."""
    a, b = Tensor(2.0, requires_grad=True), Tensor(3.0, requires_grad=True)
    y = (a * b + a) ** 2
    y.backward()
    assert y.item() == 64.0 and a.grad == 64.0 and b.grad == 32.0


def test_a_tensor_used_twice_gets_both_gradients():
    x = Tensor(3.0, requires_grad=True)
    (x * x + x).backward()
    assert x.grad == 7.0


def test_gradients_accumulate_across_backward_calls():
    x = Tensor(np.ones(3), requires_grad=True)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [5, 5, 5])


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(sys.getrecursionlimit() * 3):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0


def test_topological_order_puts_inputs_first():
    a = Tensor(1.0, requires_grad=True)
    b = a * 2
    c = b + a
    order = topological_order(c)
    assert order.index(a) < order.index(b) < order.index(c)


def test_no_grad_records_nothing():
    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        y = x * 2
    assert y.creator is None and not y.requires_grad


def test_only_leaves_that_need_a_gradient_get_one():
    x, w = Tensor(np.ones(2)), Tensor(np.ones(2), requires_grad=True)
    (x * w).sum().backward()
    assert x.grad is None and w.grad is not None


def test_backward_needs_a_scalar_or_a_gradient():
    with pytest.raises(ValueError, match="needs a scalar"):
        (Tensor(np.ones(2), requires_grad=True) * 2).backward()


def test_float32_by_default_float64_on_request():
    assert Tensor([1, 2]).dtype == np.float32
    assert Tensor(np.ones(2)).dtype == np.float64
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert (Tensor(np.ones(2, np.float32)) * 2.0).dtype == np.float32  # a constant does not upcast


def test_unknown_device_and_missing_gpu_give_one_clear_error():
    with pytest.raises(DeviceError, match="use 'cpu' or 'gpu'"):
        check_device("tpu")
    if not minivit.gpu_available():
        with pytest.raises(DeviceError, match="--device cpu"):
            Tensor(np.ones(2)).to("gpu")
        with pytest.raises(DeviceError, match="--device cpu"):
            minivit.ViT.from_config("C-micro/4").to("gpu")


def test_mixing_devices_in_one_op_is_a_type_error(device):
    if device == "cpu":
        pytest.skip("needs a GPU to put one input on each device")
    x, y = Tensor(np.ones(2)), Tensor(np.ones(2)).to("gpu")
    with pytest.raises(TypeError, match="input 0 is on cpu .numpy., input 1 is on gpu .cupy."):
        ops.add(x, y)


def test_tensors_and_models_move_between_devices(device):
    model = minivit.ViT.from_config("C-micro/4", num_classes=3).to(device)
    images = Tensor(np.random.default_rng(0).random((2, 3, 32, 32), np.float32)).to(device)
    logits = model(images)
    assert logits.device == device and model.device == device
    assert isinstance(logits.numpy(), np.ndarray)
    assert model.to("cpu").device == "cpu"


def test_import_works_without_cupy():
    code = "import sys; sys.modules['cupy'] = None; import minivit; print(minivit.gpu_available())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
