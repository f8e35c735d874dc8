"""Build the chapter notebooks: assemble each from its source file and execute it.

    python chapters/_build.py                # build and execute every chapter
    python chapters/_build.py 02 03          # only the chapters whose names start so
    python chapters/_build.py --no-execute   # write them without outputs
    python chapters/_build.py --fast         # execute with MINIVIT_FAST=1 (fewer repetitions)
    python chapters/_build.py 06 --keep-outputs   # text edits only: keep the outputs, run nothing
    python chapters/_build.py --stale        # execute only the chapters whose record is out of date

The sources are `chapters/_src/NN_name.py` in the "percent" format (as jupytext writes it): a
line `# %% [markdown]` starts a markdown cell, whose lines are the markdown commented out with
`# `, and a line `# %%` starts a code cell. Lines before the first marker are ignored.
Each is written to `chapters/NN_name.ipynb`, executed top to bottom with cwd `chapters/` by a
kernel running this interpreter, and saved with its outputs: the notebooks are committed
executed, so a reader sees every output and plot without running anything.

`--keep-outputs` is for edits to the markdown only (a sentence, a chapter renumbered), in
chapters too long to execute again (those that train on CIFAR-10). It builds the notebook from
its source without executing it and gives each code cell the outputs and execution count of the
existing notebook's code cell at the same place: the code cells of the source, in order, must be
exactly those of the existing notebook. If one is new, changed, moved or gone, it writes nothing
and exits naming the cell: that chapter must be executed. The notebook's metadata (the kernel's
language_info) is kept too, so the rebuilt file differs from the old one only where the source did.

Each executed notebook records, in its metadata (`minivit.executed_on`), a hash of every file of
the repository that its kernel imported (minivit's modules, `find_data.py`, the exercises): the
code its outputs came from. `tests/test_notebooks.py` fails for a chapter when one of those files
has changed since (`stale`), naming them, so a committed output cannot silently describe code
that is gone; `--stale` executes exactly those chapters.
Needs nbformat, nbclient and ipykernel.
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CHAPTERS = Path(__file__).resolve().parent
SOURCES = CHAPTERS / "_src"
REPOSITORY = CHAPTERS.parent
# run in the kernel after the chapter's last cell: the files of every module it imported
PROBE = ("import json as _json, sys as _sys\n"
         "print(_json.dumps(sorted({str(_m.__file__) for _m in list(_sys.modules.values())\n"
         "                          if getattr(_m, '__file__', None)})))")


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


class OutputsLost(Exception):
    """--keep-outputs: a code cell of the source is not in the existing notebook, unchanged."""


def keep_outputs(nb, executed, name):
    """Copy the outputs and execution counts of `executed` (the notebook as it is) into `nb`
    (just built from the source), code cell by code cell in order; OutputsLost unless the code
    cells' sources are the same, one for one."""
    new = [cell for cell in nb.cells if cell.cell_type == "code"]
    old = [cell for cell in executed.cells if cell.cell_type == "code"]
    for index, cell in enumerate(new):
        if index < len(old) and old[index].source == cell.source:
            continue
        first = cell.source.splitlines()[0] if cell.source else ""
        elsewhere = [k for k, o in enumerate(old) if o.source == cell.source]
        why = (f"is the notebook's code cell {elsewhere[0] + 1}: the code cells have moved"
               if elsewhere else "is new or was changed")
        raise OutputsLost(f"{name}: code cell {index + 1} of the source (id {cell.id}, first line "
                          f"{first!r}) {why}; no outputs to keep: execute the chapter instead")
    if len(old) > len(new):
        first = old[len(new)].source.splitlines()[0] if old[len(new)].source else ""
        raise OutputsLost(f"{name}: the notebook's code cell {len(new) + 1} (first line {first!r}) "
                          f"is no longer in the source; execute the chapter instead")
    for cell, before in zip(new, old):
        cell.outputs, cell.execution_count = before.outputs, before.execution_count
        cell.metadata = before.metadata
    nb.metadata = executed.metadata
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


def file_hash(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def repository_files(paths):
    """The files among `paths` that belong to the repository, as repository-relative names."""
    names = set()
    for path in map(Path, paths):
        path = path.resolve()
        if path.is_file() and REPOSITORY in path.parents and ".venv" not in path.parts:
            names.add(path.relative_to(REPOSITORY).as_posix())
    return sorted(names)


def stale(notebook):
    """Why a committed notebook's outputs are out of date: the files it was executed on that have
    changed or gone since (each with a reason), or its lack of a record; [] when it is current."""
    nb = json.loads(Path(notebook).read_text())
    record = nb["metadata"].get("minivit", {}).get("executed_on")
    if not record:
        return ["no record of the code it was executed on (executed before the record existed)"]
    why = ["executed in fast mode (MINIVIT_FAST=1): rebuild it without --fast"] if nb[
        "metadata"]["minivit"].get("fast") else []
    for name, digest in record.items():
        path = REPOSITORY / name
        if not path.is_file():
            why.append(f"{name} (gone)")
        elif file_hash(path) != digest:
            why.append(f"{name} (changed)")
    return why


def execute(nb, timeout=600):
    """Run every cell, then record the hash of each repository file the kernel imported."""
    nb.cells.append(nbformat.v4.new_code_cell(PROBE, id="probe"))
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout, record_timing=False,
                            resources={"metadata": {"path": str(CHAPTERS)}})
    try:
        client.execute()
    finally:
        probe = nb.cells.pop()
    imported = repository_files(json.loads(probe.outputs[0]["text"]))
    if not any(name.startswith("minivit/") for name in imported):
        raise SystemExit("the kernel imported minivit from outside this repository (an installed "
                         "copy?): the record would not name the code the outputs came from")
    nb.metadata["minivit"] = {"executed_on": {name: file_hash(REPOSITORY / name)
                                              for name in imported},
                              "fast": os.environ.get("MINIVIT_FAST") == "1"}
    return nb


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="name prefixes, e.g. 01 03 (default: all)")
    parser.add_argument("--no-execute", action="store_true", help="write the notebooks unexecuted")
    parser.add_argument("--fast", action="store_true", help="execute with MINIVIT_FAST=1")
    parser.add_argument("--keep-outputs", action="store_true",
                        help="do not execute: keep the existing notebook's outputs (the code "
                             "cells must be unchanged)")
    parser.add_argument("--stale", action="store_true",
                        help="execute only the chapters whose outputs came from code that has "
                             "changed since (see stale())")
    args = parser.parse_args()
    if args.keep_outputs and (args.no_execute or args.fast):
        parser.error("--keep-outputs executes nothing: it goes with neither --no-execute nor --fast")
    if args.stale and (args.keep_outputs or args.no_execute):
        parser.error("--stale executes the stale chapters: it goes with neither --keep-outputs "
                     "nor --no-execute")

    sources = sorted(p for p in SOURCES.glob("[0-9]*.py")
                     if not args.chapters or any(p.stem.startswith(c) for c in args.chapters))
    if not sources:
        sys.exit(f"no chapter source matches {args.chapters} in {SOURCES}")
    if args.stale:
        notebooks = {source: CHAPTERS / f"{source.stem}.ipynb" for source in sources}
        sources = [s for s in sources if not notebooks[s].exists() or stale(notebooks[s])]
        for source in sources:
            why = stale(notebooks[source]) if notebooks[source].exists() else ["no notebook yet"]
            print(f"{source.stem}: stale: {'; '.join(why)}")
        if not sources:
            print("every chapter is current")
            return
    if args.keep_outputs:
        kept = {}
        for source in sources:  # every chapter checked before any is written
            target = CHAPTERS / f"{source.stem}.ipynb"
            if not target.exists():
                sys.exit(f"--keep-outputs: {target.relative_to(CHAPTERS.parent)} does not exist: "
                         f"there are no outputs to keep; execute the chapter instead")
            try:
                kept[target] = keep_outputs(build(source), nbformat.read(target, as_version=4),
                                            target.relative_to(CHAPTERS.parent))
            except OutputsLost as error:
                sys.exit(f"--keep-outputs: {error} (nothing written)")
        for target, nb in kept.items():
            nbformat.validate(nb)
            nbformat.write(nb, target)
            print(f"{target.relative_to(CHAPTERS.parent)}: {len(nb.cells)} cells, "
                  f"{target.stat().st_size / 1024:.0f} KiB, outputs kept (not executed)")
        return
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
