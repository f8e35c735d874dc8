"""Inductive bias: a small CNN baseline and a hybrid ViT whose tokens come from a CNN feature map.

    SmallCNN:  image (B C H W) -> stages of [3x3 conv -> GroupNorm -> ReLU] x n, 2x2 max-pool
               -> global average pool (B D) -> head (B K)
    HybridViT: image (B C H W) -> CNN stem (B C' h w), h = H / 2^stages
               -> tokens, patch size 1: rearrange 'b c h w -> b (h w) c' (B N C')
               -> linear C' -> D (the official hybrid's 1x1-conv embedding) (B N D)
               -> class token, position embeddings, encoder blocks, LayerNorm, head: as in ViT

The official hybrid (REFERENCE.md, Hybrid) puts a ResNet with GroupNorm and weight-standardised
convolutions before the transformer; here the stem is a few plain conv-GroupNorm-ReLU-maxpool
stages (no weight standardisation), small enough to train on a CPU.
"""
import math

import numpy as np

from minivit import ops
from minivit.engine import Tensor
from minivit.model import CONFIGS, PatchEmbed, ViT
from minivit.nn import Linear, Module, Parameter, normal

GROUPS = 8  # GroupNorm's groups in the hybrid's stem (a stage of fewer channels: one each)


class Conv2d(Module):
    """(B C H W) -> (B O H' W'), H' = (H + 2 padding - k) // stride + 1.

    He (kaiming) normal init: std sqrt(2 / fan_in), fan_in = C k k, which keeps the activations'
    scale from layer to layer through ReLUs (He et al., 2015); bias zeros."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        self.stride, self.padding = stride, padding
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = Parameter(normal((out_channels, in_channels, kernel_size, kernel_size),
                                       math.sqrt(2 / fan_in)))
        self.bias = Parameter(np.zeros(out_channels, np.float32)) if bias else None

    def forward(self, x):
        return ops.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class GroupNorm(Module):
    """Normalise each image's groups of channels; a learned per-channel scale (ones) and shift
    (zeros).  (B C H W) -> (B C H W)."""

    def __init__(self, groups, channels, eps=1e-5):
        if channels % groups:
            raise ValueError(f"{channels} channels cannot be split into {groups} groups")
        self.groups, self.eps = groups, eps
        self.weight = Parameter(np.ones(channels, np.float32))
        self.bias = Parameter(np.zeros(channels, np.float32))

    def forward(self, x):
        return ops.group_norm(x, self.groups, self.weight, self.bias, self.eps)


class ConvNormReLU(Module):
    """3x3 conv (padding 1, no bias: GroupNorm's shift is the bias) -> GroupNorm -> ReLU.
    (B C H W) -> (B O H W)."""

    def __init__(self, in_channels, out_channels, groups):
        self.conv = Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm = GroupNorm(min(groups, out_channels), out_channels)

    def forward(self, x):
        return ops.relu(self.norm(self.conv(x)))


class Stage(Module):
    """`depth` ConvNormReLU layers, then a 2x2 max-pool.  (B C H W) -> (B O H/2 W/2)."""

    def __init__(self, in_channels, out_channels, depth, groups):
        self.layers = [ConvNormReLU(in_channels if i == 0 else out_channels, out_channels, groups)
                       for i in range(depth)]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return ops.max_pool2d(x, 2)


def _images(images, like):
    return images if isinstance(images, Tensor) else Tensor(images, dtype=like.dtype)


class SmallCNN(Module):
    """A small CNN baseline.  images (B C H W) -> logits (B K).

    len(widths) stages, each `depth` x [3x3 conv -> GroupNorm -> ReLU] then a 2x2 max-pool;
    global average pooling (a mean over the positions: no op of its own) gives the (B D)
    features, D = widths[-1]; a linear head (zeros, as ViT's) gives the logits.
    """

    def __init__(self, image_size=32, in_channels=3, num_classes=10, widths=(32, 64, 128),
                 depth=2, groups=8):
        if image_size % 2 ** len(widths):
            raise ValueError(f"image size {image_size} is not divisible by 2^{len(widths)} "
                             f"(one 2x2 max-pool per stage)")
        self.config = dict(image_size=image_size, in_channels=in_channels,
                           num_classes=num_classes, widths=tuple(widths), depth=depth,
                           groups=groups)
        self.image_size, self.in_channels = image_size, in_channels
        channels = [in_channels, *widths]
        self.stages = [Stage(c_in, c_out, depth, groups) for c_in, c_out in zip(channels, widths)]
        self.head = Linear(widths[-1], num_classes, init="zeros")

    def forward_features(self, images):
        """images (B C H W) -> the globally average-pooled features the head sees (B D)."""
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (B, {self.in_channels}, H, W), "
                             f"got {tuple(images.shape)}")
        x = images
        for stage in self.stages:
            x = stage(x)
        return x.mean(axis=(2, 3))                                     # B D

    def forward(self, images):
        return self.head(self.forward_features(_images(images, self.head.weight)))


class HybridEmbed(PatchEmbed):
    """The hybrid's token embedding: a CNN stem, then patch size 1 on its feature map.
    (B C H W) -> stem (B C' h w) -> rearrange 'b c h w -> b (h w) c' -> linear -> (B N D),
    h = H / 2^len(stem_widths), N = h w.

    Each token sees a 2^stages x 2^stages cell of the image (and, through the 3x3 convs, a bit
    around it): `patch_size` is that cell's side in pixels, so ViT's position-embedding resize
    and pixel-distance analyses apply unchanged."""

    def __init__(self, image_size, in_channels, dim, stem_widths=(32, 64), depth=1,
                 groups=GROUPS):
        self.image_size, self.in_channels = image_size, in_channels
        self.patch_size = 2 ** len(stem_widths)
        if image_size % self.patch_size:
            raise ValueError(f"image size {image_size} is not divisible by the stem's stride "
                             f"{self.patch_size}")
        self.grid = image_size // self.patch_size
        channels = [in_channels, *stem_widths]
        self.stem = [Stage(c_in, c_out, depth, groups)
                     for c_in, c_out in zip(channels, stem_widths)]
        self.proj = Linear(stem_widths[-1], dim, init="lecun")        # the 1x1 convolution

    def forward(self, images):
        self.check(images.shape)
        x = images
        for stage in self.stem:
            x = stage(x)                                               # B C' h w
        return self.proj(ops.rearrange(x, "b c h w -> b (h w) c"))     # B N D


class HybridViT(ViT):
    """A ViT whose tokens are the positions of a CNN feature map.  images (B C H W) -> logits (B K).

    Everything after the embedding (class token, position embeddings, encoder blocks, final
    LayerNorm, head, pool='cls' or 'gap') is ViT's, so forward_features, resize and the analyses
    work as for ViT. stem_widths: the channels of each stem stage (each halves the resolution);
    stem_depth: conv layers per stage.
    """

    def __init__(self, image_size=32, in_channels=3, num_classes=10, stem_widths=(32, 64),
                 stem_depth=1, groups=GROUPS, dim=96, depth=4, heads=3, mlp_dim=192, dropout=0.0,
                 pool="cls", gelu="tanh", eps=1e-6):
        embed = HybridEmbed(image_size, in_channels, dim, stem_widths, stem_depth, groups)
        super().__init__(image_size=image_size, patch_size=embed.patch_size,
                         in_channels=in_channels, num_classes=num_classes, dim=dim, depth=depth,
                         heads=heads, mlp_dim=mlp_dim, dropout=dropout, pool=pool, gelu=gelu,
                         eps=eps, embed=embed)
        self.architecture = dict(in_channels=in_channels, num_classes=num_classes,
                                 stem_widths=tuple(stem_widths), stem_depth=stem_depth,
                                 groups=groups, dim=dim, depth=depth, heads=heads,
                                 mlp_dim=mlp_dim, dropout=dropout, pool=pool, gelu=gelu, eps=eps)

    @classmethod
    def from_config(cls, name, **overrides):
        """The transformer of a ViT config (its patch size left out: the stem sets it) on the
        default stem, e.g. HybridViT.from_config('C-mini/4', num_classes=10)."""
        if name not in CONFIGS:
            raise ValueError(f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}")
        config = {k: v for k, v in CONFIGS[name].items() if k != "patch_size"}
        return cls(**{**config, **overrides})


# Three models of similar size for CIFAR-10 (32 x 32 x 3), to compare inductive biases.
INDUCTIVE_BIAS_CONFIGS = {
    "vit": dict(image_size=32, patch_size=4, dim=96, depth=4, heads=3, mlp_dim=192),
    "hybrid": dict(image_size=32, stem_widths=(32, 64), stem_depth=1, dim=96, depth=4, heads=3,
                   mlp_dim=192),
    "cnn": dict(image_size=32, widths=(32, 64, 128), depth=2, groups=8),
}


def inductive_bias_models(num_classes=10, in_channels=3, **overrides):
    """{'vit': ViT, 'hybrid': HybridViT, 'cnn': SmallCNN} for 32 x 32 images, of similar size:

        vit     patch 4 (64 tokens + class token), D 96, 4 blocks, 3 heads, MLP 192
        hybrid  stem 2 x [conv3x3-GN-ReLU-maxpool] (32, 64 channels) -> 8 x 8 = 64 tokens,
                then the same transformer
        cnn     3 stages of 2 x [conv3x3-GN-ReLU] + maxpool (32, 64, 128 channels), GAP, head

    Parameter counts at 10 classes: vit 311,338; hybrid 332,362; cnn 288,746.
    Forward cost per image: vit 45 MFLOP, hybrid 57 (11 of them in the stem), cnn 77; on NumPy
    the convolutions' im2col copies make the CNN the slowest per image, by about 1.5x.
    `overrides`: settings per model, e.g. inductive_bias_models(vit=dict(pool='gap')).
    """
    def settings(name):
        return {**INDUCTIVE_BIAS_CONFIGS[name], "num_classes": num_classes,
                "in_channels": in_channels, **overrides.get(name, {})}
    return {"vit": ViT(**settings("vit")), "hybrid": HybridViT(**settings("hybrid")),
            "cnn": SmallCNN(**settings("cnn"))}
