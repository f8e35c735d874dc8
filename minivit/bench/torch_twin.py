"""minivit's ViT written in PyTorch: the reference that the parity tests and the benchmark
compare against. Imported only by them (PyTorch is not a dependency of minivit).

The parameter names are timm's, which are minivit's, and so are the layouts: weights move
between the two with minivit.pretrained's timm conversion (Linear weights transposed, the patch
projection as the official P x P stride-P convolution).
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minivit.pretrained import minivit_to_timm, timm_to_minivit


def split_heads(qkv, heads):
    """(B N 3D) laid out (3 H Dh) -> q, k, v each (B H N Dh), as timm's Attention does."""
    B, N, three_d = qkv.shape
    return qkv.reshape(B, N, 3, heads, three_d // (3 * heads)).permute(2, 0, 3, 1, 4)


class TorchPatchEmbed(nn.Module):
    """The official patch embedding: a P x P convolution with stride P, (B C H W) -> (B N D)."""

    def __init__(self, patch_size, in_channels, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)

    def forward(self, images):
        return self.proj(images).flatten(2).transpose(1, 2)            # B D h w -> B (h w) D


class TorchAttention(nn.Module):
    """Fused qkv projection, torch's fused scaled_dot_product_attention (as timm), projection."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        out = F.scaled_dot_product_attention(*split_heads(self.qkv(x), self.heads))  # B H N Dh
        return self.proj(out.transpose(1, 2).flatten(2))


class TorchMLP(nn.Module):
    def __init__(self, dim, hidden_dim, gelu):
        super().__init__()
        self.approximate = {"erf": "none", "tanh": "tanh"}[gelu]
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate=self.approximate))


class TorchBlock(nn.Module):
    """Pre-LN: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, dim, heads, mlp_dim, gelu, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = TorchAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = TorchMLP(dim, mlp_dim, gelu)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TorchViT(nn.Module):
    """minivit.ViT in plain torch.nn; takes the same keyword arguments (ViT.config)."""

    def __init__(self, image_size, patch_size, in_channels, num_classes, dim, depth, heads,
                 mlp_dim, dropout=0.0, pool="cls", gelu="tanh", eps=1e-6):
        super().__init__()
        assert dropout == 0, "the reference is deterministic: no dropout"
        self.pool = pool
        self.patch_embed = TorchPatchEmbed(patch_size, in_channels, dim)
        tokens = (image_size // patch_size) ** 2 + (pool == "cls")
        if pool == "cls":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.ModuleList(TorchBlock(dim, heads, mlp_dim, gelu, eps)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, images):
        x = self.patch_embed(images)
        if self.pool == "cls":
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return self.head(x[:, 0] if self.pool == "cls" else x.mean(dim=1))


def torch_twin(model):
    """A TorchViT holding copies of a minivit model's parameters, in their dtype."""
    weights = minivit_to_timm(model)
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        next(iter(weights.values())).dtype]
    twin = TorchViT(**{**model.config, "dropout": 0.0}).to(dtype)
    theirs = dict(twin.named_parameters())
    assert theirs.keys() == weights.keys(), "the two architectures should have the same parameters"
    with torch.no_grad():
        for name, p in theirs.items():
            p.copy_(torch.tensor(weights[name]))
    return twin


def gradients_to_minivit(twin, heads):
    """The twin's parameter gradients {name: array} in minivit's layout."""
    grads = {name: p.grad.numpy() for name, p in twin.named_parameters()}
    return timm_to_minivit(grads, heads)[0]
