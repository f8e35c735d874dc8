"""Reference solution of chapters/exercises/patch_embed.py. Try the exercise before reading this."""
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
        """The linear part as in the linear exercise, with rows = every (b, patch) pair:
            dpatches = dy W^T,  dW = patches^T dy (summed over rows),  db = dy summed over rows.
        The rearrange only moves entries: each image pixel lands in exactly one patch entry, so
        dimages is dpatches moved back by the reverse pattern (h and w must be given, since the
        reverse cannot infer how N = h w splits)."""
        images, weight = self.inputs[0].data, self.inputs[1].data
        B, C, H, W = images.shape
        P = self.patch_size
        rows = grad.reshape(-1, grad.shape[-1])                              # (B*N D)
        dweight = self.patches.reshape(-1, self.patches.shape[-1]).T @ rows   # (P*P*C D)
        dbias = rows.sum(axis=0)                                             # (D)
        dpatches = grad @ weight.T                                           # (B N P*P*C)
        left, right = PATCHES.split("->")
        dimages = einops.rearrange(dpatches, f"{right} -> {left}", h=H // P, w=W // P, p1=P, p2=P)
        return dimages, dweight, dbias
