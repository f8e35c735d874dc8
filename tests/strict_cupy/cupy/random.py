"""cupy.random.default_rng: a Generator with only the methods CuPy's has (no `permutation`,
no `choice`), drawing on the pretend device (NumPy's generator underneath)."""
import json
import os

import numpy as np

NAMES = json.load(open(os.path.join(os.path.dirname(__file__), "names.json")))


class Generator:
    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        if name.startswith("_") or name not in NAMES["generator"]:
            raise AttributeError(f"cupy.random.Generator has no method {name!r}")
        from . import _run
        return lambda *args, **kwargs: _run(getattr(self._rng, name), args, kwargs)


def default_rng(seed=None):
    return Generator(seed)
