"""Cross-entropy from logits, with label smoothing, averaged over the batch.
logits: (B K), labels: (B) integers in [0, K) -> loss: a scalar."""
import numpy as np

from minivit.backend import get_array_module
from minivit.engine import Function


class CrossEntropy(Function):
    """With log p = x - logsumexp(x) (a stable log-softmax) and targets
    q = (1 - eps) onehot(label) + eps / K:   loss = -(1/B) sum_b sum_k q_bk log p_bk.
    Since sum_k q_bk = 1, dloss/dx_bk = (p_bk - q_bk) / B."""

    def forward(self, logits):
        xp = get_array_module(logits)
        labels = xp.asarray(self.labels)
        B, K = logits.shape
        if labels.shape != (B,) or labels.dtype.kind not in "iu":
            raise ValueError(f"cross_entropy: labels must be {B} integers for logits of shape "
                             f"{logits.shape}, got shape {labels.shape} of {labels.dtype}")
        # the range is checked on the CPU only: on the GPU reading it back would stall each step
        # (a Dataset checks its labels once, when it is built)
        if xp is np and labels.size and (int(labels.min()) < 0 or int(labels.max()) >= K):
            raise ValueError(f"cross_entropy: labels must lie in [0, {K}), got "
                             f"{int(labels.min())}..{int(labels.max())}")
        self.targets = xp.full((B, K), self.label_smoothing / K, dtype=logits.dtype)
        self.targets[xp.arange(B), labels] += 1 - self.label_smoothing
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        self.probs = xp.exp(log_probs)
        return -(self.targets * log_probs).sum() / B

    def backward(self, grad):
        B = self.probs.shape[0]
        return (grad * (self.probs - self.targets) / B,)
