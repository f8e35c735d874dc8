"""The exercises in chapters/exercises, graded by the gradient checks that minivit's own ops pass.

    python -m pytest --exercises -k layernorm     # grade chapters/exercises/layernorm.py
    python -m pytest --exercises                  # grade every exercise
    python -m pytest --exercises-dir=DIR -k gelu  # grade DIR/gelu.py instead

Without --exercises the same tests grade the reference solutions in chapters/exercises/solutions,
and the tests marked `harness` check the grader itself: untouched stubs read "not done yet", a
wrong backward reads gradcheck's message. CI runs both.

The cases and the checks each makes, with how a backward pass and a function on arrays are
graded step by step, are in chapters/exercises/grading.py (its docstring), which the chapters'
in-place check (chapters/exercises/check.py: `check("layernorm", LayerNorm)` in a cell) runs too;
this file makes one test of each exercise, parametrized by its cases, and each case fails with
grading's single line, without a traceback.
`-k attention` grades attention.py alone: attention_forward and attention_rollout, whose names
contain it, skip and say how to grade them.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "chapters" / "exercises"
SOLUTIONS = EXERCISES / "solutions"

if str(ROOT / "chapters") not in sys.path:  # the chapters' folder: its `exercises` package
    sys.path.insert(0, str(ROOT / "chapters"))
from exercises import grading  # noqa: E402


# --- the grader: chapters/exercises/grading.py, on the files of the folder being graded -----------

@pytest.fixture(scope="session")
def exercise_dir(request):
    """The folder being graded: --exercises-dir, else chapters/exercises with --exercises, else
    the reference solutions."""
    config = request.config
    if config.getoption("--exercises-dir") is not None:
        return (config.invocation_params.dir / config.getoption("--exercises-dir")).resolve()
    return EXERCISES if config.getoption("--exercises") else SOLUTIONS


@pytest.fixture
def graded(exercise_dir):
    """graded(name, case): grade one case of <exercise_dir>/<name>.py; a failure is grading's
    message alone, no traceback for the learner to dig through."""

    def graded(name, case):
        try:
            grading.run(name, case, grading.FileSource(exercise_dir / f"{name}.py"))
            message = None
        except grading.Failed as failure:
            message = str(failure)
        if message is not None:  # failed out here, not in `except`: no chained traceback
            pytest.fail(message, pytrace=False)

    return graded


def cases(name):
    """The cases of exercise `name` as pytest parameters, their ids grading's."""
    return [pytest.param(case, id=case.id) for case in grading.CASES[name]]


@pytest.fixture(autouse=True)
def graded_alone(request):
    """`-k NAME` picks every test whose name contains NAME, so `-k attention` (chapter 3's
    command) would grade attention_forward and attention_rollout too: with -k exactly one
    exercise's name, the others skip, saying how to grade them."""
    keyword = (request.config.getoption("keyword") or "").strip()
    name = getattr(request.node, "originalname", "").removeprefix("test_")
    if keyword in STUBS and name in STUBS and name != keyword:
        pytest.skip(f"-k {keyword} grades {keyword}.py only; grade {name}.py with -k {name}")


# --- one test per exercise, each on several shapes and the edge cases ---------------------------
# The ids say what each case is about; -k picks an exercise (or a case: -k "layernorm and batch1").

@pytest.mark.parametrize("case", cases("linear"))
def test_linear(graded, case):
    graded("linear", case)


@pytest.mark.parametrize("case", cases("gelu"))
def test_gelu(graded, case):
    graded("gelu", case)


@pytest.mark.parametrize("case", cases("layernorm"))
def test_layernorm(graded, case):
    graded("layernorm", case)


@pytest.mark.parametrize("case", cases("softmax"))
def test_softmax(graded, case):
    graded("softmax", case)


@pytest.mark.parametrize("case", cases("attention"))
def test_attention(graded, case):
    graded("attention", case)


@pytest.mark.parametrize("case", cases("cross_entropy"))
def test_cross_entropy(graded, case):
    graded("cross_entropy", case)


@pytest.mark.parametrize("case", cases("patch_embed"))
def test_patch_embed(graded, case):
    graded("patch_embed", case)


@pytest.mark.parametrize("case", cases("patchify"))
def test_patchify(graded, case):
    graded("patchify", case)


@pytest.mark.parametrize("case", cases("embed_tokens"))
def test_embed_tokens(graded, case):
    graded("embed_tokens", case)


@pytest.mark.parametrize("case", cases("attention_forward"))
def test_attention_forward(graded, case):
    graded("attention_forward", case)


@pytest.mark.parametrize("case", cases("block_forward"))
def test_block_forward(graded, case):
    graded("block_forward", case)


@pytest.mark.parametrize("case", cases("interpolate_pos_embed"))
def test_interpolate_pos_embed(graded, case):
    graded("interpolate_pos_embed", case)


@pytest.mark.parametrize("case", cases("adamw_step"))
def test_adamw_step(graded, case):
    graded("adamw_step", case)


@pytest.mark.parametrize("case", cases("attention_rollout"))
def test_attention_rollout(graded, case):
    graded("attention_rollout", case)


# --- the harness: CI checks the grader itself (left out with --exercises) -----------------------

STUBS = grading.EXERCISES  # every exercise, each with a test_NAME above


@pytest.mark.harness
def test_every_exercise_has_its_files_and_test():
    """Every exercise that grading.py grades has its stub in chapters/exercises, its solution
    and a test_NAME."""
    for name in STUBS:
        assert (EXERCISES / f"{name}.py").exists() and (SOLUTIONS / f"{name}.py").exists(), name
        assert callable(globals().get(f"test_{name}")), f"no test_{name} in {Path(__file__).name}"


def run_grader(*options):
    """`python -m pytest --exercises ...` on this file, as a learner runs it: (exit code, output)."""
    # As on a learner's terminal: pytest prints whole messages in the short summary when it
    # sees CI (or BUILD_NUMBER) set, and truncates them to COLUMNS otherwise.
    env = {name: value for name, value in os.environ.items() if name not in ("CI", "BUILD_NUMBER")}
    result = subprocess.run([sys.executable, "-m", "pytest", str(Path(__file__)), "-q",
                             "-p", "no:cacheprovider", *options],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**env, "COLUMNS": "400"})  # summary lines not truncated
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


WRONG_PATCHIFY = '''
def patchify(images, patch_size):
    B, C, H, W = images.shape
    return images.reshape(B, (H // patch_size) * (W // patch_size), -1)   # wrong on purpose
'''

WRONG_ADAMW = '''
import numpy as np

def adamw_step(p, g, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    m = betas[0] * m + (1 - betas[0]) * g
    v = betas[1] * v + (1 - betas[1]) * g * g
    return p - lr * (m / (np.sqrt(v) + eps) + weight_decay * p), m, v   # no bias correction
'''

WRONG_ROLLOUT = '''
from minivit.analysis import rollout

def attention_rollout(attentions):
    return rollout(attentions)[:, 0, 1:]                 # not reshaped, not scaled: wrong on purpose
'''


@pytest.mark.harness
def test_wrong_answers_get_the_worst_entry(tmp_path):
    """A function exercise's wrong values fail with the worst entry and, for a known mistake, what
    it is; a wrong shape says so; all without a traceback."""
    (tmp_path / "patchify.py").write_text(WRONG_PATCHIFY)
    (tmp_path / "adamw_step.py").write_text(WRONG_ADAMW)
    (tmp_path / "attention_rollout.py").write_text(WRONG_ROLLOUT)
    code, output = run_grader(f"--exercises-dir={tmp_path}", "-k",
                              "patchify or adamw_step or attention_rollout")
    failed = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert code == 1 and len(failed) == 5 + 4 + 4 and "passed" not in output, output
    for line in failed:
        if "::test_patchify[" in line:
            assert " - Failed: patchify: patchify(images (" in line and " is wrong at " in line, line
            assert "; worst entry (" in line and ": yours " in line and ", expected " in line, line
        elif "::test_adamw_step[" in line:
            assert " - Failed: adamw_step: p from adamw_step(p, g, m, v, t=1, lr=" in line, line
            assert " is wrong at " in line and "; worst entry (" in line, line
        else:
            assert " - Failed: attention_rollout: attention_rollout(" in line, line
            assert " has shape (" in line and ", expected (" in line, line
    # one patch of 4 x 4: the reshape is the same mistake as the (c p1 p2) order, and says so
    assert output.count("(a reshape alone keeps the pixels in their (c h w) order") == 4, output
    assert output.count("(each patch is ordered (c p1 p2); minivit's PatchEmbed orders it") == 1, output
    assert output.count("(no bias correction: divide m by 1 - b1^t and v by 1 - b2^t)") == 4, output
    assert "Traceback" not in output and "wrong on purpose" not in output, output


@pytest.mark.harness
def test_k_attention_grades_attention_alone():
    """Chapter 3's `-k attention` grades attention.py: attention_forward and attention_rollout,
    whose names contain it, skip and say how to grade them."""
    code, output = run_grader(f"--exercises-dir={SOLUTIONS}", "-k", "attention", "-rs")
    assert code == 0 and re.search(r"\b3 passed\b", output) and "failed" not in output, output
    for name in ("attention_forward", "attention_rollout"):
        assert f"-k attention grades attention.py only; grade {name}.py with -k {name}" in output, output
    code, output = run_grader(f"--exercises-dir={SOLUTIONS}", "-k", "attention_forward")
    assert code == 0 and re.search(r"\b7 passed\b", output) and "skipped" not in output, output
