"""Your own images, one folder per class:

    PATH/train/CLASS/*.png (or .jpg, .jpeg)
    PATH/test/CLASS/*.png

The classes are the folder names under PATH/train, sorted, so their labels do not depend on the
order the disk lists them in. Every image is read as RGB; with `image_size` each is cropped to a
centred square and resized to image_size x image_size, without it they must all be one size.
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from minivit.data.dataset import Dataset
from minivit.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg")
LAYOUT = "PATH/train/CLASS/*.png and PATH/test/CLASS/*.png, a folder for each class"


def load_folder(root, image_size=None):
    """A Dataset of (N 3 S S) uint8 images from the folders under `root` (see above)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"no folder {root}: expected {LAYOUT.replace('PATH', str(root))}")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"{root} has no {split}/ folder: expected "
                            f"{LAYOUT.replace('PATH', str(root))}")
    classes = sorted(d.name for d in (root / "train").iterdir()
                     if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{root / 'train'} has no class folders: put each class's images in "
                        f"{root / 'train'}/CLASS/")
    train_images, train_labels = read_split(root / "train", classes, image_size)
    test_images, test_labels = read_split(root / "test", classes, image_size)
    sizes = {image.shape for image in train_images + test_images}
    if len(sizes) > 1:
        shapes = sorted(f"{h}x{w}" for _, h, w in sizes)
        raise DataError(f"the images in {root} have different sizes ({', '.join(shapes[:3])}): "
                        f"give an image size (--image-size) to resize them all")
    return Dataset(f"folder:{root}", np.stack(train_images), train_labels, np.stack(test_images),
                   test_labels, classes)


def read_split(folder, classes, image_size):
    """The images (a list of (3 H W) uint8 arrays) and labels (N) int64 under folder/CLASS/."""
    unknown = sorted(d.name for d in folder.iterdir()
                     if d.is_dir() and not d.name.startswith(".") and d.name not in classes)
    if unknown:
        raise DataError(f"{folder / unknown[0]} is not a class: every test class needs a folder "
                        f"in {folder.parent / 'train'} too")
    images, labels = [], []
    for label, name in enumerate(classes):
        paths = sorted(p for p in (folder / name).glob("*")
                       if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not paths and folder.name == "train":
            raise DataError(f"{folder / name} has no {'/'.join(SUFFIXES)} images")
        images += [read_image(path, image_size) for path in paths]
        labels += [label] * len(paths)
    if not images:
        raise DataError(f"{folder} has no {'/'.join(SUFFIXES)} images in its class folders")
    return images, np.array(labels, dtype=np.int64)


def read_image(path, image_size):
    """One image as (3 H W) uint8, centre-cropped and resized to image_size when it is given."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image_size is not None:
                image = ImageOps.fit(image, (image_size, image_size), Image.Resampling.BICUBIC)
            return np.asarray(image).transpose(2, 0, 1)
    except (OSError, Image.DecompressionBombError) as error:  # PIL.UnidentifiedImageError is an OSError
        raise DataError(f"cannot read the image {path} ({error})") from None
