"""The stand-in's ledger: operations, syncs and copies, each by the line of minivit that caused it."""
import collections
import contextlib
import os
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # tests/strict_cupy
NUMPY = os.path.dirname(sys.modules["numpy"].__file__)
SKIP = (HERE, NUMPY, os.path.dirname(contextlib.__file__))


def site():
    """file:line of the first caller outside the stand-in, NumPy and the standard library."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(SKIP):
        frame = frame.f_back
    if frame is None:
        return "?"
    path = frame.f_code.co_filename
    parts = path.split(os.sep)
    short = os.sep.join(parts[parts.index("minivit"):]) if "minivit" in parts else os.path.basename(path)
    return f"{short}:{frame.f_lineno}"


class Counts:
    """ops: array-producing operations; syncs: device-to-host reads; copies: host-to-device;
    kernels: calls of each fused function, by its name."""

    def __init__(self):
        self.ops, self.syncs, self.copies, self.kernels = (collections.Counter() for _ in range(4))
        self._fused = 0

    def reset(self):
        for counter in (self.ops, self.syncs, self.copies, self.kernels):
            counter.clear()

    def op(self):
        if not self._fused:
            self.ops[site()] += 1

    def sync(self):
        self.syncs[site()] += 1

    def copy(self):
        self.copies[site()] += 1

    @contextlib.contextmanager
    def as_one(self, name):
        """Inside, operations are not counted; the block counts as one (a fused kernel, named)."""
        if not self._fused:
            self.ops[f"{site()} ({name})"] += 1
        self._fused += 1
        try:
            yield
        finally:
            self._fused -= 1

    def totals(self):
        return dict(ops=sum(self.ops.values()), syncs=sum(self.syncs.values()),
                    copies=sum(self.copies.values()))


counts = Counts()
