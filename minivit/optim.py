"""Optimizers (SGD with momentum, AdamW), the warmup-then-cosine learning rate, and clipping by
the global gradient norm. Updates are in place on the parameters' arrays, under no graph."""
import math

from minivit.backend import get_array_module

NO_DECAY = ("pos_embed", "cls_token")


def param_groups(model, weight_decay):
    """Weight decay on the weight matrices only: not on biases, norms (1-D), the position
    embeddings or the class token."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and name not in NO_DECAY else no_decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


class Optimizer:
    """params: a list of Tensors, or a list of groups {'params': [...], 'weight_decay': w}."""

    def __init__(self, params, lr, weight_decay):
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = [dict(params=params, weight_decay=weight_decay)]
        self.groups = params
        self.lr = lr
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
        for p, weight_decay, state in self.parameters():
            if p.grad is not None:
                self.update(p, p.grad, weight_decay, state)

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


class SGD(Optimizer):
    """v = momentum * v + (grad + weight_decay * p);  p -= lr * v."""
    state_keys = ("velocity",)

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum

    def update(self, p, grad, weight_decay, state):
        if weight_decay:
            grad = grad + weight_decay * p.data
        if "velocity" not in state:
            state["velocity"] = get_array_module(grad).zeros_like(grad)
        velocity = state["velocity"]
        velocity *= self.momentum
        velocity += grad
        p.data -= self.lr * velocity


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter):
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  mhat = m / (1 - b1^t);  vhat = v / (1 - b2^t);
    p -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * p)."""
    state_keys = ("m", "v")

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.betas, self.eps = betas, eps

    def update(self, p, grad, weight_decay, state):
        xp = get_array_module(grad)
        (b1, b2), t = self.betas, self.steps
        if "m" not in state:
            state["m"], state["v"] = xp.zeros_like(grad), xp.zeros_like(grad)
        m, v = state["m"], state["v"]
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        if weight_decay:
            p.data -= self.lr * weight_decay * p.data
        step_size = self.lr / (1 - b1 ** t)
        p.data -= step_size * m / (xp.sqrt(v / (1 - b2 ** t)) + self.eps)


def warmup_cosine(step, total_steps, warmup_steps, peak_lr, final_lr=0.0):
    """Linear warmup from 0 to peak_lr over warmup_steps, then a cosine down to final_lr."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return final_lr + 0.5 * (peak_lr - final_lr) * (1 + math.cos(math.pi * progress))


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so that their global L2 norm is at most max_norm.
    Returns the norm before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if total > max_norm:
        for g in grads:
            g *= max_norm / (total + 1e-6)
    return total
