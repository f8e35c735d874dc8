"""The exercises in chapters/exercises, graded by the gradient checks that minivit's own ops pass.

    python -m pytest --exercises -k layernorm     # grade chapters/exercises/layernorm.py
    python -m pytest --exercises                  # grade every exercise
    python -m pytest --exercises-dir=DIR -k gelu  # grade DIR/gelu.py instead

Without --exercises the same tests grade the reference solutions in chapters/exercises/solutions,
and the tests marked `harness` check the grader itself: untouched stubs read "not done yet", a
wrong backward reads gradcheck's message. CI runs both.

Each case grades one exercise on one set of shapes, in four steps, and stops at the first that fails
with a single line that says what is wrong:
  1. the forward still agrees with minivit's op (the exercise is the backward, not the forward);
  2. backward is written: it does not raise NotImplementedError   -> "not done yet";
  3. it returns a tuple with one gradient per input, each of its input's shape;
  4. gradcheck: in float64, central differences of the forward agree with backward
     -> gradcheck's message, naming the input and the worst entry;
     and the gradients equal those of minivit's own op.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minivit import GradcheckError, Tensor, gradcheck, ops

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "chapters" / "exercises"
SOLUTIONS = EXERCISES / "solutions"
PATCHES = "b c (h p1) (w p2) -> b (h w) (p1 p2 c)"


# --- the grader ---------------------------------------------------------------------------------

def fail(message):
    """Fail the test with just `message`: no traceback for the learner to dig through."""
    pytest.fail(message, pytrace=False)


def shown(path):
    """A path as the learner typed it: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


_modules = {}


def load_class(path, class_name):
    """The class `class_name` from the Python file at `path` (imported once per run)."""
    if not path.exists():
        fail(f"no file {shown(path)}")
    if path not in _modules:
        spec = importlib.util.spec_from_file_location(f"exercise_{len(_modules)}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[path] = module
    if not hasattr(_modules[path], class_name):
        fail(f"{shown(path)} defines no class {class_name}")
    return getattr(_modules[path], class_name)


def random_inputs(shapes, seed=0):
    """{name: float64 Tensor of that shape needing a gradient}, standard normal entries."""
    rng = np.random.default_rng(seed)
    return {name: Tensor(rng.standard_normal(shape), requires_grad=True)
            for name, shape in shapes.items()}


@pytest.fixture(scope="session")
def exercise_dir(request):
    """The folder being graded: --exercises-dir, else chapters/exercises with --exercises, else
    the reference solutions."""
    config = request.config
    if config.getoption("--exercises-dir") is not None:
        return (config.invocation_params.dir / config.getoption("--exercises-dir")).resolve()
    return EXERCISES if config.getoption("--exercises") else SOLUTIONS


@pytest.fixture
def grade(exercise_dir):
    """grade(name, class_name, reference, shapes, options): grade the Function `class_name` of
    `<exercise_dir>/<name>.py`, built with `options`, on inputs of `shapes` ({name: shape}),
    against `reference(*inputs, **options)`, minivit's own op."""

    def grade(name, class_name, reference, shapes, options):
        path = exercise_dir / f"{name}.py"
        Op = load_class(path, class_name)
        inputs = random_inputs(shapes)
        copies = random_inputs(shapes)  # the same values, for minivit's op

        # 1. the forward is given: it must still agree with minivit's op
        out, expected = Op(**options)(*inputs.values()), reference(*copies.values(), **options)
        if out.shape != expected.shape or not np.allclose(out.data, expected.data,
                                                          rtol=1e-10, atol=1e-12):
            fail(f"{name}: the forward of {class_name} no longer agrees with minivit's "
                 f"(the exercise is the backward: restore the forward in {shown(path)})")

        # 2. the backward is written
        upstream = np.random.default_rng(1).standard_normal(out.shape)
        try:
            grads, not_done = out.creator.backward(upstream), None
        except NotImplementedError as error:
            grads, not_done = None, str(error).removeprefix("exercise not done yet: ")
        if not_done is not None:  # failed out here, not in `except`: no chained traceback
            fail(f"{name}: not done yet -- {not_done}, in {shown(path)}")

        # 3. one gradient per input, each of its input's shape
        names = ", ".join(inputs)
        if not isinstance(grads, (tuple, list)):
            advice = ": write `return (dx,)`" if len(inputs) == 1 else ""
            fail(f"{name}: backward must return a tuple with one gradient per input ({names}), "
                 f"got a {type(grads).__name__}{advice}")
        if len(grads) != len(inputs):
            fail(f"{name}: backward returned {len(grads)} gradients for {len(inputs)} inputs ({names})")
        for (input_name, tensor), g in zip(inputs.items(), grads):
            shape = tuple(getattr(g, "shape", ()))
            if shape != tensor.shape:
                fail(f"{name}: the gradient for {input_name} has shape {shape}, "
                     f"but {input_name} has shape {tensor.shape} (a gradient has its input's shape)")

        # 4. finite differences, then minivit's own gradients
        try:
            gradcheck(lambda *xs: Op(**options)(*xs), inputs, name=name)
            wrong = None
        except GradcheckError as error:
            wrong = str(error)
        if wrong is not None:
            fail(f"{wrong}\n(analytic: your backward; numerical: central differences of the forward)")
        expected.backward(upstream)
        for (input_name, tensor), g in zip(copies.items(), grads):
            if not np.allclose(g, tensor.grad, rtol=1e-7, atol=1e-10):
                fail(f"{name}: the gradient for {input_name} differs from minivit's by up to "
                     f"{np.abs(g - tensor.grad).max():.2e}")

    return grade


# --- one test per exercise, each on several shapes and the edge cases ---------------------------
# The ids say what each case is about; -k picks an exercise (or a case: -k "layernorm and batch1").

@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(x=(2, 5, 4), weight=(4, 3), bias=(3,)), {}, id="tokens"),
    pytest.param(dict(x=(1, 1, 4), weight=(4, 1), bias=(1,)), {}, id="batch1-one-token-one-output"),
    pytest.param(dict(x=(3, 4), weight=(4, 2)), {}, id="rows-no-bias"),
])
def test_linear(grade, shapes, options):
    grade("linear", "Linear", ops.linear, shapes, options)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(x=(2, 5, 4)), dict(approximate="erf"), id="erf"),
    pytest.param(dict(x=(1,)), dict(approximate="erf"), id="erf-one-entry"),
    pytest.param(dict(x=(2, 5, 4)), dict(approximate="tanh"), id="tanh"),
])
def test_gelu(grade, shapes, options):
    grade("gelu", "GELU", lambda x, approximate: ops.gelu(x, approximate), shapes, options)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(x=(2, 5, 4), gamma=(4,), beta=(4,)), dict(eps=1e-6), id="tokens"),
    pytest.param(dict(x=(1, 1, 2), gamma=(2,), beta=(2,)), dict(eps=1e-6), id="batch1-one-token"),
    pytest.param(dict(x=(3, 7), gamma=(7,), beta=(7,)), dict(eps=1e-2), id="rows-big-eps"),
])
def test_layernorm(grade, shapes, options):
    grade("layernorm", "LayerNorm", ops.layernorm, shapes, options)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(x=(2, 3, 5)), dict(axis=-1), id="last-axis"),
    pytest.param(dict(x=(1, 1)), dict(axis=-1), id="one-entry"),
    pytest.param(dict(x=(4, 1, 3)), dict(axis=-1), id="middle-axis-of-length-1"),
    pytest.param(dict(x=(3, 4)), dict(axis=0), id="axis0"),
])
def test_softmax(grade, shapes, options):
    grade("softmax", "Softmax", lambda x, axis: ops.softmax(x, axis), shapes, options)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(qkv=(2, 5, 12)), dict(heads=2), id="two-heads"),
    pytest.param(dict(qkv=(1, 1, 6)), dict(heads=2), id="batch1-one-token"),
    pytest.param(dict(qkv=(2, 3, 9)), dict(heads=1), id="one-head"),
])
def test_attention(grade, shapes, options):
    grade("attention", "Attention", lambda qkv, heads: ops.attention(qkv, heads), shapes, options)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(logits=(3, 4)), dict(labels=np.array([2, 0, 1]), label_smoothing=0.0), id="plain"),
    pytest.param(dict(logits=(3, 4)), dict(labels=np.array([2, 0, 1]), label_smoothing=0.1),
                 id="label-smoothing"),
    pytest.param(dict(logits=(1, 5)), dict(labels=np.array([4]), label_smoothing=0.0), id="batch1"),
])
def test_cross_entropy(grade, shapes, options):
    grade("cross_entropy", "CrossEntropy", ops.cross_entropy, shapes, options)


def patch_embedding(images, weight, bias, patch_size):
    """minivit's way: two ops, rearrange then linear."""
    patches = ops.rearrange(images, PATCHES, p1=patch_size, p2=patch_size)
    return ops.linear(patches, weight, bias)


@pytest.mark.parametrize("shapes, options", [
    pytest.param(dict(images=(2, 3, 4, 6), weight=(12, 5), bias=(5,)), dict(patch_size=2),
                 id="rgb-six-patches"),
    pytest.param(dict(images=(1, 1, 2, 2), weight=(4, 1), bias=(1,)), dict(patch_size=2),
                 id="batch1-one-patch-one-channel"),
    pytest.param(dict(images=(1, 2, 8, 4), weight=(32, 3), bias=(3,)), dict(patch_size=4),
                 id="not-square"),
])
def test_patch_embed(grade, shapes, options):
    grade("patch_embed", "PatchEmbedding", patch_embedding, shapes, options)


# --- the harness: CI checks the grader itself (left out with --exercises) -----------------------

STUBS = ["linear", "gelu", "layernorm", "softmax", "attention", "cross_entropy", "patch_embed"]


def run_grader(*options):
    """`python -m pytest --exercises ...` on this file, as a learner runs it: (exit code, output)."""
    result = subprocess.run([sys.executable, "-m", "pytest", str(Path(__file__)), "-q",
                             "-p", "no:cacheprovider", *options],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "COLUMNS": "400"})  # summary lines not truncated
    return result.returncode, result.stdout + result.stderr


@pytest.mark.harness
def test_untouched_stubs_are_reported_not_done():
    """Every stub that still raises NotImplementedError fails every case with one line that says
    "not done yet" (a stub a learner has worked on is left out of this check)."""
    untouched = [name for name in STUBS
                 if "NotImplementedError" in (EXERCISES / f"{name}.py").read_text()]
    if not untouched:
        pytest.skip("every exercise in chapters/exercises has been worked on")
    code, output = run_grader("--exercises", "-k", " or ".join(f"test_{name}" for name in untouched))
    failed = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert code == 1 and failed, output
    for name in untouched:
        assert any(f"::test_{name}[" in line for line in failed), output
    for line in failed:
        name = line.split("::test_")[1].split("[")[0]
        assert f" - Failed: {name}: not done yet -- write " in line, line
        assert line.endswith(f", in chapters/exercises/{name}.py"), line
    assert "passed" not in output and "Traceback" not in output and "raise " not in output, output


WRONG_LAYERNORM = '''
from minivit.ops.layernorm import LayerNorm as Right

class LayerNorm(Right):
    def backward(self, grad):
        dx, dgamma, dbeta = super().backward(grad)
        return dx, dgamma, 2 * dbeta          # wrong on purpose
'''

WRONG_SOFTMAX = '''
from minivit.ops.softmax import Softmax as Right

class Softmax(Right):
    def backward(self, grad):
        return super().backward(grad)[0]      # an array, not a tuple: wrong on purpose
'''


@pytest.mark.harness
def test_wrong_solutions_get_gradchecks_message(tmp_path):
    """A wrong gradient fails with gradcheck's message (the input, the worst entry); a backward
    that returns the wrong thing says so; both without a traceback."""
    (tmp_path / "layernorm.py").write_text(WRONG_LAYERNORM)
    (tmp_path / "softmax.py").write_text(WRONG_SOFTMAX)
    code, output = run_grader(f"--exercises-dir={tmp_path}", "-k", "layernorm or softmax")
    failed = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert code == 1 and len(failed) == 3 + 4, output
    for line in failed:
        if "::test_layernorm[" in line:
            assert " - Failed: gradcheck failed for layernorm: beta has relative error" in line, line
            assert "worst entry (" in line and "analytic" in line and "numerical" in line, line
        else:
            assert " - Failed: softmax: backward must return a tuple with one gradient per input (x), " \
                   "got a ndarray: write `return (dx,)`" in line, line
    assert "Traceback" not in output and "super().backward" not in output, output
