"""Reference solution of chapters/exercises/interpolate_pos_embed.py. Try the exercise before
reading this."""
import numpy as np


def interpolation_matrix(old, new):
    """(new old) weights, corners aligned: output i samples the old axis at
    x_i = i (old - 1) / (new - 1), weight 1 - f on floor(x_i) and f on the next position
    (clipped at the end, where f = 0), f the fractional part."""
    positions = np.arange(new) * (old - 1) / max(new - 1, 1)
    left = np.minimum(np.floor(positions).astype(int), old - 1)
    right = np.minimum(left + 1, old - 1)
    fraction = positions - left
    weights = np.zeros((new, old))
    weights[np.arange(new), left] += 1 - fraction
    weights[np.arange(new), right] += fraction
    return weights


def interpolate_pos_embed(pos_embed, new_grid):
    """Bilinear = linear along the rows, then linear along the columns, each a matrix M (G g):
    per channel d, resized[:, :, d] = M grid[:, :, d] M^T, i.e.
    resized[I, J, d] = sum_i sum_j M[I, i] grid[i, j, d] M[J, j]. The class row is set aside
    before and put back in front after, as minivit.model.resize_pos_embed."""
    cls, grid = pos_embed[:, :1], pos_embed[0, 1:]
    g = int(round(len(grid) ** 0.5))
    grid = grid.reshape(g, g, -1)
    M = interpolation_matrix(g, new_grid).astype(pos_embed.dtype)
    resized = np.einsum("Ii,ijd,Jj->IJd", M, grid, M)
    return np.concatenate([cls, resized.reshape(1, new_grid * new_grid, -1)], axis=1)
