"""Exercise: the backward pass of cross-entropy on logits, with label smoothing.

Write `CrossEntropy.backward` below (the forward is done), then grade it:

    python -m pytest --exercises -k cross_entropy

See README.md in this folder. The answer is in solutions/ and in minivit/ops/: try first.
"""
from minivit.backend import get_array_module
from minivit.engine import Function


class CrossEntropy(Function):
    """Mean cross-entropy of integer `self.labels` (B) under logits (B K), with label smoothing.
    log p = x - logsumexp(x) (a stable log-softmax), targets q = (1 - eps) onehot(label) + eps/K,
    loss = -(1/B) sum_b sum_k q_bk log p_bk  (a scalar)."""

    def forward(self, logits):
        xp = get_array_module(logits)
        B, K = logits.shape
        labels = xp.asarray(self.labels)
        self.targets = xp.full((B, K), self.label_smoothing / K, dtype=logits.dtype)
        self.targets[xp.arange(B), labels] += 1 - self.label_smoothing
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        self.probs = xp.exp(log_probs)                                   # p: (B K)
        return -(self.targets * log_probs).sum() / B

    def backward(self, grad):
        """grad = dL/dloss, a scalar (1 when the loss is the end of the graph, but do not assume
        it). Return (dlogits,): a tuple of one array of shape (B K).

        Hint:
          1. Derive d log p_bk / d x_bj for one row (log p = x - log sum_j e^(x_j)); write it
             with p.
          2. Chain it into the loss: dloss/dx_bj = -(1/B) sum_k q_bk d log p_bk / d x_bj.
          3. What is sum_k q_bk for any eps? That makes the result very short.
        Kept from the forward: self.probs (p, B K) and self.targets (q, B K).
        """
        raise NotImplementedError("exercise not done yet: write CrossEntropy.backward "
                                  "(its docstring has the shapes and a hint)")
