"""Linear interpolation as a matrix: resizing a grid is `M_rows @ grid @ M_cols^T`.

Two conventions:
- corners aligned (position embeddings, as the official code's scipy.ndimage.zoom(order=1)):
  output i samples the input at i * (old - 1) / (new - 1), so the corner values are kept;
- pixel centres aligned (images, as PIL or torch's bilinear without antialiasing): output i
  samples the input at (i + 0.5) * old / new - 0.5; halving a size averages 2 x 2 blocks.
"""
import numpy as np


def interpolation_matrix(old, new, align_corners=True):
    """(new old) weights: row i mixes the two input positions around output position i."""
    if align_corners:
        positions = np.arange(new) * (old - 1) / max(new - 1, 1)
    else:
        positions = np.clip((np.arange(new) + 0.5) * old / new - 0.5, 0, old - 1)
    left = np.minimum(np.floor(positions).astype(int), old - 1)
    right = np.minimum(left + 1, old - 1)
    fraction = positions - left
    weights = np.zeros((new, old))
    weights[np.arange(new), left] += 1 - fraction
    weights[np.arange(new), right] += fraction
    return weights
