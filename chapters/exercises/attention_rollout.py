"""Exercise: attention rollout, the map of the patches the class token draws on.

Write `attention_rollout` below, then grade it:

    python -m pytest --exercises -k attention_rollout

Chapter 9 (09_what_a_vit_learns: "Attention rollout") teaches this. NumPy on the attention
weights of every layer, graded against minivit.analysis.attention_rollout. See README.md in
this folder. The answer is in solutions/ and in minivit/analysis.py: try first.
"""
import numpy as np


def attention_rollout(attentions):
    """Attention rollout (Abnar & Zuidema, 2020; the paper's Figure 6), for a model with a class
    token:
        attentions: a list of L arrays (B H T T), the first layer's first; T = 1 + g*g tokens,
        token 0 the class token, then the g x g patches in row-major order; row i of head h is
        query i's softmax over the keys (it sums to 1)
        -> maps: (B g g) float64 in [0, 1], one map per image.
    1. Per layer l: average the H heads, add the identity for the residual connection, and
       renormalise each row to sum to 1:  A^_l = rownorm(mean_h A_l + I)   (B T T).
    2. Roll out through the layers: R = A^_L ... A^_2 A^_1 (B T T), the last layer on the left
       (R[b, i, j]: how much of input token j reaches output token i).
    3. The map is the class token's row of R at the patch columns, R[:, 0, 1:] (B g*g),
       reshaped to (B g g) (row-major, as the patches).
    4. Min-max scale each image's map to [0, 1]: (map - min) / (max - min), min and max over
       that image's g*g entries; a constant map (max = min) becomes all zeros.

    Hint: np.eye(T) broadcasts over B; .sum(axis=-1, keepdims=True) for the row sums; @ on
    (B T T) arrays multiplies image by image. Keep R and multiply each new layer on the left.
    min and max over the last two axes with keepdims=True; np.where to avoid dividing by 0.
    """
    raise NotImplementedError("exercise not done yet: write attention_rollout "
                              "(its docstring has the shapes and a hint)")
