"""Exercise: the forward pass of the pre-LN Transformer encoder block, on NumPy arrays.

Write `block_forward` below, then grade it:

    python -m pytest --exercises -k block_forward

Chapter 4 (04_encoder: "The equations in the code", "One block, a sublayer at a time") teaches
this; it puts together chapter 2's layers (linear, layer norm, GELU) and chapter 3's attention:
do attention_forward.py first. Graded against minivit.model.Block in float64, in eval mode.
See README.md in this folder.
The answer is in solutions/ and in minivit/model.py and minivit/nn.py: try first.
"""
import math

import einops
import numpy as np

from minivit.backend import erf  # scipy.special.erf, elementwise on arrays


def block_forward(x, weights, heads, eps=1e-6, approximate="erf"):
    """One pre-LN encoder block:  y = x + MSA(LN1(x)),  out = y + MLP(LN2(y)).
        x: (B N D) -> out: (B N D).
    weights: {name: array}, the parameters of a minivit.model.Block under their names
    (block.state_dict(): weights["norm1.weight"] is block.norm1.weight.data, and so on):
        norm1.weight, norm1.bias: (D)                LN1's gamma and beta
        attn.qkv.weight: (D 3D), attn.qkv.bias: (3D) the fused projection to q, k, v
        attn.proj.weight: (D D), attn.proj.bias: (D) the attention's output projection
        norm2.weight, norm2.bias: (D)                LN2's gamma and beta
        mlp.fc1.weight: (D M), mlp.fc1.bias: (M)     the MLP's hidden layer, M wide
        mlp.fc2.weight: (M D), mlp.fc2.bias: (D)     and its output layer
    Each layer:
        linear   h W + b, the weight stored (Din Dout) as in minivit (no transpose).
        LN(h)    = gamma (h - mean) / sqrt(var + eps) + beta over the last axis, var the mean
                 of (h - mean)^2 (the biased variance, numpy's .var()).
        MSA(h)   = attention(h W_qkv + b_qkv) W_proj + b_proj, attention as in
                 attention_forward.py with `heads` heads and no mask (qkv laid out (3 H Dh)).
        MLP(h)   = GELU(h W_1 + b_1) W_2 + b_2, GELU(z) = z Phi(z) with
                 approximate='erf':  Phi(z) = (1 + erf(z / sqrt 2)) / 2  (exact; Block's default)
                 approximate='tanh': Phi(z) ~ (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) / 2.
    No dropout (the grader runs the block in eval mode, where dropout does nothing).

    Hint: write three small helpers first, layer_norm(h, gamma, beta), gelu(z) and
    attention(qkv) (your attention_forward, copied over), and name the weights you read
    (w = weights; w["attn.qkv.weight"], ...). The block is then two lines, each a residual
    connection around a normalised sublayer: x = x + MSA(LN1(x)), then x + MLP(LN2(x)).
    Note that LN2 sees y, the output of the first residual, not x.
    """
    raise NotImplementedError("exercise not done yet: write block_forward "
                              "(its docstring has the shapes and a hint)")
