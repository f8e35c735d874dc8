"""Exercise: the backward pass of the patch embedding (cut into patches, then project).

Write `PatchEmbedding.backward` below (the forward is done), then grade it:

    python -m pytest --exercises -k patch_embed

Do the linear exercise first: this one uses it. See README.md in this folder.
The answer is in solutions/: try first.
"""
import einops

from minivit.engine import Function

PATCHES = "b c (h p1) (w p2) -> b (h w) (p1 p2 c)"


class PatchEmbedding(Function):
    """Cut images into P x P patches and project each one, in one op (P = self.patch_size):
    images (B C H W) -> patches (B N P*P*C), N = (H/P) (W/P) -> patches W + b (B N D).
    weight: (P*P*C D), bias: (D)."""

    def forward(self, images, weight, bias):
        self.patches = einops.rearrange(images, PATCHES, p1=self.patch_size, p2=self.patch_size)
        return self.patches @ weight + bias

    def backward(self, grad):
        """grad = dL/dout, shape (B N D). Return (dimages, dweight, dbias) with shapes
        (B C H W), (P*P*C D) and (D).

        Hint: two steps, last first.
          1. patches W + b is a linear layer whose rows are all the (image, patch) pairs: your
             linear exercise gives dpatches (B N P*P*C), dweight and dbias (flatten B and N into
             rows with .reshape(-1, ...)). The patches are kept in self.patches.
          2. The rearrange only moves entries: every pixel lands in exactly one place of one
             patch. So where does its gradient come from? Move dpatches back with
             einops.rearrange and the pattern reversed ("b (h w) (p1 p2 c) -> b c (h p1) (w p2)").
             einops cannot guess how N splits into h and w: pass h, w (and p1, p2) as keywords.
        The images are self.inputs[0].data, the weight self.inputs[1].data.
        """
        raise NotImplementedError("exercise not done yet: write PatchEmbedding.backward "
                                  "(its docstring has the shapes and a hint)")
