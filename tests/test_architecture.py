"""The package's shape, read from its source: who may import whom, and how big the core is.

Command-line tools stand alone (each can be read without the others), the data layer sits below
the model, and the core that a reader works through in an evening stays small.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minivit"

# The command-line tools (python -m minivit.NAME). finetune is another name for
# `train --preset finetune --init CHECKPOINT`: its whole body hands its arguments to train.main.
CLIS = {"minivit.train", "minivit.evaluate", "minivit.inspect", "minivit.bench.__main__"}
ALIASES = {"minivit.finetune": "minivit.train"}
CORE = ["engine.py", "ops", "nn.py", "model.py"]
CORE_LIMIT = 1500


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path):
    """Every minivit module `path` imports ('from minivit import x' counts as minivit.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "minivit"}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_every_command_line_tool_is_found():
    tools = {name for name, path in MODULES.items()
             if 'if __name__ == "__main__":' in path.read_text()}
    assert tools == CLIS | set(ALIASES)


def test_no_command_line_tool_imports_another():
    for cli in CLIS | set(ALIASES):
        others = (CLIS | set(ALIASES)) - {cli, ALIASES.get(cli)}
        imported = imported_modules(MODULES[cli])
        assert not reachable(cli) & others, (  # not directly, nor through a helper module
            f"{cli} reaches {sorted(reachable(cli) & others)}")
        if cli in ALIASES:  # an alias imports its tool and nothing else of minivit
            assert imported <= {"minivit", ALIASES[cli]}, imported


def reachable(name):
    """The minivit modules `name` imports, directly or through others (the package's own
    __init__, which gathers the public names, left out)."""
    seen, todo = set(), [name]
    while todo:
        for module in imported_modules(MODULES[todo.pop()]):
            if module in MODULES and module != "minivit" and module not in seen:
                seen.add(module)
                todo.append(module)
    return seen


def test_the_data_layer_imports_nothing_of_the_model():
    for name in MODULES:
        if name.startswith("minivit.data"):
            imported = reachable(name)
            model_side = {m for m in imported if m.split(".")[1:2] in
                          (["nn"], ["model"], ["engine"], ["ops"], ["cnn"], ["train"])}
            assert not model_side, f"{name} imports {sorted(model_side)}"


def test_the_core_is_readable_in_an_evening(capsys):
    """engine + ops + nn + model, tinygrad-style: under 1,500 lines."""
    files = [p for entry in CORE for p in (sorted((PACKAGE / entry).glob("*.py"))
                                           if (PACKAGE / entry).is_dir() else [PACKAGE / entry])]
    lines = sum(len(p.read_text().splitlines()) for p in files)
    with capsys.disabled():
        print(f"\ncore: {lines} lines in {len(files)} files (limit {CORE_LIMIT})")
    assert lines < CORE_LIMIT, f"the core has grown to {lines} lines"
