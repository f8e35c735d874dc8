"""Check a hand-written backward against finite differences.

For a function f of tensors x_1..x_n with output y, pick a random upstream gradient u and look at
the scalar L = sum(u * f(...)). Autograd gives dL/dx_i; central differences give
(L(x + h e_j) - L(x - h e_j)) / 2h for single entries j. In float64 with h = 1e-6 the two agree to
about 1e-8 relative error when the backward is right, and disagree by ~1e-1 when it is wrong.
"""
import numpy as np

from minivit import backend


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree."""


def gradcheck(fn, inputs, name=None, eps=1e-6, tolerance=1e-6, max_entries=200, seed=0):
    """Compare autograd's gradients of `fn(*inputs)` with central differences.

    inputs: a list of Tensors, or a dict {name: Tensor} (the names appear in messages); `fn` is
    called with them in order, and every one with requires_grad is checked.
    They are converted to float64 in place (parameters of a model too: convert the model first).
    At most `max_entries` entries of each input are checked, chosen at random.
    Returns {input name: relative error}; raises GradcheckError naming the op, the input and the
    worst entry when an error exceeds `tolerance`.
    """
    named = dict(inputs) if isinstance(inputs, dict) else {f"input {i}": t for i, t in enumerate(inputs)}
    args = list(named.values())
    for tensor in args:
        tensor.data = backend.get_array_module(tensor.data).ascontiguousarray(tensor.data, dtype=np.float64)
        tensor.grad = None
    name = name or getattr(fn, "__name__", "function")
    xp = backend.get_array_module(*(t.data for t in args))
    rng = np.random.default_rng(seed)

    out = fn(*args)
    upstream = xp.asarray(rng.standard_normal(out.shape))
    out.backward(upstream)

    def loss():
        return float((fn(*args).data * upstream).sum())

    errors = {}
    for input_name, tensor in named.items():
        if not tensor.requires_grad:
            continue
        analytic = backend.to_device(tensor.grad if tensor.grad is not None
                                     else xp.zeros_like(tensor.data), "cpu").ravel()
        flat = tensor.data.reshape(-1)  # a view: writing to it perturbs the input
        picks = np.arange(flat.size) if flat.size <= max_entries else \
            rng.choice(flat.size, max_entries, replace=False)
        numeric = np.empty(len(picks))
        for n, j in enumerate(picks):
            original = float(flat[j])
            flat[j] = original + eps
            plus = loss()
            flat[j] = original - eps
            minus = loss()
            flat[j] = original
            numeric[n] = (plus - minus) / (2 * eps)
        analytic = analytic[picks]
        scale = max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-12)
        errors[input_name] = float(np.linalg.norm(analytic - numeric) / scale)
        if errors[input_name] > tolerance:
            worst = int(np.argmax(np.abs(analytic - numeric)))
            index = np.unravel_index(picks[worst], tensor.shape)
            raise GradcheckError(
                f"gradcheck failed for {name}: {input_name} has relative error "
                f"{errors[input_name]:.2e} (tolerance {tolerance:.0e}); worst entry {tuple(map(int, index))}: "
                f"analytic {analytic[worst]:.6g}, numerical {numeric[worst]:.6g}")
    return errors
