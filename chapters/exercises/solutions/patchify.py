"""Reference solution of chapters/exercises/patchify.py. Try the exercise before reading this."""
import einops

PATCHES = "b c (h p1) (w p2) -> b (h w) (p1 p2 c)"


def patchify(images, patch_size):
    """Cut images into P x P patches, each flattened into one row, P = patch_size:
        images (B C H W) -> patches (B N P*P*C),  N = (H/P) (W/P),
    patches row by row over the grid, each ordered (p1 p2 c) as minivit's PatchEmbed.

    H = (h p1): pixel row = h P + p1, with h the patch's grid row and p1 the row inside it; the
    same for W = (w p2). Patch n = h (W/P) + w is (h w) in that order (row-major), and its
    entries (p1 p2 c). einops infers h and w once p1 and p2 are given."""
    return einops.rearrange(images, PATCHES, p1=patch_size, p2=patch_size)


def unpatchify(patches, patch_size, height, width):
    """The inverse: the pattern's sides swapped. On this side N = (h w) is one axis, so einops
    needs h (w would follow from N, and c from P*P*C; giving w too makes einops check that N is
    h w)."""
    left, right = PATCHES.split("->")
    return einops.rearrange(patches, f"{right} -> {left}", h=height // patch_size,
                            w=width // patch_size, p1=patch_size, p2=patch_size)
