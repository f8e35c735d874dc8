"""Few-shot linear evaluation, as in the paper (and big_vision's fewshot_lsr evaluator).

Freeze the model, take its (B D) representation (`forward_features`: the class token after the
final LayerNorm for ViT, the average-pooled feature map for the CNN) of k images per class, and
fit a linear map to the labels in closed form: regularised least squares to {-1, 1} targets.
The test accuracy of that map measures how linearly separable the classes are in the features.

    train_features (n D), k shots of each of K classes (n = k K), test_features (m D)
    standardise with the train mean and std -> append a bias column -> X (n D+1)
    Y = 2 onehot(labels) - 1 (n K);  W = (X^T X + l2 I)^-1 X^T Y (D+1 K);  predict argmax(x W)
"""
import numpy as np

from minivit import backend
from minivit.engine import Tensor
from minivit.evaluation import outputs

# big_vision's bias column holds 100, not 1: its weight then pays 10^4 times less L2 penalty for
# the same offset, so the bias is almost unregularised.
BIAS_CONSTANT = 100.0


class RidgeClassifier:
    """L2-regularised least squares from standardised features to {-1, 1} targets, in closed
    form; fitted on construction. features (n D), labels (n) -> weight (D+1 K), on the CPU in
    float64: W = (X^T X + l2 I)^-1 X^T Y, by np.linalg.solve on the (D+1 D+1) normal equations."""

    def __init__(self, features, labels, num_classes, l2=2.0 ** 10):
        x = _cpu64(features)
        labels = np.asarray(backend.to_device(labels, "cpu"))
        self.mean, self.std = x.mean(axis=0), x.std(axis=0) + 1e-5   # + 1e-5: constant features
        X = self.design(x)
        Y = 2.0 * np.eye(num_classes)[labels] - 1.0                   # +1 the class, -1 others
        self.weight = np.linalg.solve(X.T @ X + l2 * np.eye(X.shape[1]), X.T @ Y)

    def design(self, features):
        """(n D) -> X (n D+1): standardised with the training statistics, bias column appended."""
        standard = (_cpu64(features) - self.mean) / self.std
        return np.concatenate([standard, np.full((len(standard), 1), BIAS_CONSTANT)], axis=1)

    def predict(self, features):
        """(m D) -> the predicted labels (m): the class with the largest score."""
        return (self.design(features) @ self.weight).argmax(axis=1)


def few_shot_linear_eval(train_features, train_labels, test_features, test_labels, num_classes,
                         l2=2.0 ** 10):
    """Accuracy on the test set of the RidgeClassifier fitted to the train features (the
    module docstring has the recipe). Features: (n D) arrays, NumPy or CuPy; labels: (n)
    integers in [0, num_classes); l2: the ridge penalty (big_vision: 2^10)."""
    classifier = RidgeClassifier(train_features, train_labels, num_classes, l2)
    predicted = classifier.predict(test_features)
    return float(np.mean(predicted == np.asarray(backend.to_device(test_labels, "cpu"))))


def _cpu64(array):
    return np.asarray(backend.to_device(array, "cpu"), dtype=np.float64)


def features(model, images, batch_size, mean, std):
    """The frozen representation (N D) of uint8 images (N C H W), NumPy on the CPU.

    Images are normalised with the per-channel mean and std (in [0, 1] units, as Dataset gives
    them) and go through `model.forward_features` in eval mode without recording a graph, in
    batches of `batch_size` on the model's device (minivit.evaluation.outputs). The model is
    left in eval mode: it is frozen from here on."""
    dtype = model.parameters()[0].dtype
    model.eval()
    images = backend.to_device(images, model.device)
    out = outputs(model, images, mean=mean, std=std, batch_size=batch_size,
                  forward=lambda x: model.forward_features(Tensor(x.astype(dtype))).numpy())
    return np.concatenate([f for f, _ in out])


def sample_shots(labels, shots, rng):
    """Indices of `shots` examples of each class present in `labels`, drawn without replacement
    by the NumPy Generator `rng`, grouped by class in increasing order (as big_vision: a random
    permutation of each class's indices, the first `shots` kept)."""
    labels = np.asarray(backend.to_device(labels, "cpu"))
    picked = []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        if len(members) < shots:
            raise ValueError(f"class {k} has {len(members)} examples, fewer than {shots} shots")
        picked.append(rng.permutation(members)[:shots])
    return np.concatenate(picked)
