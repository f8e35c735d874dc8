"""The chapter notebooks (chapters/[0-9]*.ipynb) run top to bottom, and are committed executed.

Each notebook is executed in a fresh kernel that runs this very interpreter, with cwd chapters/
and MINIVIT_FAST=1 (fewer repetitions in loops and timings); a cell that raises fails the test
and shows the cell with its error. New chapters are picked up by the glob.
Skips, saying why, when nbformat, nbclient or ipykernel is not installed
(`pip install nbformat nbclient ipykernel`).

And the exercises inside the chapters ("your turn": a stub to fill, then `check(NAME, ...)`):
no cell before an exercise's first check shows its reference solution, in its source or its
committed output, and each check of a stub reads "not done yet", each of a solution "passed".
"""
import ast
from json import dumps as json_dumps
import importlib.util
import re
import sys
from pathlib import Path

import pytest

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("[0-9]*.ipynb"))
MISSING = [name for name in ("nbformat", "nbclient", "ipykernel") if importlib.util.find_spec(name) is None]
needs_jupyter = pytest.mark.skipif(
    bool(MISSING), reason=f"{', '.join(MISSING)} not installed: pip install nbformat nbclient ipykernel")
ids = [path.stem for path in NOTEBOOKS]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A kernelspec 'python3' for this interpreter, found first (JUPYTER_PATH), and fast mode."""
    from ipykernel.kernelspec import write_kernel_spec

    root = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(root / "kernels" / "python3")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root))
        patch.setenv("MINIVIT_FAST", "1")
        patch.delenv("MPLBACKEND", raising=False)  # the notebooks' own (inline) backend
        yield "python3"


@needs_jupyter
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_runs(path, kernel):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name=kernel, timeout=600,
                            resources={"metadata": {"path": str(CHAPTERS)}})
    try:
        client.execute()
    except CellExecutionError as error:
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # drop the traceback's colours
        pytest.fail(f"{path.name}: a cell raised\n{message}", pytrace=False)


@needs_jupyter
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_committed_executed(path):
    """Readers see the outputs without running anything: every code cell was executed, in order,
    without an error."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert None not in counts, (f"{path.name} has unexecuted cells: rebuild it with "
                                f"`python chapters/_build.py {path.stem[:2]}`")
    assert counts == sorted(counts), f"{path.name} was not executed top to bottom: rebuild it"
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} was saved with an error output: {errors[0].ename}: {errors[0].evalue}"


@needs_jupyter
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_matches_its_source(path):
    """A notebook built from chapters/_src/NAME.py has the cells of its source (edit the source,
    then rebuild, rather than the .ipynb)."""
    import nbformat

    source = CHAPTERS / "_src" / f"{path.stem}.py"
    if not source.exists():
        pytest.skip(f"{path.name} has no source in chapters/_src/")
    spec = importlib.util.spec_from_file_location("chapters_build", CHAPTERS / "_build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    expected = [(cell.cell_type, cell.source) for cell in build.build(source).cells]
    actual = [(cell.cell_type, cell.source) for cell in nbformat.read(path, as_version=4).cells]
    assert actual == expected, (f"{path.name} differs from {source.relative_to(CHAPTERS.parent)}: "
                                f"rebuild it with `python chapters/_build.py {path.stem[:2]}`")


# --- "your turn": an exercise's solution never shows before the learner's check -----------------

EXERCISES = CHAPTERS / "exercises"
SOURCES = sorted((CHAPTERS / "_src").glob("[0-9]*.py"))
CHECK_CALL = re.compile(r"^check\(\s*[\"'](\w+)[\"']", re.MULTILINE)


def normalised(line):
    """A line of code without its comment and its whitespace, so that re-indented or re-spaced
    copies still match."""
    return re.sub(r"\s+", "", line.split("#")[0])


def bodies(path):
    """{function or method name: the normalised lines of its body, docstring left out} of a file."""
    text = path.read_text()
    lines = text.splitlines()
    found = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef):
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            code = lines[body[0].lineno - 1:body[-1].end_lineno] if body else []
            found[node.name] = [n for n in map(normalised, code) if len(n) >= 8]
    return found


def written(name):
    """{function name: its lines} of the reference solution of exercise `name` that its stub does
    not already give (the given forwards left out)."""
    stub, solution = bodies(EXERCISES / f"{name}.py"), bodies(EXERCISES / "solutions" / f"{name}.py")
    return {function: lines for function, lines in solution.items() if lines and stub.get(function) != lines}


def solution_code(name, exercises):
    """What the reference solution of exercise `name` answers: `written(name)` less the helpers
    that another exercise's solution shows (block_forward's attention is attention_forward's)."""
    others = ["\n".join(lines) for other in exercises if other != name for lines in written(other).values()]
    return {function: lines for function, lines in written(name).items()
            if not any(shows(other, lines) for other in others)}


def shows(text, lines):
    """Whether `text` (a cell's source or output) shows the body `lines`: at least half of them."""
    present = set(map(normalised, text.splitlines()))
    return sum(line in present for line in lines) >= max(1, (len(lines) + 1) // 2)


def cells_of(source):
    """The cells of a chapter's source, as (source, output text): the outputs are those of the
    committed notebook when it has the same cells."""
    spec = importlib.util.spec_from_file_location("chapters_build", CHAPTERS / "_build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    cells = [cell.source for cell in build.build(source).cells]
    outputs = [""] * len(cells)
    notebook = CHAPTERS / f"{source.stem}.ipynb"
    if notebook.exists():
        import nbformat

        committed = nbformat.read(notebook, as_version=4).cells
        if [cell.source for cell in committed] == cells:
            outputs = ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in committed]
    return cells, outputs


def grader():
    """chapters/exercises/grading.py: the exercises, their cases and the names they define."""
    if str(CHAPTERS) not in sys.path:
        sys.path.insert(0, str(CHAPTERS))
    from exercises import grading

    return grading


@needs_jupyter
@pytest.mark.parametrize("source", SOURCES, ids=[path.stem for path in SOURCES])
def test_no_solution_before_its_check(source):
    """Reading a chapter top to bottom never shows an answer before its question: no cell before
    an exercise's first check(...) cell (every cell, where the chapter has none) has the body of
    the exercise's reference solution in its source or in its committed output."""
    cells, outputs = cells_of(source)
    exercises = grader().EXERCISES
    for name in exercises:
        checks = [k for k, cell in enumerate(cells) if name in CHECK_CALL.findall(cell)]
        first = checks[0] if checks else len(cells)
        for function, lines in solution_code(name, exercises).items():
            for k in range(first):
                assert not shows(cells[k], lines) and not shows(outputs[k], lines), (
                    f"{source.name}: cell {k + 1} shows the solution of exercise {name} "
                    f"({function} in exercises/solutions/{name}.py) before its check"
                    + (f" in cell {first + 1}" if checks else " (the chapter has no check of it)"))


@needs_jupyter
@pytest.mark.parametrize("source", SOURCES, ids=[path.stem for path in SOURCES])
def test_your_turn_cells(source):
    """A chapter's "your turn": a cell with the stub (the exercise's class or functions, raising
    NotImplementedError), then the learner's check, which in the committed notebook reads "not
    done yet"; later a check of the solution, which passes."""
    grading = grader()
    cells, outputs = cells_of(source)
    checked = {}
    for k, cell in enumerate(cells):
        for name in CHECK_CALL.findall(cell):
            checked.setdefault(name, []).append(k)
    if source.stem[:2] in ("02", "03", "04", "05", "06", "07", "09"):
        assert checked, f"{source.name} has no check(...) cell"
    for name, at in checked.items():
        assert name in grading.CASES, f"{source.name}: check({name!r}): no such exercise"
        stub = cells[at[0] - 1]
        for defined in grading.NAMES[name]:
            assert re.search(rf"^(def|class) {defined}\b", stub, re.MULTILINE), (
                f"{source.name}: the cell before the first check({name!r}) does not define {defined}")
        assert "raise NotImplementedError" in stub, f"{source.name}: {name}'s stub raises nothing"
        assert "solutions" not in cells[at[0]], (
            f"{source.name}: the first check({name!r}) grades the solution, before the learner's")
        assert len(at) >= 2 and "exercises.solutions" in cells[at[1]], (
            f"{source.name}: no check of {name}'s solution (exercises.solutions) after the learner's")
        if any(outputs):
            mine, solution = outputs[at[0]], outputs[at[1]]
            assert mine.startswith(f"{name}: not done yet -- ") and mine.count("\n") == 1, mine
            assert mine.endswith(", in this notebook\n"), mine
            assert solution.startswith(f"passed: {len(grading.CASES[name])} cases ("), solution


def build_module():
    """chapters/_build.py, which writes each notebook's record of the code it ran on."""
    spec = importlib.util.spec_from_file_location("chapter_build", CHAPTERS / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_jupyter
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_committed_outputs_came_from_todays_code(path):
    """A committed chapter was executed on the library as it is now: every repository file its
    kernel imported (minivit's modules, find_data.py, the exercises) hashes as _build.py recorded
    when it executed the chapter. Otherwise its outputs may describe code that is gone."""
    why = build_module().stale(path)
    assert not why, (f"{path.name} is stale: {'; '.join(why)}. Rebuild it: "
                     f"python chapters/_build.py {path.stem[:2]}   (or: python chapters/_build.py --stale)")


@needs_jupyter
def test_a_changed_library_file_makes_a_chapter_stale(tmp_path, monkeypatch):
    """The guard itself: a record of a file whose bytes have changed, or that is gone, is stale."""
    build = build_module()
    monkeypatch.setattr(build, "REPOSITORY", tmp_path)
    (tmp_path / "minivit").mkdir()
    module = tmp_path / "minivit" / "op.py"
    module.write_text("y = 2 * x\n")
    assert build.repository_files([module, "/usr/lib/python3/os.py"]) == ["minivit/op.py"]
    notebook = tmp_path / "chapter.ipynb"

    def record(files):
        notebook.write_text(json_dumps({"cells": [], "metadata": {"minivit": {"executed_on": files}}}))

    record({"minivit/op.py": build.file_hash(module)})
    assert build.stale(notebook) == []
    module.write_text("y = 3 * x\n")
    assert build.stale(notebook) == ["minivit/op.py (changed)"]
    record({"minivit/gone.py": "0" * 16})
    assert build.stale(notebook) == ["minivit/gone.py (gone)"]
    notebook.write_text(json_dumps({"cells": [], "metadata": {}}))
    assert build.stale(notebook)[0].startswith("no record")
