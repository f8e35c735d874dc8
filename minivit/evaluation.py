"""Evaluation: a trained model run over a data set, in eval mode, recording no graph.

One loop serves every reader of a model: the test loss and accuracy after each epoch
(`evaluate`), the frozen features of few-shot linear evaluation (minivit.linear_eval) and the
attention maps that minivit.inspect draws (analysis.attention_weights as `forward`) all go
through `outputs`, in `in_eval_mode`.
"""
import contextlib

from minivit import backend, ops, parallel
from minivit.data.loader import batches
from minivit.engine import no_grad
from minivit.errors import ConfigError


def check_channels(model, data):
    """ConfigError unless the data set's images have the channels the model takes."""
    channels, takes = data.test_images.shape[1], model.patch_embed.in_channels
    if channels != takes:
        raise ConfigError(f"{data.name} has {channels}-channel images, but the model takes "
                          f"{takes}-channel ones: give --dataset a data set like the one it was "
                          "trained on")


@contextlib.contextmanager
def in_eval_mode(model):
    """Inside this block the model is in eval mode (no dropout) and ops record no graph;
    the model's training mode is restored after it."""
    training = model.training
    model.eval()
    try:
        with no_grad():
            yield model
    finally:
        model.train(training)


def outputs(model, images, labels=None, *, mean, std, batch_size=256, forward=None):
    """Yield (forward(x), y) for each batch of uint8 `images` (N C H W) and their `labels` (or
    None): x normalised with the per-channel `mean` and `std` and at the model's image size, on
    the images' device, the model in eval mode with no graph. forward: default model(x).data."""
    forward = forward or (lambda x: model(x).data)
    with in_eval_mode(model):
        for x, y in batches(images, labels, batch_size, mean=mean, std=std,
                            size=getattr(model, "image_size", None)):
            yield forward(x), y


def evaluate(model, images, labels, mean, std, threads=0, batch_size=256, world=None):
    """(mean cross-entropy, accuracy, predicted labels as NumPy) of a model on uint8 `images`
    (N C H W) with integer `labels` (N), each batch split between `threads` CPU threads.
    The losses and predictions stay on the device until the end: two reads in all. With a
    distributed.World, each process evaluates its share of the images, and the sums and
    predictions are gathered on every process."""
    n = len(labels)
    if world is not None and world.size > 1:
        rows = world.rows(n)
        images, labels = images[rows], labels[rows]
    losses, predictions = [], []
    with parallel.blas_per_thread(threads, world.size if world is not None else 1):
        for logits, y in outputs(model, images, labels, mean=mean, std=std, batch_size=batch_size,
                                 forward=lambda x: parallel.predict(model, x, threads)):
            losses.append(ops.cross_entropy(logits, y).data * len(y))
            predictions.append(logits.argmax(axis=1))
    xp = backend.get_array_module(labels)
    predicted = xp.concatenate(predictions) if predictions else xp.zeros(0, dtype=labels.dtype)
    sums = xp.stack([xp.stack(losses).sum() if losses else xp.zeros(()),
                     (predicted == labels).sum()]).astype(xp.float64)
    if world is not None and world.size > 1:
        sums, predicted = world.sum(sums), world.gather(predicted)
    total_loss, correct = backend.to_device(sums, "cpu").tolist()
    return total_loss / n, correct / n, backend.to_device(predicted, "cpu")
