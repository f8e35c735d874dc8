"""Fine-tune a trained ViT on a new data set, as in the paper:

    python -m minivit.finetune CHECKPOINT --dataset cifar10 --image-size 48

is another name for

    python -m minivit.train --preset finetune --init CHECKPOINT --dataset cifar10 --image-size 48

a new zero-initialised head; at a higher resolution the patch size kept and the position
embeddings interpolated to the larger grid; SGD with momentum 0.9, no weight decay, gradients
clipped at global norm 1, warmup then cosine; images normalised as the checkpoint's were. Every
option of minivit.train works here too (--epochs, --lr, --resume RUN_DIR, ...).
"""
import sys

from minivit import train


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and not argv[0].startswith("-"):  # the CHECKPOINT
        argv = ["--init", argv[0], *argv[1:]]
    return train.main(["--preset", "finetune", *argv])


if __name__ == "__main__":
    main()
