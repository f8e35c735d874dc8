"""The Vision Transformer (Dosovitskiy et al., 2021), as in the paper and its official code.

    image (B C H W) -> patches (B N P*P*C) -> linear projection (B N D)
    -> prepend the class token (B 1+N D) -> add position embeddings -> dropout
    -> depth x pre-LN encoder block -> LayerNorm -> class token (B D) -> head (B K)
"""
import numpy as np

from minivit import backend, ops
from minivit.engine import Tensor
from minivit.interpolate import interpolation_matrix
from minivit.nn import MLP, Dropout, LayerNorm, Linear, Module, MultiHeadAttention, Parameter, normal

# The paper's models (Table 1) at 224 px, and small ones for 32 px CIFAR images with 4 px patches.
CONFIGS = {
    "Ti/16": dict(dim=192, depth=12, heads=3, mlp_dim=768, patch_size=16, image_size=224),
    "S/16": dict(dim=384, depth=12, heads=6, mlp_dim=1536, patch_size=16, image_size=224),
    "B/16": dict(dim=768, depth=12, heads=12, mlp_dim=3072, patch_size=16, image_size=224),
    "L/16": dict(dim=1024, depth=24, heads=16, mlp_dim=4096, patch_size=16, image_size=224),
    "C-micro/4": dict(dim=64, depth=2, heads=2, mlp_dim=128, patch_size=4, image_size=32),
    "C-mini/4": dict(dim=128, depth=6, heads=4, mlp_dim=256, patch_size=4, image_size=32),
    "C-Ti/4": dict(dim=192, depth=6, heads=3, mlp_dim=768, patch_size=4, image_size=32),
    "C-S/4": dict(dim=256, depth=7, heads=4, mlp_dim=512, patch_size=4, image_size=32),
    "C-M/4": dict(dim=384, depth=7, heads=12, mlp_dim=768, patch_size=4, image_size=32),  # gpu preset
}


class PatchEmbed(Module):
    """Cut the image into P x P patches and project each to D features.
    (B C H W) -> rearrange -> (B N P*P*C) -> linear -> (B N D),  N = (H/P) (W/P).
    Ordering each patch as (p1 p2 c) makes this equal to the official strided convolution."""

    def __init__(self, image_size, patch_size, in_channels, dim):
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.grid = image_size // patch_size
        self.proj = Linear(patch_size * patch_size * in_channels, dim, init="lecun")

    def forward(self, images):
        self.check(images.shape)
        patches = ops.rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)",
                                p1=self.patch_size, p2=self.patch_size)
        return self.proj(patches)

    def check(self, shape):
        """A clear error for images the model cannot take, before any computation."""
        size, channels = self.image_size, self.in_channels
        if len(shape) != 4:
            raise ValueError(f"expected images of shape (B, {channels}, {size}, {size}), "
                             f"got an array with {len(shape)} axes {tuple(shape)}")
        if shape[1] != channels:
            raise ValueError(f"expected {channels} channels (images of shape (B, {channels}, H, W)), "
                             f"got {shape[1]} in shape {tuple(shape)}")
        if shape[2] % self.patch_size or shape[3] % self.patch_size:
            raise ValueError(f"image size {shape[2]}x{shape[3]} is not divisible by the patch "
                             f"size {self.patch_size}")
        if shape[2:] != (size, size):
            raise ValueError(f"this model takes {size}x{size} images, got {shape[2]}x{shape[3]}")


class Block(Module):
    """Pre-LN encoder block: x + attn(LN(x)), then x + mlp(LN(x)).  (B N D) -> (B N D)."""

    def __init__(self, dim, heads, mlp_dim, dropout=0.0, gelu="erf", eps=1e-6):
        self.norm1 = LayerNorm(dim, eps)
        self.attn = MultiHeadAttention(dim, heads)
        self.drop = Dropout(dropout)
        self.norm2 = LayerNorm(dim, eps)
        self.mlp = MLP(dim, mlp_dim, dropout, gelu)

    def forward(self, x):
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


def resize_pos_embed(pos_embed, new_grid, cls_tokens=1):
    """Position embeddings (1 cls+g*g D) for a g x g patch grid -> (1 cls+G*G D) for G x G, by
    bilinear interpolation of the grid (corners aligned, the official code's choice); the class
    token's embedding is kept apart and unchanged."""
    cls, grid = pos_embed[:, :cls_tokens], pos_embed[0, cls_tokens:]
    old_grid = int(round(len(grid) ** 0.5))
    grid = grid.reshape(old_grid, old_grid, -1)
    matrix = interpolation_matrix(old_grid, new_grid).astype(pos_embed.dtype)
    resized = np.einsum("Ii,ijd,Jj->IJd", matrix, grid, matrix)  # rows, then columns
    return np.concatenate([cls, resized.reshape(1, new_grid * new_grid, -1)], axis=1)


class ViT(Module):
    """Vision Transformer.  images (B C H W) -> logits (B K).

    pool='cls' classifies the class token (the paper's default); pool='gap' averages the patch
    tokens instead and, as in the official code, then has no class token.
    gelu='tanh' is the approximation the paper's own (JAX) code used, and the default here: on the
    CPU it is ~40x cheaper than SciPy's erf. gelu='erf' is the exact GELU that timm uses.
    embed: another token embedding in place of PatchEmbed (the hybrid's CNN stem, minivit.cnn).
    """

    def __init__(self, image_size=224, patch_size=16, in_channels=3, num_classes=1000, dim=768,
                 depth=12, heads=12, mlp_dim=3072, dropout=0.0, pool="cls", gelu="tanh", eps=1e-6,
                 embed=None):
        if image_size % patch_size:
            raise ValueError(f"image size {image_size} is not divisible by patch size {patch_size}")
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        if pool not in ("cls", "gap"):
            raise ValueError(f"pool must be 'cls' or 'gap', not {pool!r}")
        self.architecture = dict(patch_size=patch_size, in_channels=in_channels,
                                 num_classes=num_classes, dim=dim, depth=depth, heads=heads,
                                 mlp_dim=mlp_dim, dropout=dropout, pool=pool, gelu=gelu, eps=eps)
        self.pool = pool
        self.patch_embed = embed or PatchEmbed(image_size, patch_size, in_channels, dim)
        tokens = self.patch_embed.grid ** 2 + (pool == "cls")
        self.cls_token = Parameter(np.zeros((1, 1, dim), np.float32)) if pool == "cls" else None
        self.pos_embed = Parameter(normal((1, tokens, dim), 0.02))
        self.drop = Dropout(dropout)
        self.blocks = [Block(dim, heads, mlp_dim, dropout, gelu, eps) for _ in range(depth)]
        self.norm = LayerNorm(dim, eps)
        self.head = Linear(dim, num_classes, init="zeros")

    @property
    def image_size(self):
        """The side of the square images the model takes (the patch embedding's)."""
        return self.patch_embed.image_size

    @property
    def config(self):
        """The keyword arguments that build this model again: ViT(**model.config)."""
        return {"image_size": self.image_size, **self.architecture}

    @classmethod
    def from_config(cls, name, **overrides):
        """A named config, e.g. ViT.from_config('Ti/16', num_classes=10); keywords override it."""
        if name not in CONFIGS:
            raise ValueError(f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}")
        return cls(**{**CONFIGS[name], **overrides})

    def resize(self, image_size):
        """Take images of another size with the same patch size (fine-tuning at a higher
        resolution): the position embeddings are interpolated to the new patch grid."""
        patch = self.patch_embed.patch_size
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not divisible by patch size {patch}")
        device = self.pos_embed.device
        old = backend.to_device(self.pos_embed.data, "cpu")
        new = resize_pos_embed(old, image_size // patch, cls_tokens=int(self.pool == "cls"))
        self.pos_embed.data = backend.to_device(new, device)
        self.patch_embed.image_size, self.patch_embed.grid = image_size, image_size // patch
        return self

    def forward_features(self, images):
        """images (B C H W) -> the representation the head sees (B D)."""
        x = self.patch_embed(images)                                   # B N D
        if self.pool == "cls":
            cls = ops.broadcast_to(self.cls_token, (x.shape[0], 1, x.shape[2]))
            x = ops.concat([cls, x], axis=1)                           # B 1+N D
        x = self.drop(x + self.pos_embed)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 0] if self.pool == "cls" else x.mean(axis=1)      # B D

    def forward(self, images):
        if not isinstance(images, Tensor):
            images = Tensor(images, dtype=self.pos_embed.dtype)
        return self.head(self.forward_features(images))
