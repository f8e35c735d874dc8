"""What every command-line tool shares: its parser, the --device option and one-line errors.

Each tool (`python -m minivit.train`, evaluate, inspect, bench) is a module of its own that
imports none of the others; they meet here. `run(main)` calls a tool's main and turns a
minivit.Error (or running out of memory, or Ctrl-C) into one line on stderr and an exit code
of 1, never a traceback; a flag that cannot be parsed gets one line too, and exits with 2.
Started by `mpiexec -n N`, a process that fails ends the whole job (minivit.distributed), with
a line that names its rank: no process is left waiting for the others.
"""
import argparse
import sys
import traceback
import warnings

from minivit import distributed
from minivit.backend import DEVICES
from minivit.errors import Error


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (not the whole usage) that points to --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


DEVICE_HELP = "cpu (NumPy) or gpu (CuPy)"  # the tools' --device, and minivit.train's


def add_device(parser):
    parser.add_argument("--device", choices=DEVICES, default="cpu", help=DEVICE_HELP)


def run(main, interrupted="stopped"):
    """main() with one-line errors. `interrupted`: what to print on Ctrl-C (e.g. how to resume),
    or a function that returns it."""
    warnings.formatwarning = lambda message, *args, **kwargs: f"warning: {one_line(message)}\n"
    world = distributed.world()
    try:
        return main()
    except KeyboardInterrupt:
        message = f"\n{interrupted() if callable(interrupted) else interrupted}"
    except MemoryError:
        message = "error: out of memory: try a smaller --batch-size (or a smaller model)"
    except Error as error:
        message = f"error: {one_line(error)}"
    except Exception:  # a bug: with other processes waiting, end them too, with the traceback
        if world.size == 1:
            raise
        message = f"error: rank {world.rank} failed:\n{traceback.format_exc()}"
    if world.size > 1:
        if world.rank and not message.startswith(f"error: rank {world.rank} "):
            message = message.replace("error: ", f"error: rank {world.rank}: ", 1)
        world.abort(message)
    sys.exit(message)


def one_line(message):
    """A message whose parts were on several lines (some of Python's own, e.g. tarfile's), on one."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())
