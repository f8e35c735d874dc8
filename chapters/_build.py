"""Build the chapter notebooks: assemble each from its source file and execute it.

    python chapters/_build.py                # build and execute every chapter
    python chapters/_build.py 02 03          # only the chapters whose names start so
    python chapters/_build.py --no-execute   # write them without outputs
    python chapters/_build.py --fast         # execute with MINIVIT_FAST=1 (fewer repetitions)

The sources are `chapters/_src/NN_name.py` in the "percent" format (as jupytext writes it): a
line `# %% [markdown]` starts a markdown cell, whose lines are the markdown commented out with
`# `, and a line `# %%` starts a code cell. Lines before the first marker are ignored.
Each is written to `chapters/NN_name.ipynb`, executed top to bottom with cwd `chapters/` by a
kernel running this interpreter, and saved with its outputs: the notebooks are committed
executed, so a reader sees every output and plot without running anything.
Needs nbformat, nbclient and ipykernel.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CHAPTERS = Path(__file__).resolve().parent
SOURCES = CHAPTERS / "_src"


def parse(text, prefix):
    """The cells of a percent-format source, with stable ids (so rebuilds give small diffs)."""
    cells, kind, lines = [], None, []

    def flush():
        body = "\n".join(lines).strip("\n")
        if kind is not None and body.strip():
            make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
            cells.append(make(body, id=f"{prefix}-{len(cells):03d}"))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind == "markdown":
            if line.strip() and not line.startswith("#"):
                raise ValueError(f"a markdown line must start with '#': {line!r}")
            lines.append(line[2:] if line.startswith("# ") else line[1:])
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build(source):
    nb = nbformat.v4.new_notebook()
    nb.cells = parse(source.read_text(), "c" + source.stem.split("_")[0])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.language_info = {"name": "python"}
    return nb


def kernel_env(fast):
    """Environment for the kernel: a kernelspec 'python3' that runs this very interpreter
    (found first through JUPYTER_PATH), MINIVIT_FAST as asked, and matplotlib's inline backend."""
    from ipykernel.kernelspec import write_kernel_spec

    path = Path(tempfile.mkdtemp(prefix="minivit-kernels-"))
    write_kernel_spec(path / "kernels" / "python3")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(path)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p])
    os.environ.pop("MPLBACKEND", None)
    if fast:
        os.environ["MINIVIT_FAST"] = "1"
    else:
        os.environ.pop("MINIVIT_FAST", None)


def execute(nb, timeout=600):
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout, record_timing=False,
                            resources={"metadata": {"path": str(CHAPTERS)}})
    client.execute()
    return nb


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="name prefixes, e.g. 01 03 (default: all)")
    parser.add_argument("--no-execute", action="store_true", help="write the notebooks unexecuted")
    parser.add_argument("--fast", action="store_true", help="execute with MINIVIT_FAST=1")
    args = parser.parse_args()

    sources = sorted(p for p in SOURCES.glob("[0-9]*.py")
                     if not args.chapters or any(p.stem.startswith(c) for c in args.chapters))
    if not sources:
        sys.exit(f"no chapter source matches {args.chapters} in {SOURCES}")
    if not args.no_execute:
        kernel_env(args.fast)
    for source in sources:
        target = CHAPTERS / f"{source.stem}.ipynb"
        nb = build(source)
        start = time.perf_counter()
        if not args.no_execute:
            execute(nb)
        nbformat.validate(nb)
        nbformat.write(nb, target)
        print(f"{target.relative_to(CHAPTERS.parent)}: {len(nb.cells)} cells, "
              f"{target.stat().st_size / 1024:.0f} KiB, executed in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
