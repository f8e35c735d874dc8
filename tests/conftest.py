"""Test settings. `pytest --device gpu` runs the device tests on CuPy only, `--device cpu` on
NumPy only, `--device fake-gpu` on the strict CuPy stand-in (tests/strict_cupy: minivit's GPU
code path on NumPy, which refuses implicit host conversions and counts syncs, copies and
operations; never a GPU result). By default all three are collected, and the GPU ones skip
(with the reason) when there is no GPU.
`pytest --exercises` grades the learner's files in chapters/exercises instead
(tests/test_exercises.py)."""
import sys
from pathlib import Path

import numpy as np
import pytest

import minivit
from minivit import backend

STRICT_CUPY = Path(__file__).resolve().parent / "strict_cupy"


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu,gpu,fake-gpu",
                     help="devices to run the device tests on, comma-separated: cpu, gpu, "
                          "fake-gpu (the strict CuPy stand-in); default all three")
    parser.addoption("--exercises", action="store_true",
                     help="grade your exercises in chapters/exercises: only tests/test_exercises.py "
                          "runs, e.g. `python -m pytest --exercises -k layernorm`")
    parser.addoption("--exercises-dir", default=None, metavar="DIR",
                     help="grade the exercise files in DIR instead (implies --exercises)")


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        devices = metafunc.config.getoption("--device").split(",")
        metafunc.parametrize("device", devices, indirect=True)


def load_strict_cupy():
    """The stand-in's modules {name: module}, imported once under CuPy's own names and taken out
    of sys.modules again, so that a real CuPy stays importable beside it."""
    is_cupy = lambda name: name.split(".")[0] in ("cupy", "cupyx")  # noqa: E731
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if is_cupy(name)}
    sys.path.insert(0, str(STRICT_CUPY))
    try:
        import cupy  # noqa: F401
        import cupyx.scipy.special  # noqa: F401
        modules = {name: module for name, module in sys.modules.items() if is_cupy(name)}
    finally:
        sys.path.remove(str(STRICT_CUPY))
        for name in [name for name in sys.modules if is_cupy(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
    return modules


_strict_cupy = []


@pytest.fixture
def strict_cupy(monkeypatch):
    """The strict CuPy stand-in, installed as minivit's CuPy for one test; its counts reset."""
    if not _strict_cupy:
        _strict_cupy.append(load_strict_cupy())
    modules = _strict_cupy[0]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(backend, "cupy", modules["cupy"])
    backend._generators.pop(modules["cupy"], None)
    modules["cupy"].counts.reset()
    return modules["cupy"]


@pytest.fixture
def device(request):
    """'cpu' or 'gpu'; a GPU test skips with the reason when CuPy or a CUDA device is missing.
    'fake-gpu' is 'gpu' on the strict CuPy stand-in."""
    if request.param == "fake-gpu":
        request.getfixturevalue("strict_cupy")
        return "gpu"
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
