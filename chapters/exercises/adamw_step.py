"""Exercise: one step of the AdamW optimizer.

Write `adamw_step` below, then grade it:

    python -m pytest --exercises -k adamw_step

Chapter 7 (07_training: "AdamW, warmup and cosine decay") teaches this. Elementwise NumPy on
one parameter, graded against minivit.optim.AdamW over several steps. See README.md in this
folder. The answer is in solutions/ and in minivit/optim.py: try first.
"""
import numpy as np


def adamw_step(p, g, m, v, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """One AdamW step (Loshchilov & Hutter) for one parameter; p, g, m, v all have its shape:
        p: the parameter,  g: its gradient,  m, v: the running averages of g and of g^2 (zeros
        before the first step),  t: the number of this step (1 for the first, then 2, 3, ...),
        lr: the learning rate eta,  betas: (b1, b2),  weight_decay: lambda.
    Returns the new (p, m, v), as three arrays. The update:
        m = b1 m + (1 - b1) g                  v = b2 v + (1 - b2) g^2
        mhat = m / (1 - b1^t)                  vhat = v / (1 - b2^t)
        p = p - lr (mhat / (sqrt(vhat) + eps) + lambda p)       (lambda p: the old p)

    Hint, the usual mistakes:
      - the bias correction: 1 - b1^t with t counting from 1; without it the first steps are
        ~10x (m) and ~30x (v) too small, as m and v start at zero;
      - eps is added to sqrt(vhat), outside the square root;
      - the weight decay is decoupled: lambda p is added to the step, scaled by lr but not by
        Adam's division; adding lambda p to g instead is Adam with L2 regularisation, another
        optimizer;
      - m and v are returned updated (the next step needs them): the caller passes them back in.
    Return new arrays (p - ..., not p -= ...), so as not to change the caller's arrays.
    """
    raise NotImplementedError("exercise not done yet: write adamw_step "
                              "(its docstring has the shapes and a hint)")
