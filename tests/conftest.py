"""Test settings. `pytest --device gpu` runs the device tests on CuPy only, `--device cpu` on
NumPy only; by default both are collected and the GPU ones skip (with the reason) when no GPU."""
import numpy as np
import pytest

import minivit
from minivit import backend


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu,gpu",
                     help="devices to run the device tests on: cpu, gpu or cpu,gpu (default)")


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        devices = metafunc.config.getoption("--device").split(",")
        metafunc.parametrize("device", devices, indirect=True)


@pytest.fixture
def device(request):
    """'cpu' or 'gpu'; a GPU test skips with the reason when CuPy or a CUDA device is missing."""
    if request.param == "gpu":
        try:
            backend.check_device("gpu")
        except backend.DeviceError as error:
            pytest.skip(str(error))
    return request.param


@pytest.fixture
def xp(device):
    """The array module of the device under test: numpy or cupy."""
    return backend.cupy if device == "gpu" else np


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state."""
    minivit.manual_seed(0)
