"""Exercise: cut images into patches, and put the patches back together.

Write `patchify` and `unpatchify` below, then grade them:

    python -m pytest --exercises -k patchify

Chapter 5 (05_patching: "Patches" and "`rearrange`") teaches this. No gradients here: both are
forwards on NumPy arrays. See README.md in this folder.
The answer is in solutions/ and in minivit/model.py (PatchEmbed): try first.
"""
import einops


def patchify(images, patch_size):
    """Cut images into P x P patches, each flattened into one row, P = patch_size:
        images (B C H W) -> patches (B N P*P*C),  N = (H/P) (W/P).

    The patches go row by row over the (H/P) x (W/P) grid: patch 0 is the top-left one, patch 1
    its right-hand neighbour. Inside a patch the entries are ordered (p1 p2 c): pixel row p1,
    then pixel column p2, then the channel c, as minivit's PatchEmbed orders them (that order is
    what makes the patch embedding equal to the paper's strided convolution). H and W are
    multiples of P but need not be equal.

    Hint: one call to einops.rearrange. Name the input's axes, splitting H into (h p1) and W
    into (w p2): h is the patch's row on the grid, p1 the pixel's row inside its patch. Then say
    where each axis goes: h and w make the patch index N, p1, p2 and c the row of a patch.
    einops cannot split H by itself: pass p1=patch_size and p2=patch_size.
    Return a NumPy array (the images are float64; keep them so).
    """
    raise NotImplementedError("exercise not done yet: write patchify "
                              "(its docstring has the shapes and a hint)")


def unpatchify(patches, patch_size, height, width):
    """The inverse of patchify: patches (B N P*P*C) -> images (B C H W), H = height and
    W = width in pixels, so that unpatchify(patchify(x, P), P, H, W) gives x back exactly.

    Hint: the same pattern with its two sides swapped. einops now has to split N into the
    grid's h rows and w columns, and cannot guess how: pass h = height // patch_size (and p1,
    p2 as before); it infers w and c from the rest.
    """
    raise NotImplementedError("exercise not done yet: write unpatchify "
                              "(its docstring has the shapes and a hint)")
