"""Fine-tune a trained ViT on a new data set, as in the paper:

    python -m minivit.finetune CHECKPOINT --dataset cifar10 --image-size 48

The head is replaced by a zero-initialised (D K) layer; at a higher resolution the patch size is
kept and the position embeddings are interpolated to the larger patch grid. The optimizer is SGD
with momentum 0.9 and no weight decay, gradients clipped at global norm 1, warmup then cosine.
Images are normalised as the checkpoint's were: to [-1, 1] for official and timm weights.
CHECKPOINT: a minivit.train checkpoint (last.npz, best.npz), an official ViT .npz or a timm
.safetensors. The run directory, progress bars, metrics, plots and --resume are those of
minivit.train (this is minivit.train with --init CHECKPOINT and fine-tuning defaults).
"""
import argparse
import os
import sys
import time

from minivit import backend
from minivit.data import DataError
from minivit.nn import CheckpointError
from minivit.pretrained import from_pretrained, trained_normalization
from minivit.train import Diverged, TrainConfig, one_line_warnings, train
from minivit.train import main as train_main

FINETUNE = dict(optimizer="sgd", lr=0.01, weight_decay=0.0, clip_norm=1.0, epochs=10,
                warmup_epochs=1, batch_size=128, label_smoothing=0.0, augment="basic")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minivit.finetune", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="the weights to start from")
    parser.add_argument("--dataset", default="cifar10", help="the data set to fine-tune on")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--image-size", type=int, help="fine-tuning resolution (default: the data set's)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped fine-tuning run")
    for name, value in FINETUNE.items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    parser.add_argument("--normalize", choices=["dataset", "half"],
                        help="input normalisation (default: the one the checkpoint was trained with)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--out", default="runs")
    parser.add_argument("--name", help="run directory name (default: finetune-dataset-time)")
    args = parser.parse_args(argv)
    one_line_warnings()
    if args.resume:
        return train_main(["--resume", args.resume])
    if not args.checkpoint:
        parser.error("give the CHECKPOINT to fine-tune (or --resume RUN_DIR)")
    try:
        source = from_pretrained(args.checkpoint).config
        normalize = args.normalize or trained_normalization(args.checkpoint)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    architecture = {k: source[k] for k in ("dim", "depth", "heads", "mlp_dim", "patch_size",
                                          "pool", "gelu")}
    options = {k: getattr(args, k) for k in FINETUNE}
    config = TrainConfig(model="custom", dataset=args.dataset, data_dir=args.data_dir,
                         image_size=args.image_size, normalize=normalize, seed=args.seed,
                         device=args.device, out=args.out, init=os.path.abspath(args.checkpoint),
                         **architecture, **options)
    name = args.name or f"finetune-{args.dataset.replace(':', '-').replace('/', '-')}-" \
                        f"{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = os.path.join(args.out, name)
    try:
        return train(config, run_dir,
                     command=" ".join(["python -m minivit.finetune"] + sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(f"\nstopped; continue with: python -m minivit.finetune --resume {run_dir}")
    except (DataError, backend.DeviceError, CheckpointError, FileNotFoundError, Diverged,
            ValueError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
