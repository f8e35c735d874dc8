"""Exercise: resize the position embeddings to a bigger (or smaller) patch grid.

Write `interpolate_pos_embed` below, then grade it:

    python -m pytest --exercises -k interpolate_pos_embed

Chapter 6 (06_class_token_and_positions: "A bigger grid: interpolating the embeddings")
teaches this; chapter 8 fine-tunes with it. A forward on NumPy arrays, graded against
minivit.model.resize_pos_embed. See README.md in this folder.
The answer is in solutions/, in minivit/model.py and in minivit/interpolate.py: try first.
"""
import numpy as np


def interpolate_pos_embed(pos_embed, new_grid):
    """Position embeddings for a g x g patch grid -> for a G x G grid, G = new_grid (as when a
    ViT is fine-tuned at a higher resolution with the same patch size):
        pos_embed: (1 1+g*g D), row 0 the class token's, then the grid's rows in row-major
        order (row r, column c of the grid is row 1 + r g + c)
        -> (1 1+G*G D): row 0 unchanged, then the g x g grid resized to G x G.
    The resize is bilinear with the corners aligned, the same along rows and along columns:
    output row i samples the old grid at position x_i = i (g - 1) / (G - 1), mixing its two
    neighbours: with f = x_i - floor(x_i), weight 1 - f on floor(x_i) and f on floor(x_i) + 1
    (when x_i is the last position, g - 1, all its weight is on it). So the four corners are kept
    exactly. For G = 1 the one output samples position 0, the top-left corner; for g = 1 every
    output copies the one old embedding.

    Hint:
      1. Build the (G g) interpolation matrix M: row i has 1 - f and f in the two columns around
         x_i (each row sums to 1). np.arange(G) * (g - 1) / max(G - 1, 1) gives every x_i.
      2. grid = pos_embed[0, 1:].reshape(g, g, D): an image with D channels.
      3. Resize the rows, then the columns: on each channel d that is M @ grid[:, :, d] @ M.T,
         (G G); np.einsum does all D channels at once.
      4. Reshape to (1 G*G D) and np.concatenate it after the class token's row (pos_embed[:, :1]).
    """
    raise NotImplementedError("exercise not done yet: write interpolate_pos_embed "
                              "(its docstring has the shapes and a hint)")
