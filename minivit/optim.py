"""Optimizers (SGD with momentum, AdamW), the warmup-then-cosine learning rate, and clipping by
the global gradient norm.

Each parameter's update is one elementwise formula, evaluated as one fused kernel on the GPU
(backend.fused; plain NumPy on the CPU), and clipping folds into it as a scale of the gradient
that stays on the device: a step reads nothing back to the host.
"""
import math

from minivit.backend import fused, get_array_module

NO_DECAY = ("pos_embed", "cls_token")


def param_groups(model, weight_decay):
    """Weight decay on the weight matrices only: not on biases, norms (1-D), the position
    embeddings or the class token."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and name not in NO_DECAY else no_decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


class Optimizer:
    """params: a list of Tensors, or a list of groups {'params': [...], 'weight_decay': w}.
    clip_norm: scale the gradients together so that their global norm is at most this (None:
    no clipping), as clip_grad_norm does, inside the update."""

    def __init__(self, params, lr, weight_decay, clip_norm=None):
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = [dict(params=params, weight_decay=weight_decay)]
        self.groups = params
        self.lr = lr
        self.clip_norm = clip_norm
        self.steps = 0
        self.state = [{} for group in self.groups for _ in group["params"]]  # one dict a parameter

    def parameters(self):
        """(parameter, its weight decay, its state dict) for every parameter."""
        params = [(p, g["weight_decay"]) for g in self.groups for p in g["params"]]
        return [(p, wd, state) for (p, wd), state in zip(params, self.state)]

    def forget(self, param):
        """Drop the state kept for one parameter (after its shape changed, e.g. a resize)."""
        for p, _, state in self.parameters():
            if p is param:
                state.clear()

    def zero_grad(self):
        for p, _, _ in self.parameters():
            p.grad = None

    def step(self):
        self.steps += 1
        with_grad = [(p, wd, state) for p, wd, state in self.parameters() if p.grad is not None]
        scale = 1.0
        if self.clip_norm and with_grad:
            scale, _ = clip_scale([p.grad for p, _, _ in with_grad], self.clip_norm)
        for p, weight_decay, state in with_grad:
            self.update(p, p.grad, weight_decay, state, scale)

    def state_dict(self):
        """Arrays only, for an .npz checkpoint: {'steps': n, 'i.m': ..., 'i.v': ...}."""
        arrays = {"steps": self.steps}
        for i, (_, _, state) in enumerate(self.parameters()):
            arrays.update({f"{i}.{key}": value for key, value in state.items()})
        return arrays

    def load_state_dict(self, arrays):
        self.steps = int(arrays["steps"])
        for i, (p, _, state) in enumerate(self.parameters()):
            for key in self.state_keys:
                if f"{i}.{key}" in arrays:
                    state[key] = get_array_module(p.data).asarray(arrays[f"{i}.{key}"], dtype=p.dtype)


@fused
def sgd_update(xp, p, g, velocity, scale, momentum, weight_decay, lr):
    g = g * scale + weight_decay * p
    velocity = velocity * momentum + g
    return p - lr * velocity, velocity


class SGD(Optimizer):
    """v = momentum * v + (grad + weight_decay * p);  p -= lr * v."""
    state_keys = ("velocity",)

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, clip_norm=None):
        super().__init__(params, lr, weight_decay, clip_norm)
        self.momentum = momentum

    def update(self, p, grad, weight_decay, state, scale=1.0):
        if "velocity" not in state:
            state["velocity"] = get_array_module(grad).zeros_like(grad)
        p.data, state["velocity"] = sgd_update(p.data, grad, state["velocity"], scale,
                                               self.momentum, weight_decay, self.lr)


@fused
def adamw_update(xp, p, g, m, v, scale, b1, b2, decay, step_size, bias2, eps):
    g = g * scale
    m = m * b1 + (1 - b1) * g
    v = v * b2 + (1 - b2) * g * g
    p = p - decay * p
    return p - step_size * m / (xp.sqrt(v / bias2) + eps), m, v


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter):
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  mhat = m / (1 - b1^t);  vhat = v / (1 - b2^t);
    p -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * p)."""
    state_keys = ("m", "v")

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 clip_norm=None):
        super().__init__(params, lr, weight_decay, clip_norm)
        self.betas, self.eps = betas, eps

    def update(self, p, grad, weight_decay, state, scale=1.0):
        xp = get_array_module(grad)
        (b1, b2), t = self.betas, self.steps
        if "m" not in state:
            state["m"], state["v"] = xp.zeros_like(grad), xp.zeros_like(grad)
        p.data, state["m"], state["v"] = adamw_update(
            p.data, grad, state["m"], state["v"], scale, b1, b2, self.lr * weight_decay,
            self.lr / (1 - b1 ** t), 1 - b2 ** t, self.eps)


def warmup_cosine(step, total_steps, warmup_steps, peak_lr, final_lr=0.0):
    """Linear warmup from 0 to peak_lr over warmup_steps, then a cosine down to final_lr."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return final_lr + 0.5 * (peak_lr - final_lr) * (1 + math.cos(math.pi * progress))


def clip_scale(grads, max_norm):
    """(scale, norm): the factor min(1, max_norm / norm) that brings the gradients' global L2
    norm to at most max_norm, and that norm, as 0-d arrays on the gradients' device (reading
    either is a sync on the GPU). Three operations in all: one long vector, its dot product."""
    xp = get_array_module(*grads)
    flat = xp.concatenate([g.reshape(-1) for g in grads])
    norm = xp.sqrt(xp.dot(flat, flat))
    return xp.minimum(max_norm / (norm + 1e-6), 1.0), norm


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so that their global L2 norm is at most max_norm (new
    arrays: a gradient may be a view). Returns the norm before clipping, a 0-d array."""
    with_grad = [p for p in params if p.grad is not None]
    scale, norm = clip_scale([p.grad for p in with_grad], max_norm)
    for p in with_grad:
        p.grad = p.grad * scale
    return norm
