"""The chapter notebooks (chapters/[0-9]*.ipynb) run top to bottom, and are committed executed.

Each notebook is executed in a fresh kernel that runs this very interpreter, with cwd chapters/
and MINIVIT_FAST=1 (fewer repetitions in loops and timings); a cell that raises fails the test
and shows the cell with its error. New chapters are picked up by the glob.
Skips, saying why, when nbformat, nbclient or ipykernel is not installed
(`pip install nbformat nbclient ipykernel`).
"""
import importlib.util
import re
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
