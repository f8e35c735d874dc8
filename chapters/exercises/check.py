"""Grade an exercise in place, from a chapter's cell (the chapters run with cwd chapters/):

    from exercises.check import check

    check("layernorm", LayerNorm)                 # the class you wrote in the cell above
    check("patchify", patchify, unpatchify)       # an exercise of two functions: pass both
    check("linear", exercises.solutions.linear)   # or a module that defines them

It runs the cases that `python -m pytest --exercises -k NAME` runs (grading.py, shared with
tests/test_exercises.py), stops at the first that fails, and prints one line:

    linear: not done yet -- write Linear.backward, in this notebook
    case tokens (1 of 3) -- gradcheck failed for layernorm: x has relative error 4.98e-03 ...
    passed: 3 cases (tokens, batch1-one-token-one-output, rows-no-bias)

the message of a failed case being pytest's, its hint (if any) on the same line. An error in
your code is one line too: the exception, and the line of your code that raised it.
Not an exercise: nothing to write here.
"""
import linecache
import sys
import types
from typing import NamedTuple

from minivit.engine import Function

try:
    from . import grading
except ImportError:  # imported as a plain module, check.py from this folder
    import grading


class Verdict(NamedTuple):
    """What check() found: `status` one of 'passed', 'not done', 'failed', 'error' (an exception
    in the graded code, or check() called wrongly), `line` the line it prints, `case` the id of
    the case that failed (None when none did), `message` the grader's message for it."""
    status: str
    line: str
    case: str = None
    message: str = None

    def __str__(self):
        return self.line


def where_defined(objects):
    """Where the graded objects were written, as the messages say it: the file of their module
    (or of their code), or 'this notebook' for a cell's (a module named __main__)."""
    for obj in objects:
        if isinstance(obj, types.ModuleType):
            path = getattr(obj, "__file__", None)
        elif getattr(obj, "__module__", None) == "__main__":
            continue
        else:
            module = sys.modules.get(getattr(obj, "__module__", None) or "")
            path = getattr(module, "__file__", None) or min(code_files([obj]), default=None)
        if path:
            return grading.shown(path)
    return "this notebook"


def described(obj):
    """An object in a few words: 'a class Foo', 'a function bar', 'an int'."""
    if isinstance(obj, type):
        return f"a class {obj.__name__}"
    if callable(obj) and hasattr(obj, "__name__"):
        return f"a function {obj.__name__}"
    kind = type(obj).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def sources(name, objects, named):
    """A grading.Given of the objects passed to check(), under the names the exercise's file
    gives them; or a Verdict saying why they cannot be graded."""
    names = grading.NAMES[name]
    given = dict(named)
    for obj in objects:
        if isinstance(obj, types.ModuleType):
            given.update({n: getattr(obj, n) for n in names if hasattr(obj, n) and n not in given})
        elif getattr(obj, "__name__", None) in names:
            given.setdefault(obj.__name__, obj)
        elif len(names) == 1 and len(objects) == 1 and not named:
            given[names[0]] = obj       # one object for one name: whatever you called it
        else:
            what = getattr(obj, "__name__", type(obj).__name__)
            return Verdict("error", f"{name}: check({name!r}, ...) got {what}, but {name}.py defines "
                                    f"{' and '.join(names)}: pass them by name, check({name!r}, "
                                    + ", ".join(f"{n}={n}" for n in names) + ")")
    unknown = sorted(set(given) - set(names))
    if unknown:
        return Verdict("error", f"{name}: check({name!r}, ...) got {', '.join(unknown)}, but {name}.py "
                                f"defines {' and '.join(names)}")
    for key, obj in given.items():
        if grading.KINDS[name] == "class" and not (isinstance(obj, type) and issubclass(obj, Function)):
            return Verdict("error", f"{name}: {key} must be a class, a minivit Function with "
                                    f"forward and backward (as in {name}.py); got {described(obj)}")
        if grading.KINDS[name] == "function" and not callable(obj):
            return Verdict("error", f"{name}: {key} must be a function; got {described(obj)}")
    return grading.Given(name, given, where_defined([*objects, *named.values()]))


def code_files(objects):
    """The files (notebook cells are files too) that the graded objects' code comes from."""
    files = set()
    for obj in objects:
        members = vars(obj).values() if isinstance(obj, type) else [obj]
        for member in members:
            member = getattr(member, "__func__", member)
            code = getattr(member, "__code__", None)
            if code is not None:
                files.add(code.co_filename)
    return files


def raised(error, files):
    """An exception from the graded code, in one line: its type, its message and the line of
    that code it came from (the deepest one in `files`)."""
    text = str(error).strip().splitlines()
    line = f"{type(error).__name__}" + (f": {text[0]}" if text else "")
    frame = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in files:
            frame = tb
        tb = tb.tb_next
    if frame is not None:
        code = linecache.getline(frame.tb_frame.f_code.co_filename, frame.tb_lineno).strip()
        where = f"line {frame.tb_lineno} of {frame.tb_frame.f_code.co_name}"
        line += f" (at {where}: {code})" if code else f" (at {where})"
    return line


def verdict(name, *objects, **named):
    """Grade exercise `name` on `objects` (the class or functions its file defines, or a module
    that defines them; by keyword for several: patchify=..., unpatchify=...) and return the
    Verdict, printing nothing."""
    if name not in grading.CASES:
        return Verdict("error", f"no exercise {name!r}: the exercises are "
                                f"{', '.join(grading.EXERCISES)}")
    source = sources(name, objects, named)
    if isinstance(source, Verdict):
        return source
    files = code_files(source.objects.values())
    cases = grading.CASES[name]
    for index, case in enumerate(cases, 1):
        failure = error = None
        try:
            grading.run(name, case, source)
        except grading.Failed as failed:
            failure = failed
        except Exception as exception:  # an error in the graded code: one line, no traceback
            error = exception
        at = f"case {case.id} ({index} of {len(cases)})"
        if failure is not None:
            message = str(failure)
            if failure.not_done:
                return Verdict("not done", message, case.id, message)
            return Verdict("failed", f"{at} -- {' '.join(message.splitlines())}", case.id, message)
        if error is not None:
            return Verdict("error", f"{at} -- your code raised {raised(error, files)}", case.id)
    return Verdict("passed", f"passed: {len(cases)} cases ({', '.join(case.id for case in cases)})")


def check(name, *objects, **named):
    """Grade exercise `name` on what you wrote and print the verdict in one line (see verdict()).
    The same cases as `python -m pytest --exercises -k NAME`."""
    print(verdict(name, *objects, **named))

