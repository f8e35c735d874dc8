"""What a trained ViT learned, as the paper's analysis figures (its Figures 6 and 7):

    python -m minivit.inspect runs/RUN_DIR/best.npz --out figures [--images 128] [--show 8]

writes into --out:
  filters.png               principal components of the patch-embedding filters, as RGB patches
                            (a hybrid's: of its CNN stem's first 3x3 convolution)
  position_similarity.png   each position embedding's cosine similarity with all the others
  attention_distance.png    mean attention distance of every head against depth
  attention_rollout.png     attention rollout maps over the first --show test images
  summary.json              the numbers behind them (mean attention distance per layer and head)
The mean attention distance is averaged over the first --images test images (the paper: 128).
See minivit.analysis for the algorithms.
"""
import argparse
import json
import os

import numpy as np

from minivit import analysis, backend, cli
from minivit.checkpoint import read_training
from minivit.cnn import HybridViT
from minivit.data import load_dataset
from minivit.errors import ConfigError
from minivit.evaluation import check_channels, outputs
from minivit.pretrained import from_training_checkpoint


def parse_args(argv=None):
    parser = cli.ArgumentParser(
        prog="python -m minivit.inspect", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Draw the paper's analysis figures (embedding filters, position-embedding "
                    "similarity, mean attention distance, attention rollout) for a trained model.")
    parser.add_argument("checkpoint", help="a last.npz or best.npz written by minivit.train")
    parser.add_argument("--out", required=True, help="folder to write the figures into")
    parser.add_argument("--dataset", help="data set whose test images to use "
                        "(default: the one it was trained on)")
    parser.add_argument("--data-dir", help="where data sets live (default: the training run's)")
    parser.add_argument("--images", type=int, default=128,
                        help="test images to average the mean attention distance over")
    parser.add_argument("--show", type=int, default=8,
                        help="test images to draw attention rollout maps for (at most --images)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    cli.add_device(parser)
    args = parser.parse_args(argv)
    for name in ("images", "show", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}")
    return args


def inspect(checkpoint, out, dataset=None, data_dir=None, images=128, show=8, batch_size=64,
            device="cpu"):
    """Write the four figures and summary.json into `out`; returns {name: path}."""
    backend.check_device(device)
    record = read_training(checkpoint)
    config, model = record.config, from_training_checkpoint(record).to(device)
    dataset = dataset or config["dataset"]
    data = load_dataset(dataset, data_dir=data_dir or config["data_dir"],
                        image_size=config["image_size"] if dataset.startswith("folder:") else None)
    check_channels(model, data)
    test_images = data.test_images[:images]
    show = min(show, len(test_images))
    patch, grid = model.patch_embed.patch_size, model.patch_embed.grid
    cls_tokens = int(model.pool == "cls")

    # the attention, a batch at a time: the distance is summed over images, rollout kept for `show`
    distance_sum, maps = 0.0, []
    mean, std = data.normalization(config.get("normalize", "dataset"))
    for attentions, _ in outputs(model, test_images, mean=mean, std=std, batch_size=batch_size,
                                 forward=lambda x: analysis.attention_weights(model, x)):
        distance_sum = distance_sum + len(attentions[0]) * analysis.mean_attention_distance(
            attentions, grid, patch, cls_tokens)
        if sum(len(m) for m in maps) < show:
            maps.append(analysis.attention_rollout(attentions, cls_tokens))
    distances = distance_sum / len(test_images)
    maps = np.concatenate(maps)[:show]

    channels = model.patch_embed.in_channels
    if isinstance(model, HybridViT):  # its first filters on the pixels: the stem's first conv
        conv = backend.to_device(model.patch_embed.stem[0].layers[0].conv.weight.data, "cpu")
        side = conv.shape[-1]                                          # O C k k -> (k k C) O
        weight = conv.transpose(2, 3, 1, 0).reshape(side * side * channels, -1)
        filtered, title = f"the first stem convolution ({side}x{side})", (
            "First stem convolution's filters\n(first principal components)")
    else:
        weight, side = backend.to_device(model.patch_embed.proj.weight.data, "cpu"), patch
        filtered, title = "the patch embedding", None  # plot_filters' own title
    filters = analysis.embedding_filters(weight, side, channels)
    tiles = analysis.position_similarity(backend.to_device(model.pos_embed.data, "cpu"), grid,
                                         cls_tokens)

    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:  # a file of that name, a folder it cannot write
        raise ConfigError(f"cannot make the folder --out {out} ({error.strerror}): give "
                          "another --out") from None
    paths = {name: os.path.join(out, f"{name}.png") for name in
             ("filters", "position_similarity", "attention_distance", "attention_rollout")}
    analysis.plot_filters(filters, paths["filters"], title=title)
    analysis.plot_position_similarity(tiles, paths["position_similarity"])
    # the distances are in pixels of the model's input, so the axis is too
    analysis.plot_attention_distance(distances, paths["attention_distance"], image_size=model.image_size)
    analysis.plot_rollout(test_images[:show], maps, paths["attention_rollout"])
    summary = dict(
        checkpoint=os.fspath(checkpoint), epoch=record.epoch, dataset=data.name,
        model=config["model"],
        image_size=model.image_size, patch_size=patch, grid=grid, pool=model.pool,
        layers=len(model.blocks), heads=model.blocks[0].attn.heads,
        distance_images=len(test_images), rollout_images=show,
        distance_rows_renormalized=True, filters_of=filtered, filter_components=len(filters),
        mean_attention_distance=distances.round(4).tolist(),
        mean_attention_distance_per_layer=distances.mean(axis=1).round(4).tolist(),
        figures={name: os.path.basename(path) for name, path in paths.items()})
    paths["summary"] = os.path.join(out, "summary.json")
    with open(paths["summary"], "w") as f:
        json.dump(summary, f, indent=2)
    return paths


def main(argv=None):
    args = parse_args(argv)
    paths = cli.run(lambda: inspect(args.checkpoint, args.out, args.dataset, args.data_dir,
                                    args.images, args.show, args.batch_size, args.device))
    for path in paths.values():
        print(path)


if __name__ == "__main__":
    main()
