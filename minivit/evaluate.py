"""Test accuracy of a trained checkpoint, overall and per class.

    python -m minivit.evaluate runs/RUN_DIR/best.npz [--dataset cifar10] [--device gpu]
"""

import numpy as np

from minivit import backend, cli
from minivit.checkpoint import read_training
from minivit.data import load_dataset
from minivit.evaluation import check_channels, evaluate
from minivit.pretrained import from_training_checkpoint


def report(path, dataset=None, data_dir=None, device="cpu"):
    """Print the accuracy of the training checkpoint at `path` on a data set's test images."""
    checkpoint = read_training(path)
    config = checkpoint.config
    backend.check_device(device)
    data = load_dataset(dataset or config["dataset"], data_dir=data_dir or config["data_dir"])
    model = from_training_checkpoint(checkpoint).to(device)
    check_channels(model, data)
    images, labels = (backend.to_device(a, device) for a in (data.test_images, data.test_labels))
    loss, accuracy, predicted = evaluate(model, images, labels,
                                         *data.normalization(config.get("normalize", "dataset")))
    print(f"{path} (epoch {checkpoint.epoch}) on {data.name} test: accuracy {100 * accuracy:.2f}%, "
          f"loss {loss:.4f}, {len(data.test_labels)} images")
    print(f"{'class':>14}  accuracy  images")
    for k, name in enumerate(data.classes):
        mask = data.test_labels == k
        print(f"{name:>14}  {100 * np.mean(predicted[mask] == k):7.2f}%  {mask.sum():6d}")
    return accuracy


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m minivit.evaluate",
                                     description="Test accuracy of a minivit training checkpoint.")
    parser.add_argument("checkpoint", help="a last.npz or best.npz written by minivit.train")
    parser.add_argument("--dataset", help="data set to test on (default: the one it was trained on)")
    parser.add_argument("--data-dir", help="where data sets live (default: the training run's)")
    cli.add_device(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: report(args.checkpoint, args.dataset, args.data_dir, args.device))


if __name__ == "__main__":
    main()
