"""The chapters' in-place check (chapters/exercises/check.py, `check("layernorm", LayerNorm)` in a
cell) gives the verdicts of `python -m pytest --exercises`, as a learner runs it, on the same
files: every exercise's reference solution passes as many cases; every untouched stub reads "not
done yet" with pytest's message; a wrong answer (tests/test_exercises.py's) fails at pytest's first
failing case, with pytest's message (its hint on the same line). And what check() prints is one
line, never a traceback.
"""
import importlib.util
import os
import subprocess
import sys
import types
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "chapters" / "exercises"
SOLUTIONS = EXERCISES / "solutions"

if str(ROOT / "chapters") not in sys.path:  # the chapters' folder: its `exercises` package
    sys.path.insert(0, str(ROOT / "chapters"))
from exercises import grading  # noqa: E402
from exercises.check import check, verdict  # noqa: E402

import test_exercises  # noqa: E402  (its wrong answers)

WRONG = {"layernorm": test_exercises.WRONG_LAYERNORM, "softmax": test_exercises.WRONG_SOFTMAX,
         "patchify": test_exercises.WRONG_PATCHIFY, "adamw_step": test_exercises.WRONG_ADAMW,
         "attention_rollout": test_exercises.WRONG_ROLLOUT}


def pytest_grades(folder, names, report):
    """`python -m pytest --exercises-dir=folder -k NAME...` as a learner runs it (without CI set),
    its grades read from the JUnit XML `report` it writes:
    {name: [(case id, 'passed' or the failure's message)]}, the cases in pytest's order."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "BUILD_NUMBER")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_exercises.py"), "-q",
         "-p", "no:cacheprovider", f"--exercises-dir={folder}", "-k", " or ".join(names),
         f"--junitxml={report}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    grades = {}
    for case in ElementTree.parse(report).iter("testcase"):
        test, case_id = case.get("name").split("[", 1)
        name, case_id = test.removeprefix("test_"), case_id.rstrip("]")
        failure = case.find("failure")
        assert case.find("error") is None and case.find("skipped") is None, case.attrib
        grades.setdefault(name, []).append(
            (case_id, "passed" if failure is None else failure.get("message").removeprefix("Failed: ")))
    return grades


def module(path):
    """The exercise file at `path`, imported under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"checked_{path.parent.name}_{path.stem}", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def assert_same_verdict(name, found, graded):
    """check()'s verdict `found` agrees with pytest's grades of the same exercise."""
    assert [case for case, _ in graded] == [case.id for case in grading.CASES[name]], graded
    failing = [(case, message) for case, message in graded if message != "passed"]
    assert "\n" not in found.line and "Traceback" not in found.line, found.line
    if not failing:
        assert found.status == "passed", found
        assert found.line == f"passed: {len(graded)} cases ({', '.join(c for c, _ in graded)})"
        return
    case, message = failing[0]
    assert found.case == case and found.message == message, (found, failing[0])
    if found.status == "not done":
        assert found.line == message and " not done yet -- " in message
    else:
        assert found.status == "failed", found
        assert found.line == f"case {case} ({[c for c, _ in graded].index(case) + 1} of " \
                             f"{len(graded)}) -- {' '.join(message.splitlines())}"


@pytest.fixture
def in_root(monkeypatch):
    """Run from the repository's root, as the learner runs pytest: the messages name the files
    the same way."""
    monkeypatch.chdir(ROOT)


def test_solutions_pass_as_many_cases(tmp_path, in_root):
    graded = pytest_grades(SOLUTIONS, grading.EXERCISES, tmp_path / "report.xml")
    assert sorted(graded) == sorted(grading.EXERCISES)
    for name in grading.EXERCISES:
        found = verdict(name, module(SOLUTIONS / f"{name}.py"))
        assert all(message == "passed" for _, message in graded[name]), graded[name]
        assert_same_verdict(name, found, graded[name])


def test_untouched_stubs_are_not_done(tmp_path, in_root):
    untouched = [name for name in grading.EXERCISES
                 if "NotImplementedError" in (EXERCISES / f"{name}.py").read_text()]
    if not untouched:
        pytest.skip("every exercise in chapters/exercises has been worked on")
    graded = pytest_grades(EXERCISES, untouched, tmp_path / "report.xml")
    for name in untouched:
        stub = module(EXERCISES / f"{name}.py")
        found = verdict(name, *(getattr(stub, n) for n in grading.NAMES[name]))
        assert found.status == "not done", found
        assert found.line.endswith(f", in chapters/exercises/{name}.py"), found.line
        assert_same_verdict(name, found, graded[name])


def test_wrong_answers_fail_at_the_same_case(tmp_path, in_root):
    for name, text in WRONG.items():
        (tmp_path / f"{name}.py").write_text(text)
    graded = pytest_grades(tmp_path, list(WRONG), tmp_path / "report.xml")
    for name in WRONG:
        found = verdict(name, module(tmp_path / f"{name}.py"))
        assert found.status == "failed", found
        assert_same_verdict(name, found, graded[name])
    # the hint of a known mistake comes on the same line
    found = verdict("patchify", module(tmp_path / "patchify.py"))
    assert found.line.endswith("expected 0.640423 (a reshape alone keeps the pixels in their "
                               "(c h w) order: rearrange moves the axes)"), found.line


def in_a_notebook(source, name):
    """`name` defined by `source` run as a notebook cell runs it: in a module named __main__."""
    namespace = {"__name__": "__main__"}
    exec(compile(source, "/tmp/ipykernel_0/cell.py", "exec"), namespace)
    return namespace[name]


STUB = '''
from minivit.ops.layernorm import LayerNorm as Given

class LayerNorm(Given):
    def backward(self, grad):
        raise NotImplementedError("exercise not done yet: write LayerNorm.backward")
'''

BROKEN = '''
import numpy as np

def attention_rollout(attentions):
    R = np.stack(attentions)
    return R @ np.ones(3)
'''


def test_a_cells_code_in_one_line(capsys):
    """A cell's stub reads 'not done yet ... in this notebook'; an exception in a cell's code is
    one line, its type and message and the line that raised it; a wrong call says what to pass."""
    check("layernorm", in_a_notebook(STUB, "LayerNorm"))
    assert capsys.readouterr().out == ("layernorm: not done yet -- write LayerNorm.backward, "
                                       "in this notebook\n")
    found = verdict("attention_rollout", in_a_notebook(BROKEN, "attention_rollout"))
    assert found.status == "error" and "\n" not in found.line, found
    assert found.line.startswith("case three-layers (1 of 4) -- your code raised ValueError: "), found
    assert found.line.endswith("(at line 6 of attention_rollout)"), found  # no source: not a real cell
    assert verdict("patchify", np.zeros(3)).status == "error"
    found = verdict("patchify", lambda images, patch_size: images, lambda *args: None)
    assert found.status == "error" and "pass them by name, check('patchify', patchify=patchify, " \
                                      "unpatchify=unpatchify)" in found.line, found
    found = verdict("linear", types.SimpleNamespace)
    assert found.status == "error" and "must be a class, a minivit Function" in found.line, found
    assert verdict("no_such_exercise").status == "error"
