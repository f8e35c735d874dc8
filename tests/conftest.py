"""Test settings. `pytest --device gpu` runs the device tests on CuPy only, `--device cpu` on
NumPy only; by default both are collected and the GPU ones skip (with the reason) when no GPU.
`pytest --exercises` grades the learner's files in chapters/exercises instead
(tests/test_exercises.py)."""
import numpy as np
import pytest

import minivit
from minivit import backend


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu,gpu",
                     help="devices to run the device tests on: cpu, gpu or cpu,gpu (default)")
    parser.addoption("--exercises", action="store_true",
                     help="grade your exercises in chapters/exercises: only tests/test_exercises.py "
                          "runs, e.g. `python -m pytest --exercises -k layernorm`")
    parser.addoption("--exercises-dir", default=None, metavar="DIR",
                     help="grade the exercise files in DIR instead (implies --exercises)")


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


# --- exercises: `pytest --exercises` grades chapters/exercises (see tests/test_exercises.py) ---

def grading_exercises(config):
    """True when the learner asked to grade exercise files (--exercises or --exercises-dir)."""
    return config.getoption("--exercises") or config.getoption("--exercises-dir") is not None


def pytest_configure(config):
    config.addinivalue_line("markers", "harness: checks the exercise harness itself "
                                       "(left out when grading with --exercises)")


def pytest_ignore_collect(collection_path, config):
    """With --exercises only the exercise tests are collected (fast, and -k layernorm does not
    pick up minivit's own layernorm tests)."""
    name = collection_path.name
    if (grading_exercises(config) and collection_path.suffix == ".py"
            and name.startswith("test_") and name != "test_exercises.py"):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    """With --exercises the harness's own checks are left out: only the learner's grades run."""
    if not grading_exercises(config):
        return
    harness = [item for item in items if item.get_closest_marker("harness")]
    if harness:
        config.hook.pytest_deselected(items=harness)
        items[:] = [item for item in items if not item.get_closest_marker("harness")]
