"""Test accuracy of a trained checkpoint, overall and per class.

    python -m minivit.evaluate runs/RUN_DIR/best.npz [--dataset cifar10] [--device gpu]
"""
import argparse
import dataclasses
import json
import sys

import numpy as np

from minivit import backend
from minivit.checkpoint import load_arrays
from minivit.data import DataError, load_dataset
from minivit.nn import CheckpointError
from minivit.train import (TrainConfig, build_model, evaluate, load_checkpoint, normalization,
                           one_line_warnings)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minivit.evaluate",
                                     description="Test accuracy of a minivit training checkpoint.")
    parser.add_argument("checkpoint", help="a last.npz or best.npz written by minivit.train")
    parser.add_argument("--dataset", help="data set to test on (default: the one it was trained on)")
    parser.add_argument("--data-dir", help="where data sets live (default: the training run's)")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    args = parser.parse_args(argv)
    one_line_warnings()
    try:
        arrays = load_arrays(args.checkpoint)
        if "config" not in arrays:
            raise CheckpointError(f"{args.checkpoint} is not a training checkpoint (no config in it)")
        config = TrainConfig(**json.loads(str(arrays["config"])))
        config = dataclasses.replace(config, device=args.device,
                                     dataset=args.dataset or config.dataset,
                                     data_dir=args.data_dir or config.data_dir,
                                     image_size=int(arrays["image_size"]))
        backend.check_device(config.device)
        data = load_dataset(config.dataset, data_dir=config.data_dir)
        model = build_model(config, data.train_images.shape[1], len(data.classes))
        epoch, _ = load_checkpoint(args.checkpoint, model)
        model.to(config.device)
        images = backend.to_device(data.test_images, config.device)
        labels = backend.to_device(data.test_labels, config.device)
        loss, accuracy, predicted = evaluate(model, images, labels,
                                            *normalization(config, data))
    except (DataError, CheckpointError, backend.DeviceError, FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    print(f"{args.checkpoint} (epoch {epoch}) on {data.name} test: accuracy {100 * accuracy:.2f}%, "
          f"loss {loss:.4f}, {len(data.test_labels)} images")
    print(f"{'class':>14}  accuracy  images")
    for k, name in enumerate(data.classes):
        mask = data.test_labels == k
        print(f"{name:>14}  {100 * np.mean(predicted[mask] == k):7.2f}%  {mask.sum():6d}")


if __name__ == "__main__":
    main()
