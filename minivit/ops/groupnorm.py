"""Group normalisation (Wu & He, 2018), the normalisation of the official hybrid's ResNet.

    x (B C ...), gamma, beta (C) -> y (B C ...)

The C channels are split into G groups of C/G; each image's group, (C/G H W) entries, is
normalised to mean 0 and variance 1 on its own (no batch statistics: the same in training and
evaluation), then every channel is scaled by gamma and shifted by beta. G = 1 normalises the
whole (C H W) map, as LayerNorm does; G = C normalises each channel alone (InstanceNorm).
(The official hybrid also weight-standardises its convolutions; that is left out here.)
"""
from minivit.backend import get_array_module
from minivit.engine import Function


class GroupNorm(Function):
    """With x viewed as (B G M), M = (C/G) H W:  xhat = (x - mean) * r,  r = 1 / sqrt(var + eps),
    mean and var over M;  y = gamma[c] * xhat + beta[c].

    dgamma[c] = sum over (b h w) of dy * xhat;  dbeta[c] = sum over (b h w) of dy;  with
    g = dy * gamma viewed as (B G M), exactly LayerNorm's backward over the M entries of a group:
    dx = r * (g - mean(g) - xhat * mean(g * xhat)).
    """

    def forward(self, x, gamma, beta):
        C = x.shape[1] if x.ndim >= 3 else None
        if C is None or C % self.groups or gamma.shape != (C,) or beta.shape != (C,):
            raise ValueError(f"group_norm: needs x (B C ...) with C divisible by "
                             f"groups={self.groups} and gamma, beta of shape (C,), got x "
                             f"{x.shape}, gamma {gamma.shape}, beta {beta.shape}")
        B = x.shape[0]
        xp = get_array_module(x)
        self.channel = (C,) + (1,) * (x.ndim - 2)                      # gamma as (C 1 1)
        groups = x.reshape(B, self.groups, -1)                          # B G M
        mean = groups.mean(axis=-1, keepdims=True)
        centred = groups - mean
        self.r = 1 / xp.sqrt((centred * centred).mean(axis=-1, keepdims=True) + self.eps)
        self.xhat = (centred * self.r).reshape(x.shape)
        return self.xhat * gamma.reshape(self.channel) + beta.reshape(self.channel)

    def backward(self, grad):
        x, gamma = self.inputs[0], self.inputs[1].data
        B, C = x.shape[:2]
        others = (0,) + tuple(range(2, grad.ndim))                       # every axis but C
        dgamma = (grad * self.xhat).sum(axis=others)
        dbeta = grad.sum(axis=others)
        g = (grad * gamma.reshape(self.channel)).reshape(B, self.groups, -1)
        xhat = self.xhat.reshape(B, self.groups, -1)
        dx = self.r * (g - g.mean(axis=-1, keepdims=True)
                       - xhat * (g * xhat).mean(axis=-1, keepdims=True))
        return dx.reshape(x.shape), dgamma, dbeta
