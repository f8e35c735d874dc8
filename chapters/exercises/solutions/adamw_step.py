"""Reference solution of chapters/exercises/adamw_step.py. Try the exercise before reading this."""
import numpy as np


def adamw_step(p, g, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """m and v are exponential moving averages started at 0, so after t steps they carry a
    total weight 1 - b^t instead of 1: dividing by it removes that bias towards 0. Adam then
    steps by mhat / (sqrt(vhat) + eps), about lr per entry whatever the gradient's scale. The
    decay lr lambda p acts on the weights directly (decoupled), not through g, where Adam's
    division would rescale it. As minivit.optim.AdamW (which folds lr / (1 - b1^t) into one
    step size)."""
    b1, b2 = betas
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    mhat = m / (1 - b1 ** t)
    vhat = v / (1 - b2 ** t)
    p = p - lr * (mhat / (np.sqrt(vhat) + eps) + weight_decay * p)
    return p, m, v
