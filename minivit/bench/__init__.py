"""The benchmark: `python -m minivit.bench` (its code is in __main__.py) times minivit against
the same model in PyTorch (torch_twin.py), the one place in minivit that imports PyTorch; the
tests compare with the same twin. PyTorch is not a dependency: without it, minivit is timed
alone."""
