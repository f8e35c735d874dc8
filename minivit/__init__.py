"""minivit: a Vision Transformer from scratch in NumPy and CuPy, every gradient written by hand.

    import minivit
    model = minivit.ViT.from_config("C-micro/4", num_classes=10)
    logits = model(images)                      # images: (B 3 32 32) float32
    loss = minivit.ops.cross_entropy(logits, labels)
    loss.backward()
"""
from minivit import ops, optim
from minivit.backend import gpu_available, manual_seed
from minivit.checkpoint import load, save
from minivit.engine import Function, Tensor, no_grad
from minivit.errors import CheckpointError, ConfigError, DataError, DeviceError, Diverged, Error
from minivit.gradcheck import GradcheckError, gradcheck
from minivit.model import CONFIGS, ViT
from minivit.nn import Module
from minivit.pretrained import from_pretrained, save_pretrained

__all__ = ["ops", "optim", "gpu_available", "manual_seed", "load", "save", "Function", "Tensor",
           "no_grad", "Error", "CheckpointError", "ConfigError", "DataError", "DeviceError",
           "Diverged", "GradcheckError", "gradcheck", "CONFIGS", "ViT", "Module",
           "from_pretrained", "save_pretrained"]
