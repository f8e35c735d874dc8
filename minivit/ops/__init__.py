"""minivit's ops: each a Function with a forward and a hand-written backward (see the files
beside this one), used through the plain functions of `functional`; `composed` rebuilds the
big ones from primitives as an independent check."""
from minivit.ops.functional import *  # noqa: F401,F403  (the names in its __all__)
from minivit.ops import composed  # noqa: F401
