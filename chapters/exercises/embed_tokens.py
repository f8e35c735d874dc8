"""Exercise: prepend the class token and add the position embeddings, the last step before the
encoder blocks.

Write `embed_tokens` below, then grade it:

    python -m pytest --exercises -k embed_tokens

Chapter 6 (06_class_token_and_positions) teaches this. A forward on NumPy arrays, graded
against the first steps of minivit's ViT.forward_features. See README.md in this folder.
The answer is in solutions/ and in minivit/model.py: try first.
"""
import numpy as np


def embed_tokens(x, cls_token, pos_embed):
    """Equation 1 of the paper, z0 = [x_class; x_1 E; ...; x_N E] + E_pos:
        x: (B N D), the patch tokens (PatchEmbed's output),
        cls_token: (1 1 D), the class token (one learned vector, the same for every image),
        pos_embed: (1 1+N D), one position embedding per position, class token's first
        -> z0: (B 1+N D), with z0[:, 0] = cls_token[0, 0] + pos_embed[0, 0] for every image
           and z0[:, 1:] = x + pos_embed[:, 1:].

    Hint: three steps, each one NumPy call.
      1. Give every image its copy of the class token: np.broadcast_to it to (B 1 D).
      2. Put it in front of the patch tokens: np.concatenate along the token axis (axis=1).
      3. Add pos_embed: broadcasting adds its (1 1+N D) to each of the B images.
    Return a NumPy array; do not change x in place (it is the caller's).
    """
    raise NotImplementedError("exercise not done yet: write embed_tokens "
                              "(its docstring has the shapes and a hint)")
